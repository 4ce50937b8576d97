"""Publishing: a model folder others can load, with a generated model card (`README.md`).

A folder written by `convert`, training or [`save_for_hub`] is plain `save_pretrained` output
(config, safetensors weights, processor, tokenizer, generation config). `huggingface_hub`'s
`upload_folder` / `model.push_to_hub` publish it as it is; readers load it with
`mqt_llava.load(repo_id)` or, after `import mqt_llava`, with `AutoModelForImageTextToText`.
"""

from __future__ import annotations

from pathlib import Path

PARITY = (
    "The conversion is tested against the original MQT-LLaVA code (gordonhu608/MQT-LLaVA @ "
    "92c35d0) on a tiny fixture checkpoint: pixel values, vision features, connector outputs at "
    "m = 1, 2, 16, 64, 256, hidden states, logits and the loss agree within |x - ref| <= "
    "1e-4 + 1e-4 |ref| in float32, and greedy tokens are identical. Every tensor of this "
    "checkpoint was checked against its config (names and shapes) when it was converted."
)


def _budgets(num_queries: int) -> list[int]:
    budgets, m = [], 1
    while m < num_queries:
        budgets.append(m)
        m *= 2
    return [*budgets, num_queries]


def model_card(config, repo_id: str | None = None, source: str | None = None) -> str:
    """The text of a model card (`README.md`) for a model of `config`.

    Args:
        config: The model's `MQTLlavaConfig`.
        repo_id: The id it will be published under (the examples use it; a placeholder if None).
        source: What it was converted from (e.g. `gordonhu/MQT-LLaVA-7b@<commit>`), if anything.
    """
    name = repo_id or "OWNER/NAME"
    m_max, m_default = config.num_queries, config.num_visual_tokens
    text, vision = config.text_config, config.vision_config
    base = source.split("@", 1)[0] if source else None
    front = [
        "---",
        "library_name: transformers",
        "pipeline_tag: image-text-to-text",
        "tags:",
        "- mqt-llava",
        "- matryoshka-query-transformer",
        "- llava",
    ]
    if base:
        front += [f"base_model: {base}"]
    front += ["---", ""]
    patches = (vision.image_size // vision.patch_size) ** 2
    rows = "\n".join(
        f"| {m} | {m / patches:.1%} |" + (" default |" if m == m_default else " |")
        for m in sorted({*_budgets(m_max), m_default})
    )
    origin = f"Converted from `{source}` with `mqt-llava convert`.\n\n" if source else ""
    return "\n".join(front) + (
        f"# MQT-LLaVA: {name}\n\n"
        "A LLaVA model whose connector, a Matryoshka Query Transformer "
        "([paper](https://arxiv.org/abs/2405.19315)), turns an image into any number m <= M of "
        "visual tokens, chosen per request.\n\n"
        f"{origin}"
        "## Model\n\n"
        f"- vision tower: `{vision.model_type}`, {vision.num_hidden_layers} layers, width "
        f"{vision.hidden_size}, {vision.image_size} px images, {patches} patches\n"
        f"- connector: M = {m_max} learned queries, {config.num_heads} heads, "
        f"keys from `{config.key_source}`\n"
        f"- language model: `{text.model_type}`, {text.num_hidden_layers} layers, width "
        f"{text.hidden_size}, vocabulary {text.vocab_size}\n\n"
        "## Visual-token budgets\n\n"
        f"Any integer 1 <= m <= {m_max}; the default is m = {m_default} (a fixed integer: the "
        "original code's config names a random per-call budget, which this library never "
        "uses). The image costs m tokens of the language model's context instead of one per "
        "patch:\n\n"
        "| m | share of the patches | |\n|---:|---:|---|\n"
        f"{rows}\n\n"
        "## Parity\n\n"
        f"{PARITY}\n\n"
        "## Use it with the `mqt-llava` package\n\n"
        "```bash\npip install mqt-llava\n"
        f'mqt-llava ask "What is in the picture?" --image cat.jpg --model {name} '
        "--num-visual-tokens 16\n```\n\n"
        "```python\nimport mqt_llava\n\n"
        f'vlm = mqt_llava.load("{name}")  # dtype=, device_map="auto", load_in_4bit=True, ...\n'
        'print(vlm.ask("cat.jpg", "What is on the sofa?", num_visual_tokens=16))\n```\n\n'
        "## Use it with plain `transformers`\n\n"
        "The architecture (`model_type: mqt_llava`) is not part of `transformers`; importing "
        "`mqt_llava` registers it with the Auto classes, and nothing else of the package is "
        "needed:\n\n"
        "```python\nimport mqt_llava  # registers MQT-LLaVA with the transformers Auto classes\n"
        "from transformers import AutoModelForImageTextToText, AutoProcessor\n\n"
        f'model = AutoModelForImageTextToText.from_pretrained("{name}", dtype="auto")\n'
        f'processor = AutoProcessor.from_pretrained("{name}")\n'
        'prompt = processor.build_prompt("What is on the sofa?")\n'
        'inputs = processor(images=["cat.jpg"], text=prompt, num_visual_tokens=16)\n'
        "output = model.generate(**inputs, max_new_tokens=32)\n"
        'print(processor.decode(output[0, inputs["input_ids"].shape[1]:], '
        "skip_special_tokens=True))\n```\n\n"
        "Without `mqt_llava` installed, `transformers` cannot build this architecture; the "
        "weights are ordinary safetensors (`vision_tower.*` a CLIP vision model, "
        "`language_model.*` a causal LM, `connector.*` the query transformer) and can be read "
        "with `safetensors` directly.\n"
    )


def write_model_card(
    folder: str | Path, config, repo_id: str | None = None, source: str | None = None
) -> Path:
    """Writes `README.md` (the model card) into `folder`; returns its path."""
    path = Path(folder) / "README.md"
    path.write_text(model_card(config, repo_id, source), encoding="utf-8")
    return path


def save_for_hub(vlm, folder: str | Path, repo_id: str | None = None) -> Path:
    """Saves a loaded model (an [`MQTLlava`] or a model + processor pair) for publishing.

    Args:
        vlm: An `MQTLlava`, or a `(model, processor)` tuple.
        folder: Output folder (created).
        repo_id: The hub id it will be pushed to, used in the card's examples.

    Returns:
        The folder, ready for `huggingface_hub.upload_folder(repo_id=..., folder_path=folder)`.
    """
    model, processor = vlm if isinstance(vlm, tuple) else (vlm.model, vlm.processor)
    if getattr(model, "is_quantized", False):
        raise ValueError(
            "A 4-/8-bit model cannot be published as this library's format: load it unquantized."
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    write_model_card(folder, model.config, repo_id)
    return folder
