"""Conversion of the original MQT-LLaVA release (`llava_llama` layout) into this library's format.

Loading is renaming: `model.query_abstractor.X` -> `connector.X`, `model.X` ->
`language_model.model.X`, `lm_head.X` -> `language_model.lm_head.X`; the CLIP tower goes through
`transformers`' own loading (its key layout changed between 4.x and 5.x). M, C and D are read from
tensor shapes; the head count is not recoverable from shapes and is an argument.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import split_torch_state_dict_into_shards
from safetensors.torch import load_file, save_file
from transformers import (
    AutoImageProcessor,
    AutoTokenizer,
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    CLIPVisionModel,
    GenerationConfig,
    LlamaConfig,
)

from .configuration import CLIP_L_336_VISION_KWARGS, MQTLlavaConfig, check_num_visual_tokens
from .processing import MQTLlavaProcessor
from .tokenization import LlavaLlamaTokenizer

CONNECTOR_PREFIX = "model.query_abstractor."
TOWER_PREFIX = "model.vision_tower.vision_tower."
CONNECTOR_WEIGHTS = "connector.safetensors"
CONNECTOR_CONFIG = "connector_config.json"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Towers whose config we know, so that a checkpoint holding its own tower copy converts offline.
KNOWN_TOWERS = {"openai/clip-vit-large-patch14-336": CLIP_L_336_VISION_KWARGS}


@dataclass
class ConversionReport:
    """What `convert_checkpoint` wrote."""

    output_dir: Path
    kind: str  # "model" or "connector"
    num_queries: int
    vision_dim: int
    output_dim: int
    num_heads: int
    num_visual_tokens: int | None
    release_budget_field: str | None
    vision_tower_source: str | None

    def summary(self) -> str:
        lines = [
            f"Converted {self.kind} to {self.output_dir}",
            f"  connector: M={self.num_queries} queries, C={self.vision_dim}, "
            f"D={self.output_dim}, {self.num_heads} heads",
        ]
        if self.vision_tower_source:
            lines.append(f"  vision tower weights: {self.vision_tower_source}")
        if self.num_visual_tokens is not None:
            lines.append(
                f"  default num_visual_tokens: {self.num_visual_tokens} (the release's config says "
                f"{self.release_budget_field!r}, which the original code turns into a random "
                "budget per call; we always use a fixed integer)"
            )
        return "\n".join(lines)


def convert_checkpoint(
    src: str | Path,
    dst: str | Path,
    vision_tower: str | None = None,
    num_heads: int = 16,
    num_visual_tokens: int | None = None,
) -> ConversionReport:
    """Converts an original MQT-LLaVA checkpoint (or a stage-1 `query_abstractor.bin`).

    Args:
        src: The release's checkpoint folder (`config.json` with `model_type: llava_llama`,
            weights, tokenizer), or a stage-1 `query_abstractor.bin` (file or folder holding it).
        dst: Output folder, loadable with `from_pretrained` (or, for a stage-1 connector, a
            connector export that training initialises from).
        vision_tower: Path or hub id of the CLIP tower; defaults to the config's
            `mm_vision_tower`, resolved relative to the checkpoint folder and its parent. When the
            checkpoint holds a tower copy, its weights are used.
        num_heads: Attention heads of the connector (16 in the release; not recoverable from
            shapes).
        num_visual_tokens: Default budget to write; M when `None`.

    Returns:
        A [`ConversionReport`]; `report.summary()` says what was written.
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise FileNotFoundError(f"Nothing to convert at {src}.")
    stage1 = src if src.is_file() else src / "query_abstractor.bin"
    if src.is_file() or (stage1.is_file() and not (src / "config.json").is_file()):
        return _convert_connector(stage1, dst, num_heads)
    config_path = src / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{src} has neither config.json nor query_abstractor.bin.")
    release = json.loads(config_path.read_text())
    if release.get("model_type") != "llava_llama":
        raise ValueError(
            f"{config_path} has model_type {release.get('model_type')!r}; expected the release's "
            "'llava_llama'."
        )
    state = _load_state_dict(src)
    connector = {
        k[len(CONNECTOR_PREFIX) :]: v for k, v in state.items() if k.startswith(CONNECTOR_PREFIX)
    }
    if "query" not in connector:
        raise ValueError(
            f"{src}: no '{CONNECTOR_PREFIX}query' tensor; is this an MQT-LLaVA checkpoint?"
        )
    m, c = connector["query"].shape
    d = connector["proj"].shape[1]
    if num_visual_tokens is not None:
        check_num_visual_tokens(num_visual_tokens, m, name="--num-visual-tokens")

    tower_model, image_processor, tower_source = _load_tower(src, release, state, vision_tower)
    if tower_model.config.hidden_size != c:
        raise ValueError(
            f"The vision tower's width {tower_model.config.hidden_size} differs from the "
            f"connector's C={c}: pass the right --vision-tower."
        )
    tokenizer = _release_tokenizer(src)
    tokenizer.model_max_length = int(release.get("tokenizer_model_max_length", 2048))
    tokenizer.padding_side = release.get("tokenizer_padding_side", "right")
    default_m = num_visual_tokens if num_visual_tokens is not None else m
    processor = MQTLlavaProcessor(
        image_processor, tokenizer, num_queries=m, num_visual_tokens=default_m
    )

    text_config = _text_config(release)
    config = MQTLlavaConfig(
        vision_config=tower_model.config.to_dict(),
        text_config=text_config.to_dict(),
        num_queries=m,
        num_heads=num_heads,
        vision_feature_layer=int(release.get("mm_vision_select_layer", -2)),
        vision_feature_select_strategy=(
            "full" if release.get("mm_vision_select_feature") == "cls_patch" else "default"
        ),
        image_token_id=processor.image_token_id,
        num_visual_tokens=default_m,
        tie_word_embeddings=bool(release.get("tie_word_embeddings", False)),
    )
    config.architectures = ["MQTLlavaForConditionalGeneration"]
    weights = {f"connector.{k}": v for k, v in connector.items()}
    weights.update({f"vision_tower.{k}": v for k, v in tower_model.state_dict().items()})
    for key, value in state.items():
        if key.startswith(("model.query_abstractor.", "model.vision_tower.")):
            continue
        if key.startswith("model.") or key.startswith("lm_head."):
            weights[f"language_model.{key}"] = value
    dst.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(dst)
    _save_sharded(weights, dst)
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ).save_pretrained(dst)
    processor.save_pretrained(dst)
    return ConversionReport(
        dst, "model", m, c, d, num_heads, default_m, release.get("num_visual_tokens"), tower_source
    )


def load_connector_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Connector weights from a connector export, a converted model or a `query_abstractor.bin`.

    Returns:
        A state dict for [`MatryoshkaQueryTransformer`] (keys `query`, `pos_embed`, `attn.*`, ...).
    """
    path = Path(path)
    if path.is_dir() and (path / CONNECTOR_WEIGHTS).is_file():
        return load_file(path / CONNECTOR_WEIGHTS)
    if (
        path.is_dir()
        and (path / "config.json").is_file()
        and not (path / "query_abstractor.bin").exists()
    ):
        state = _load_state_dict(path)
        return {k[len("connector.") :]: v for k, v in state.items() if k.startswith("connector.")}
    file = path / "query_abstractor.bin" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"No connector weights at {path}.")
    state = torch.load(file, map_location="cpu", weights_only=True)
    connector = {
        k.split("query_abstractor.", 1)[1]: v for k, v in state.items() if "query_abstractor." in k
    }
    if not connector:
        raise ValueError(f"{file} holds no 'model.query_abstractor.*' tensors.")
    return connector


def _convert_connector(file: Path, dst: Path, num_heads: int) -> ConversionReport:
    state = load_connector_state(file)
    m, c = state["query"].shape
    d = state["proj"].shape[1]
    side = math.isqrt(m)
    dst.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in state.items()}, dst / CONNECTOR_WEIGHTS, {"format": "pt"}
    )
    meta = {
        "num_queries": m,
        "query_grid": [side, side],
        "vision_dim": c,
        "output_dim": d,
        "num_heads": num_heads,
        "layer_norm_eps": 1e-6,
        "key_source": "position",
    }
    (dst / CONNECTOR_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    return ConversionReport(dst, "connector", m, c, d, num_heads, None, None, None)


def _load_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    files = [f for f in files if f.name != CONNECTOR_WEIGHTS]
    if files:
        state = {}
        for file in files:
            state.update(load_file(file))
        return state
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if not bins:
        raise FileNotFoundError(f"No *.safetensors or pytorch_model*.bin weights in {folder}.")
    state = {}
    for file in bins:
        state.update(torch.load(file, map_location="cpu", weights_only=True))
    return state


def _release_tokenizer(src: Path):
    """The release's tokenizer: its sentencepiece model under the slow tokenizer's rules.

    `AutoTokenizer` in transformers 5 rebuilds a `tokenizer.model` as a `tokenizers` BPE that
    drops the lone `▁` the release keeps before text starting with a space; see
    [`LlavaLlamaTokenizer`]. Checkpoints without a `tokenizer.model` load as they are.
    """
    if not (src / "tokenizer.model").is_file():
        return AutoTokenizer.from_pretrained(src)
    settings_file = src / "tokenizer_config.json"
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    # transformers 4.x defaulted to legacy=True when the config did not say (the release: False).
    return LlavaLlamaTokenizer.from_pretrained(src, legacy=bool(settings.get("legacy", True)))


def _text_config(release: dict) -> LlamaConfig:
    fields = (
        set(LlamaConfig.__dataclass_fields__)
        if hasattr(LlamaConfig, "__dataclass_fields__")
        else None
    )
    skip = {"model_type", "architectures", "transformers_version", "_name_or_path", "torch_dtype"}
    kwargs = {
        k: v
        for k, v in release.items()
        if k not in skip
        and not k.startswith(("mm_", "tune_", "freeze_"))
        and (fields is None or k in fields)
    }
    if kwargs.get("rope_scaling") is None:
        kwargs.pop("rope_scaling", None)  # explicit null is deprecated in transformers 5
    if release.get("torch_dtype"):
        kwargs["dtype"] = release["torch_dtype"]
    return LlamaConfig(**kwargs)


def _resolve_tower(src: Path, name: str) -> Path | None:
    for candidate in (Path(name), src / name, src.parent / name):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def _load_tower(src: Path, release: dict, state: dict, vision_tower: str | None):
    """The CLIP tower (current `transformers` layout), its image processor, and its source."""
    name = vision_tower or release.get("mm_vision_tower")
    copy = {k[len(TOWER_PREFIX) :]: v for k, v in state.items() if k.startswith(TOWER_PREFIX)}
    local = _resolve_tower(src, name) if name else None
    if local is not None:
        config = CLIPVisionConfig.from_pretrained(local)
        image_processor = AutoImageProcessor.from_pretrained(local, backend="pil")
    elif name in KNOWN_TOWERS:
        config = CLIPVisionConfig(**KNOWN_TOWERS[name])
        side = config.image_size
        image_processor = CLIPImageProcessorPil(
            size={"shortest_edge": side},
            crop_size={"height": side, "width": side},
            image_mean=list(CLIP_MEAN),
            image_std=list(CLIP_STD),
        )
    elif name:
        # A hub id we do not know: the library may download it (never at test time).
        config = CLIPVisionConfig.from_pretrained(name)
        image_processor = AutoImageProcessor.from_pretrained(name, backend="pil")
    else:
        raise ValueError("No vision tower: pass --vision-tower PATH_OR_ID.")
    if copy:
        with tempfile.TemporaryDirectory() as tmp:
            config.save_pretrained(tmp)
            save_file(
                {k: v.contiguous() for k, v in copy.items()},
                f"{tmp}/model.safetensors",
                {"format": "pt"},
            )
            tower = CLIPVisionModel.from_pretrained(tmp, dtype=next(iter(copy.values())).dtype)
        return tower, image_processor, "the copy inside the checkpoint"
    if local is None and name in KNOWN_TOWERS:
        tower = CLIPVisionModel.from_pretrained(name)
        return tower, image_processor, name
    tower = CLIPVisionModel.from_pretrained(local or name)
    return tower, image_processor, str(local or name)


def _save_sharded(weights: dict[str, torch.Tensor], dst: Path, max_shard_size: str = "5GB") -> None:
    split = split_torch_state_dict_into_shards(weights, max_shard_size=max_shard_size)
    for filename, keys in split.filename_to_tensors.items():
        shard = {k: weights[k].contiguous() for k in keys}
        save_file(shard, dst / filename, {"format": "pt"})
    if split.is_sharded:
        index = {"metadata": {}, "weight_map": split.tensor_to_filename}
        (dst / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
