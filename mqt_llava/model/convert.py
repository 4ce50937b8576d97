"""Conversion of the original MQT-LLaVA release (`llava_llama` layout) into this library's format.

Loading is renaming: `model.query_abstractor.X` -> `connector.X`, `model.X` ->
`language_model.model.X`, `lm_head.X` -> `language_model.lm_head.X`; the CLIP tower goes through
`transformers`' own loading (its key layout changed between 4.x and 5.x). M, C and D are read from
tensor shapes; the head count is not recoverable from shapes and is an argument.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import save_torch_state_dict
from huggingface_hub.errors import StrictDataclassError
from safetensors.torch import load_file
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
)

from .configuration import MQTLlavaConfig, check_num_visual_tokens
from .convert_checks import (
    IGNORED_SUFFIXES,
    CheckpointError,
    check_connector,
    check_tensors,
    connector_shapes,
    language_model_shapes,
)
from .convert_tower import TOWER_PREFIX, load_tower
from .processing import MQTLlavaProcessor
from .tokenization import LlavaLlamaTokenizer
from .weights_io import TensorEntry, load_tensor, read_weight_files, write_sharded

CONNECTOR_PREFIX = "model.query_abstractor."
CONNECTOR_WEIGHTS = "connector.safetensors"
CONNECTOR_CONFIG = "connector_config.json"
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json")


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
    source: str | None = None  # where the checkpoint came from (a hub repo@commit), for the card
    checked: int = 0  # tensors checked against the config (names and shapes)

    def summary(self) -> str:
        lines = [
            f"Converted {self.kind} to {self.output_dir}",
            f"  connector: M={self.num_queries} queries, C={self.vision_dim}, "
            f"D={self.output_dim}, {self.num_heads} heads",
        ]
        if self.vision_tower_source:
            lines.append(f"  vision tower weights: {self.vision_tower_source}")
        if self.checked:
            lines.append(f"  checked {self.checked} tensors against the config (names, shapes)")
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
    overwrite: bool = False,
    source: str | None = None,
    fetch_tower: Callable[..., Path] | None = None,
    write_card: Callable[..., object] | None = None,
) -> ConversionReport:
    """Converts an original MQT-LLaVA checkpoint (or a stage-1 `query_abstractor.bin`).

    Every tensor is checked against the release's config (names and shapes) before anything is
    written; the output is written to a temporary folder beside `dst` and renamed into place, so
    a refused or interrupted conversion leaves nothing behind. Weights are streamed shard by
    shard, tensor by tensor: memory holds the vision tower and one tensor, never the model.

    Args:
        src: The release's checkpoint folder (`config.json` with `model_type: llava_llama`,
            weights, tokenizer), or a stage-1 `query_abstractor.bin` (file or folder holding it).
        dst: Output folder, loadable with `from_pretrained` (or, for a stage-1 connector, a
            connector export that training initialises from). Must not be `src`, inside it or
            above it, and must be empty or absent unless `overwrite`.
        vision_tower: Path or hub id of the CLIP tower; defaults to the config's
            `mm_vision_tower`, resolved relative to the checkpoint folder and its parent, then on
            the hub (through the hub cache). When the checkpoint holds a tower copy, its weights
            are used.
        num_heads: Attention heads of the connector (16 in the release; not recoverable from
            shapes); must divide the connector width C.
        num_visual_tokens: Default budget to write; M when `None`.
        overwrite: Replace a non-empty `dst`.
        source: Where `src` came from (e.g. `owner/name@commit`), for the model card.
        fetch_tower: `fetch_tower(name, weights=...) -> folder` for a tower that is not a local
            folder; the hub layer passes `mqt_llava.hub.resolve.download_tower` (the model
            layer never imports the hub). Without it such a tower is refused.
        write_card: `write_card(folder, config, source=...)` writes a model card into the staged
            output (`mqt_llava.hub.card`); no card without it.

    Returns:
        A [`ConversionReport`]; `report.summary()` says what was written.

    Raises:
        FileNotFoundError: `src` does not exist.
        FileExistsError: `dst` is not empty (without `overwrite`) or is a file.
        ValueError: Anything wrong with the checkpoint or the arguments (a [`CheckpointError`]).
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise FileNotFoundError(f"Nothing to convert at {src}.")
    check_destination(src, dst, overwrite)
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise CheckpointError(f"--num-heads must be a positive integer, got {num_heads!r}.")
    stage1 = src if src.is_file() else src / "query_abstractor.bin"
    if src.is_file() or (stage1.is_file() and not (src / "config.json").is_file()):
        return _convert_connector(stage1, dst, num_heads, overwrite)
    release = _read_release_config(src)
    entries = read_weight_files(_weight_files(src))
    connector = {
        k[len(CONNECTOR_PREFIX) :]: v for k, v in entries.items() if k.startswith(CONNECTOR_PREFIX)
    }
    if "query" not in connector:
        raise CheckpointError(
            f"{src}: no '{CONNECTOR_PREFIX}query' tensor; is this an MQT-LLaVA checkpoint?"
        )
    m, c, d = check_connector(connector, num_heads, src)
    if num_visual_tokens is not None:
        check_num_visual_tokens(num_visual_tokens, m, name="--num-visual-tokens")
    if not any((src / name).is_file() for name in TOKENIZER_FILES):
        raise CheckpointError(f"{src}: no tokenizer ({' or '.join(TOKENIZER_FILES)}).")

    tower_model, image_processor, tower_source = load_tower(
        src, release, entries, vision_tower, fetch_tower
    )
    if tower_model.config.hidden_size != c:
        raise CheckpointError(
            f"The vision tower's width {tower_model.config.hidden_size} differs from the "
            f"connector's C={c}: pass the right --vision-tower."
        )
    text_config = _text_config(release)
    if text_config.hidden_size != d:
        raise CheckpointError(
            f"{src}: the connector's output width D={d} differs from the language model's "
            f"hidden_size {text_config.hidden_size} in config.json."
        )
    tied = bool(release.get("tie_word_embeddings", False))
    language = {
        k: v for k, v in entries.items() if not k.startswith((CONNECTOR_PREFIX, TOWER_PREFIX))
    }
    check_tensors(
        language_model_shapes(text_config),
        language,
        f"{src}: the language model",
        optional=("lm_head.weight",) if tied else (),
    )
    grid = (tower_model.config.image_size // tower_model.config.patch_size,) * 2
    check_tensors(connector_shapes(m, c, d, num_heads, grid), connector, f"{src}: the connector")

    tokenizer = _release_tokenizer(src)
    tokenizer.model_max_length = int(release.get("tokenizer_model_max_length", 2048))
    tokenizer.padding_side = release.get("tokenizer_padding_side", "right")
    default_m = num_visual_tokens if num_visual_tokens is not None else m
    processor = MQTLlavaProcessor(
        image_processor, tokenizer, num_queries=m, num_visual_tokens=default_m
    )

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
        tie_word_embeddings=tied,
    )
    config.architectures = ["MQTLlavaForConditionalGeneration"]
    # The tower first (held in memory only until its shard is written), then streamed tensors.
    tensors = [
        (f"vision_tower.{k}", TensorEntry(v.dtype, tuple(v.shape), tensor=v))
        for k, v in tower_model.state_dict().items()
    ]
    del tower_model
    tensors += [(f"connector.{k}", v) for k, v in connector.items()]
    tensors += [
        (f"language_model.{k}", v) for k, v in language.items() if not k.endswith(IGNORED_SUFFIXES)
    ]
    report = ConversionReport(
        dst, "model", m, c, d, num_heads, default_m, release.get("num_visual_tokens"), tower_source
    )
    report.source = source
    report.checked = len(tensors)
    with staged_output(dst, overwrite) as out:
        config.save_pretrained(out)
        write_sharded(out, tensors)
        GenerationConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ).save_pretrained(out)
        processor.save_pretrained(out)
        if write_card is not None:
            write_card(out, config, source=report.source)
    return report


def check_destination(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuses a destination that would destroy the source or silently replace a model.

    Raises:
        FileExistsError: `dst` is a file, or a non-empty folder without `overwrite`.
        ValueError: `dst` is `src`, lies inside it, or holds it.
    """
    source, target = src.resolve(), dst.resolve()
    if target == source or (src.is_file() and target == source.parent):
        raise CheckpointError(f"DST {dst} is the source itself: convert into another folder.")
    if source in target.parents:
        raise CheckpointError(f"DST {dst} lies inside the source {src}: use a folder outside it.")
    if target in source.parents:
        raise CheckpointError(f"DST {dst} holds the source {src}: use a folder outside it.")
    if dst.exists() and not dst.is_dir():
        raise FileExistsError(f"DST {dst} exists and is not a folder.")
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise FileExistsError(f"DST {dst} is not empty: pass --overwrite to replace it.")


@contextmanager
def staged_output(dst: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary folder beside `dst`, renamed to `dst` on success and removed on failure."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.converting-", dir=dst.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
        yield tmp
        old = None
        if dst.exists():
            if any(dst.iterdir()) and not overwrite:
                raise FileExistsError(f"DST {dst} is not empty: pass --overwrite to replace it.")
            old = dst.with_name(f".{dst.name}.replaced-{os.getpid()}")
            dst.rename(old)
        tmp.rename(dst)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _read_release_config(src: Path) -> dict:
    config_path = src / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{src} has neither config.json nor query_abstractor.bin.")
    try:
        release = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{config_path} is not valid JSON ({err}).") from None
    if not isinstance(release, dict) or release.get("model_type") != "llava_llama":
        kind = release.get("model_type") if isinstance(release, dict) else None
        raise CheckpointError(
            f"{config_path} has model_type {kind!r}; expected the release's 'llava_llama'."
        )
    return release


def _weight_files(folder: Path) -> list[Path]:
    """The checkpoint's weight files: its index's shards, else every safetensors/bin file."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            try:
                names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (ValueError, KeyError, TypeError, AttributeError):
                raise CheckpointError(f"{index} is not a weight index (no weight_map).") from None
            missing = [n for n in names if not (folder / n).is_file()]
            if missing:
                raise CheckpointError(f"{index} names shard(s) that are missing: {missing[:3]}.")
            return [folder / n for n in names]
    files = [f for f in sorted(folder.glob("*.safetensors")) if f.name != CONNECTOR_WEIGHTS]
    files = files or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise FileNotFoundError(f"No *.safetensors or pytorch_model*.bin weights in {folder}.")
    return files


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
        entries = read_weight_files(_weight_files(path))  # headers only: read just the connector
        return {
            k[len("connector.") :]: load_tensor(v).clone()
            for k, v in entries.items()
            if k.startswith("connector.")
        }
    file = path / "query_abstractor.bin" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"No connector weights at {path}.")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged or hostile pickle: one line, not a traceback
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{file} is not a readable PyTorch state dict ({message}).") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{file} does not hold a state dict.")
    connector = {
        k.split("query_abstractor.", 1)[1]: v for k, v in state.items() if "query_abstractor." in k
    }
    if not connector:
        raise CheckpointError(f"{file} holds no 'model.query_abstractor.*' tensors.")
    return connector


def _convert_connector(file: Path, dst: Path, num_heads: int, overwrite: bool) -> ConversionReport:
    state = load_connector_state(file)
    entries = {k: TensorEntry(v.dtype, tuple(v.shape), tensor=v) for k, v in state.items()}
    m, c, d = check_connector(entries, num_heads, file)
    grid = (math.isqrt(m),) * 2  # the key grid does not change the connector's tensors
    check_tensors(connector_shapes(m, c, d, num_heads, grid), entries, f"{file}: the connector")
    side = math.isqrt(m)
    meta = {
        "num_queries": m,
        "query_grid": [side, side],
        "vision_dim": c,
        "output_dim": d,
        "num_heads": num_heads,
        "layer_norm_eps": 1e-6,
        "key_source": "position",
    }
    with staged_output(dst, overwrite) as out:
        # One file: a connector is megabytes, far below the helper's 5 GB shard size.
        pattern = CONNECTOR_WEIGHTS.replace(".safetensors", "{suffix}.safetensors")
        save_torch_state_dict(state, out, filename_pattern=pattern)
        (out / CONNECTOR_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    return ConversionReport(dst, "connector", m, c, d, num_heads, None, None, None)


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
    try:
        return LlamaConfig(**kwargs)
    except (ValueError, TypeError, StrictDataclassError) as err:  # wrong types or values
        message = str(err).splitlines()[0]
        raise CheckpointError(
            f"The release's config.json is not a valid Llama config: {message}"
        ) from None
