"""Publishing: a model folder others can load, with a generated model card (`README.md`).

A folder written by `convert`, training or [`save_for_hub`] is plain `save_pretrained` output
(config, safetensors weights, processor, tokenizer, generation config). `huggingface_hub`'s
`upload_folder` / `model.push_to_hub` publish it as it is; readers load it with
`mqt_llava.load(repo_id)` or, after `import mqt_llava`, with `AutoModelForImageTextToText`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

MODEL_PACKAGE = Path(__file__).resolve().parent.parent / "model"
# The modules `trust_remote_code` loads; their relative imports are followed and copied too.
REMOTE_ENTRY = {"configuration": "MQTLlavaConfig", "modeling": "MQTLlavaForConditionalGeneration"}
REMOTE_PROCESSOR = ("processing", "MQTLlavaProcessor")

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


def model_card(
    config, repo_id: str | None = None, source: str | None = None, remote_code: bool = False
) -> str:
    """The text of a model card (`README.md`) for a model of `config`.

    Args:
        config: The model's `MQTLlavaConfig`.
        repo_id: The id it will be published under (the examples use it; a placeholder if None).
        source: What it was converted from (e.g. `gordonhu/MQT-LLaVA-7b@<commit>`), if anything.
        remote_code: The folder carries the model's code (`auto_map`, see [`add_remote_code`]).
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
        f"{_without_package(name) if remote_code else _NO_REMOTE_CODE}"
    )


_NO_REMOTE_CODE = (
    "Without `mqt_llava` installed, `transformers` cannot build this architecture; the "
    "weights are ordinary safetensors (`vision_tower.*` a CLIP vision model, "
    "`language_model.*` a causal LM, `connector.*` the query transformer) and can be read "
    "with `safetensors` directly.\n"
)


def _without_package(name: str) -> str:
    return (
        "Without the package, the repository's own copy of the model code loads it "
        "(`trust_remote_code=True`; read the `.py` files first):\n\n"
        "```python\nfrom transformers import AutoModelForImageTextToText, AutoProcessor\n\n"
        f'model = AutoModelForImageTextToText.from_pretrained("{name}", trust_remote_code=True)\n'
        f'processor = AutoProcessor.from_pretrained("{name}", trust_remote_code=True)\n```\n'
    )


def write_model_card(
    folder: str | Path,
    config,
    repo_id: str | None = None,
    source: str | None = None,
    remote_code: bool = False,
) -> Path:
    """Writes `README.md` (the model card) into `folder`; returns its path."""
    path = Path(folder) / "README.md"
    path.write_text(model_card(config, repo_id, source, remote_code), encoding="utf-8")
    return path


def _module_closure(names: list[str]) -> set[str]:
    """The model package's modules that `names` import, relatively, directly or not."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        source = (MODEL_PACKAGE / f"{name}.py").read_text(encoding="utf-8")
        if re.search(r"^\s*from \.\.", source, re.MULTILINE):
            raise ValueError(f"mqt_llava/model/{name}.py imports from outside the model package.")
        seen.add(name)
        todo += re.findall(r"^\s*from \.(\w+) import", source, re.MULTILINE)
    return seen


def add_remote_code(folder: str | Path) -> list[str]:
    """Copies the model's code into `folder` and points `auto_map` at it.

    Then `AutoModelForImageTextToText.from_pretrained(repo, trust_remote_code=True)` and
    `AutoProcessor.from_pretrained(repo, trust_remote_code=True)` work without this package.
    With the package imported, its registered classes are used instead (no remote code runs).

    Returns:
        The module files copied.
    """
    folder = Path(folder)
    entries = [*REMOTE_ENTRY, REMOTE_PROCESSOR[0]]
    tokenizer_config = folder / "tokenizer_config.json"
    tokenizer_class = None
    if tokenizer_config.is_file():
        tokenizer_class = json.loads(tokenizer_config.read_text()).get("tokenizer_class")
    # A converted release keeps its sentencepiece tokenizer under the slow tokenizer's rules:
    # without its code, transformers would rebuild a fast tokenizer that tokenizes differently.
    custom_tokenizer = tokenizer_class == "LlavaLlamaTokenizer"
    if custom_tokenizer:
        entries.append("tokenization")
    modules = sorted(_module_closure(entries))
    for name in modules:
        shutil.copyfile(MODEL_PACKAGE / f"{name}.py", folder / f"{name}.py")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": f"configuration.{REMOTE_ENTRY['configuration']}",
        "AutoModelForImageTextToText": f"modeling.{REMOTE_ENTRY['modeling']}",
        "AutoModelForCausalLM": f"modeling.{REMOTE_ENTRY['modeling']}",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    auto_map = {"AutoProcessor": ".".join(REMOTE_PROCESSOR)}
    for name in ("processor_config.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file():
            data = json.loads(path.read_text())
            data["auto_map"] = {**data.get("auto_map", {}), **auto_map}
            if custom_tokenizer and name == "tokenizer_config.json":
                data["auto_map"]["AutoTokenizer"] = ["tokenization.LlavaLlamaTokenizer", None]
            path.write_text(json.dumps(data, indent=2) + "\n")
    return [f"{name}.py" for name in modules]


def save_for_hub(
    vlm, folder: str | Path, repo_id: str | None = None, remote_code: bool = True
) -> Path:
    """Saves a loaded model (an [`MQTLlava`] or a model + processor pair) for publishing.

    Args:
        vlm: An `MQTLlava`, or a `(model, processor)` tuple.
        folder: Output folder (created).
        repo_id: The hub id it will be pushed to, used in the card's examples.
        remote_code: Also copy the model's code and an `auto_map`, so that readers without this
            package can load it with `trust_remote_code=True`.

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
    if remote_code:
        add_remote_code(folder)
    write_model_card(folder, model.config, repo_id, remote_code=remote_code)
    return folder
