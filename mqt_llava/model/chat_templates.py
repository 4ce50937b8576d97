"""The release's conversation formats as Jinja chat templates.

`llava_v1` (Vicuna v1, stage 2 and inference) renders exactly the string of the release's
`conv_templates["llava_v1"].get_prompt()`::

    {system} USER: <image>\\n{question} ASSISTANT: {answer}</s>USER: {question} ASSISTANT:

`plain` (stage-1 alignment) renders `<image>{caption}\\n`: the user turn contributes only its
image placeholders (and any text), each assistant turn its text and a newline.

Messages follow the `transformers` convention: `{"role": "user" | "assistant" | "system",
"content": str | [{"type": "image"}, {"type": "text", "text": ...}]}`. In `llava_v1`, a user
turn's images come first, one `<image>\\n` each, as the release places them.
"""

LLAVA_V1_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)

# Renders a message's text parts; images are rendered by each template in its own way.
_TEXT = (
    "{%- macro text(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- macro images(content, suffix) -%}"
    "{%- if content is not string -%}{%- for part in content -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>' + suffix -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
)

LLAVA_V1_TEMPLATE = (
    _TEXT + "{%- set ns = namespace(system='" + LLAVA_V1_SYSTEM.replace("'", "\\'") + "') -%}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set ns.system = text(messages[0]['content']) -%}"
    "{%- set messages = messages[1:] -%}"
    "{%- endif -%}"
    "{{- ns.system + ' ' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{- 'USER: ' + images(message['content'], '\n') + text(message['content']) + ' ' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- 'ASSISTANT: ' + text(message['content']) + '</s>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)

PLAIN_TEMPLATE = (
    _TEXT + "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{- images(message['content'], '') + text(message['content']) -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- text(message['content']) + '\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

CHAT_TEMPLATES: dict[str, str] = {
    "default": LLAVA_V1_TEMPLATE,
    "llava_v1": LLAVA_V1_TEMPLATE,
    "plain": PLAIN_TEMPLATE,
}
