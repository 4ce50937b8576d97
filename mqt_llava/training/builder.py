"""Building the model of a recipe: from a folder or from parts, trainable modules, LoRA."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForCausalLM,
    AutoTokenizer,
)
from transformers import initialization as init

from ..model import MQTLlavaConfig, MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from ..model.convert import CONNECTOR_CONFIG, CONNECTOR_WEIGHTS, load_connector_state
from .config import LoraConfig, ModelInit

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build_model(
    model: str | None, model_init: ModelInit | None
) -> tuple[MQTLlavaForConditionalGeneration, MQTLlavaProcessor]:
    """The recipe's model and processor, from a saved folder or built from `model_init`."""
    if model is not None:
        path = Path(model)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"`model: {model}` is not an MQT-LLaVA folder (no config.json); convert a release "
                "checkpoint with `mqt-llava convert`, or use model_init."
            )
        processor = MQTLlavaProcessor.from_pretrained(path)
        return MQTLlavaForConditionalGeneration.from_pretrained(path), processor
    return build_from_parts(model_init)


def _sub_config(spec: str | dict, vocab_size: int | None = None):
    if isinstance(spec, dict):
        values = dict(spec)
        model_type = values.pop("model_type", None)
        if model_type is None:
            raise ValueError(f"A model_init config dict needs a model_type, got {spec}.")
        if vocab_size is not None:
            values.setdefault("vocab_size", vocab_size)
        return AutoConfig.for_model(model_type, **values)
    config = AutoConfig.from_pretrained(spec)
    return getattr(config, "vision_config", config)  # a full CLIP/SigLIP repo: its vision part


def _image_processor(spec: ModelInit):
    source = spec.image_processor or (spec.vision if isinstance(spec.vision, str) else None)
    if source is None:
        raise ValueError("model_init.image_processor is required when `vision` is a config dict.")
    if isinstance(source, dict):
        values = dict(source)
        name = values.pop("class", "CLIPImageProcessorPil")
        import transformers

        if not hasattr(transformers, name):
            raise ValueError(
                f"model_init.image_processor.class {name!r} is not a transformers class."
            )
        return getattr(transformers, name)(**values)
    return AutoImageProcessor.from_pretrained(source, backend="pil")


def build_from_parts(spec: ModelInit) -> tuple[MQTLlavaForConditionalGeneration, MQTLlavaProcessor]:
    """Composes a vision backbone, a fresh connector and a causal LM (pretrained or random).

    Pretrained parts are loaded with their own `from_pretrained`; parts given as config dicts
    are initialised randomly (e.g. a small CLIP encoder and Llama decoder trained from scratch).
    """
    # Paths may start with ~ (e.g. the assembled backbones in ~/.cache, docs/pretrained.md).
    spec = dataclasses.replace(
        spec,
        **{
            k: os.path.expanduser(v)
            for k in ("vision", "text", "tokenizer", "image_processor")
            if isinstance(v := getattr(spec, k), str)
        },
    )
    tokenizer_path = spec.tokenizer or (spec.text if isinstance(spec.text, str) else None)
    if tokenizer_path is None:
        raise ValueError("model_init.tokenizer is required when `text` is a config dict.")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    if spec.model_max_length is not None:
        tokenizer.model_max_length = spec.model_max_length
    vocab_size = len(tokenizer)  # before <image> is added: placeholders are never embedded
    vision_config = _sub_config(spec.vision)
    text_config = _sub_config(spec.text, vocab_size)
    connector = dict(spec.connector)
    num_queries = connector.pop("num_queries", 256)
    processor = MQTLlavaProcessor(
        _image_processor(spec),
        tokenizer,
        num_queries=num_queries,
        num_visual_tokens=spec.num_visual_tokens or num_queries,
        image_aspect_ratio=spec.image_aspect_ratio,
    )
    config = MQTLlavaConfig(
        vision_config=vision_config.to_dict(),
        text_config=text_config.to_dict(),
        num_queries=num_queries,
        vision_feature_layer=spec.vision_feature_layer,
        vision_feature_select_strategy=spec.vision_feature_select_strategy,
        image_token_id=processor.image_token_id,
        num_visual_tokens=spec.num_visual_tokens or num_queries,
        **connector,
    )
    dtype = DTYPES[spec.dtype]
    pretrained = isinstance(spec.vision, str) and isinstance(spec.text, str)
    # Both backbones come from checkpoints: build the shell on the meta device (no 7B random
    # init to throw away) and materialise only the connector.
    with torch.device("meta") if pretrained else contextlib.nullcontext():
        model = MQTLlavaForConditionalGeneration(config)
    if pretrained:
        model.connector.to_empty(device="cpu")
    model.connector.reset_parameters(init)
    if isinstance(spec.vision, str):
        model.vision_tower = type(model.vision_tower).from_pretrained(
            spec.vision, config=model.config.vision_config, dtype=dtype
        )
    if isinstance(spec.text, str):
        model.language_model = AutoModelForCausalLM.from_pretrained(spec.text, dtype=dtype)
        model.config.text_config = model.language_model.config
    return model, processor


def init_connector(model: MQTLlavaForConditionalGeneration, source: str | Path) -> None:
    """Loads connector weights from an export, a converted model or a `query_abstractor.bin`."""
    state = load_connector_state(source)
    own = model.connector.state_dict()
    mismatched = {
        k: (tuple(v.shape), tuple(own[k].shape))
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    }
    missing = sorted(set(own) - set(state))
    if mismatched or missing:
        raise ValueError(
            f"connector_init {source} does not fit this model's connector: "
            f"shape mismatches {mismatched}, missing {missing}."
        )
    dtype = model.connector.query.dtype
    model.connector.load_state_dict({k: v.to(dtype) for k, v in state.items()})


def set_trainable(
    model: MQTLlavaForConditionalGeneration, train_modules: list[str], lora: LoraConfig | None
) -> torch.nn.Module:
    """Freezes everything but `train_modules`; with `lora`, wraps the LM's layers in adapters.

    Returns:
        The model to train: `model` itself, or a `peft.PeftModel` around it.
    """
    model.requires_grad_(False)
    for name in train_modules:
        getattr(model, name).requires_grad_(True)
    if lora is None:
        return model
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    names = "|".join(lora.target_modules)
    peft_config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=rf"language_model\..*\.({names})",  # the LM only, never the tower
        modules_to_save=[m for m in train_modules if m != "language_model"],
    )
    return get_peft_model(model, peft_config)


def trainable_summary(model: torch.nn.Module) -> str:
    """`trainable a / total b parameters (c%)`, with the trained top-level parts."""
    total = sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"trainable {trained:,} / {total:,} parameters ({100 * trained / max(total, 1):.2f}%)"


def export_connector(state: dict[str, torch.Tensor], config: MQTLlavaConfig, out: Path) -> Path:
    """Writes `connector.safetensors` + `connector_config.json` (what stage 2 initialises from)."""
    out.mkdir(parents=True, exist_ok=True)
    # clone(): gathered FSDP state dicts may hold views of storage that is freed on reshard
    weights = {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}
    save_file(weights, out / CONNECTOR_WEIGHTS, {"format": "pt"})
    meta: dict[str, Any] = {
        "num_queries": config.num_queries,
        "query_grid": list(config.query_grid),
        "vision_dim": config.vision_config.hidden_size,
        "output_dim": config.text_config.hidden_size,
        "num_heads": config.num_heads,
        "layer_norm_eps": config.connector_layer_norm_eps,
        "key_source": config.key_source,
    }
    (out / CONNECTOR_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    return out
