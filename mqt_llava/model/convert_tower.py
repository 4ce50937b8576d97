"""The vision tower of a release checkpoint: where it comes from, loaded the `transformers` way.

The release names its tower in `mm_vision_tower` (a hub id, `openai/clip-vit-large-patch14-336`,
or a path); a checkpoint may also hold a copy of its weights. The tower is loaded through
`CLIPVisionModel.from_pretrained` (it renames 4.x keys to the 5.x layout), refusing any missing,
unexpected or misshapen tensor instead of initialising it at random.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import save_torch_state_dict
from transformers import (
    AutoImageProcessor,
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    CLIPVisionModel,
)
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from .configuration import CLIP_L_336_VISION_KWARGS
from .convert_checks import CheckpointError
from .weights_io import TensorEntry, load_tensor

TOWER_PREFIX = "model.vision_tower.vision_tower."
# Towers whose config we know, so that a checkpoint holding its own tower copy converts offline.
KNOWN_TOWERS = {"openai/clip-vit-large-patch14-336": CLIP_L_336_VISION_KWARGS}


def _resolve_tower(src: Path, name: str) -> Path | None:
    for candidate in (Path(name), src / name, src.parent / name):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def _tower_processor(folder: Path):
    try:
        return AutoImageProcessor.from_pretrained(folder, backend="pil")
    except (OSError, ValueError) as err:
        message = str(err).splitlines()[0]
        raise CheckpointError(
            f"vision tower {folder}: no usable image processor ({message})."
        ) from None


def load_tower(
    src: Path,
    release: dict,
    entries: dict[str, TensorEntry],
    vision_tower,
    fetch_tower: Callable[..., Path] | None = None,
):
    """The CLIP tower (current `transformers` layout), its image processor, and its source."""
    name = vision_tower or release.get("mm_vision_tower")
    copy = {k[len(TOWER_PREFIX) :]: v for k, v in entries.items() if k.startswith(TOWER_PREFIX)}
    if not name:
        raise CheckpointError("No vision tower: pass --vision-tower PATH_OR_ID.")
    local = _resolve_tower(src, name)
    if local is None and not (copy and name in KNOWN_TOWERS):
        if fetch_tower is None:  # the hub layer passes its downloader; the model layer has none
            raise CheckpointError(
                f"vision tower {name!r} is not a local folder: pass --vision-tower DIR, or convert "
                "through `mqt-llava convert`, which fetches it from the hub."
            )
        local = fetch_tower(name, weights=not copy)  # local paths first; then the hub
    if local is not None:
        try:
            config = CLIPVisionConfig.from_pretrained(local)
        except (OSError, ValueError, TypeError) as err:
            message = str(err).splitlines()[0]
            raise CheckpointError(f"vision tower {name}: unreadable config ({message}).") from None
        image_processor = _tower_processor(local)
    else:
        config = CLIPVisionConfig(**KNOWN_TOWERS[name])
        side = config.image_size
        image_processor = CLIPImageProcessorPil(
            size={"shortest_edge": side},
            crop_size={"height": side, "width": side},
            image_mean=list(OPENAI_CLIP_MEAN),
            image_std=list(OPENAI_CLIP_STD),
        )
    if copy:
        with tempfile.TemporaryDirectory() as tmp:
            config.save_pretrained(tmp)
            state = {k: load_tensor(v) for k, v in copy.items()}
            save_torch_state_dict(state, tmp)  # model.safetensors (shards above 5 GB)
            dtype = next(iter(state.values())).dtype
            del state
            tower = _tower_from(tmp, dtype, f"{src}: the vision tower copy")
        return tower, image_processor, "the copy inside the checkpoint"
    tower = _tower_from(local, None, f"vision tower {name}")
    return tower, image_processor, name if name in KNOWN_TOWERS else str(local)


def _tower_from(folder, dtype, where: str) -> CLIPVisionModel:
    """Loads a CLIP tower through `transformers` (its 4.x -> 5.x key renames), refusing gaps."""
    try:
        tower, info = CLIPVisionModel.from_pretrained(
            folder, dtype=dtype or "auto", output_loading_info=True
        )
    except (OSError, RuntimeError, ValueError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{where}: does not load as the config's CLIP ({message}).") from None
    for kind in ("missing_keys", "mismatched_keys", "unexpected_keys"):
        keys = sorted(str(k) for k in info.get(kind, ()) if "position_ids" not in str(k))
        if keys:
            what = kind.replace("_keys", "").replace("mismatched", "misshapen")
            shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            raise CheckpointError(f"{where}: {len(keys)} {what} tensor(s): {shown}.")
    return tower
