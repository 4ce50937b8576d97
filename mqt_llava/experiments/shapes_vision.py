"""Stage 0 of the ShapesVQA recipe: pretraining the vision encoder on dense per-patch targets.

The release starts from a pretrained CLIP; here nothing is pretrained, so the encoder first
learns, for every patch, what the object under it is (colour, shape, size class, whether the
object's centre lies in the patch) and where the patch is (row, column). The targets come from the
generator's scene descriptions plus the rendered pixels (an object's pixels are those inside its
box that differ from the background: boxes never overlap). Training a VQA model from scratch
learns only answer priors on a CPU budget: the gradient reaching a random encoder through a random
connector and language model is too weak; this dense signal is not.

The linear heads are thrown away afterwards, as CLIP's projection is: later stages read the
encoder's features through the connector.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.shapes_scene import BACKGROUND, COLOURS, SHAPES, SIZES
from ..model import MQTLlavaForConditionalGeneration
from ..training.schedule import cosine_schedule  # the shapes loops' schedule, a recipe option

# Per-patch targets: (name, number of classes); class 0 is "background" for object attributes.
ATTRIBUTES: tuple[tuple[str, int], ...] = (
    ("colour", len(COLOURS) + 1),
    ("shape", len(SHAPES) + 1),
    ("size", len(SIZES) + 1),
    ("centre", 2),
    ("row", 0),  # 0: one class per patch row (set from the grid)
    ("column", 0),
    # Colour x shape x size as one class: pushes each combination onto its own direction, so a
    # visual token that pools two objects still says which colour went with which shape.
    ("object", len(COLOURS) * len(SHAPES) * len(SIZES) + 1),
)
# Shape and size only count on object patches (background patches say nothing about them).
_OBJECT_ONLY = ("shape", "size")
_ON_OBJECT = ("colour", "shape", "size", "object")  # reported on object patches
_WEIGHTS = {"shape": 2.0}  # shape needs context from neighbouring patches: the slowest to learn
_MIN_PIXELS = 3  # a patch belongs to the object covering at least this many of its pixels


@dataclass
class VisionWarmupConfig:
    """Stage 0 settings (the `vision_warmup` section of the recipe)."""

    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.05
    seed: int = 0

    def __post_init__(self):
        self.learning_rate = float(self.learning_rate)  # YAML 1.1 reads 3e-3 as a string
        self.warmup_ratio = float(self.warmup_ratio)
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                "vision_warmup steps and batch_size must be >= 1, got "
                f"{self.steps}, {self.batch_size}"
            )


def num_classes(grid: int) -> list[int]:
    """Classes per attribute for a `grid x grid` patch layout (row/column: `grid` each)."""
    return [n or grid for _, n in ATTRIBUTES]


def patch_targets(scene: dict[str, Any], image: torch.Tensor, patch_size: int) -> torch.Tensor:
    """The per-patch targets of one scene.

    Args:
        scene: A scene record of `<split>_scenes.json` (objects with colour, shape, size,
            x, y, bbox).
        image: (3, H, W) uint8 rendering of the scene.
        patch_size: Side of a square patch in pixels (H must be a multiple of it).

    Returns:
        (N, 7) long tensor, N = (H / patch_size)^2 patches in row-major order, columns as in
        `ATTRIBUTES`.
    """
    side = image.shape[-1]
    grid = side // patch_size
    background = torch.tensor(BACKGROUND, dtype=torch.uint8)[:, None, None]
    foreground = (image != background).any(0)  # (H, W)
    owner = torch.zeros(side, side, dtype=torch.long)  # 0: background, k + 1: object k
    objects = scene["objects"]
    for k, obj in enumerate(objects):
        x0, y0, x1, y1 = obj["bbox"]
        box = owner[y0:y1, x0:x1]
        box[foreground[y0:y1, x0:x1]] = k + 1
    one_hot = F.one_hot(owner, len(objects) + 1).permute(2, 0, 1)  # (K + 1, H, W)
    counts = one_hot.reshape(-1, grid, patch_size, grid, patch_size).sum((2, 4))  # (K+1, g, g)
    counts[0] = 0
    best = counts.flatten(1).argmax(0)  # (N,) object index + 1
    best[counts.flatten(1).max(0).values < _MIN_PIXELS] = 0
    table = torch.zeros(len(objects) + 1, 3, dtype=torch.long)  # background row: zeros
    for k, obj in enumerate(objects):
        table[k + 1, 0] = list(COLOURS).index(obj["colour"]) + 1
        table[k + 1, 1] = SHAPES.index(obj["shape"]) + 1
        table[k + 1, 2] = SIZES.index(obj["size"]) + 1
    centre = torch.zeros(grid * grid, dtype=torch.long)
    for obj in objects:
        centre[(obj["y"] // patch_size) * grid + obj["x"] // patch_size] = 1
    index = torch.arange(grid * grid)
    colour, shape, size = table[best].unbind(1)  # (N,) each, 0 on background
    joint = ((colour - 1) * len(SHAPES) + shape - 1) * len(SIZES) + size  # 1.. on objects
    joint = torch.where(colour > 0, joint, 0)
    columns = [colour, shape, size, centre, index // grid, index % grid, joint]
    return torch.stack(columns, dim=1)


class PatchHeads(nn.Module):
    """One linear classifier per attribute on every patch feature: (B, N, C) -> logits."""

    def __init__(self, width: int, grid: int):
        super().__init__()
        self.sizes = num_classes(grid)
        self.linear = nn.Linear(width, sum(self.sizes))

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        """(B, N, C) features -> one (B, N, classes) logit tensor per attribute."""
        return list(self.linear(features).split(self.sizes, dim=-1))


def patch_loss(logits: Sequence[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """Sum of the attributes' cross-entropies (shape and size on object patches only).

    Args:
        logits: Per attribute, (B, N, classes).
        targets: (B, N, 7) from `patch_targets`.
    """
    on_object = targets[..., 0].flatten() > 0  # (B * N,)
    total = logits[0].new_zeros(())
    for j, (name, _) in enumerate(ATTRIBUTES):
        logit = logits[j].flatten(0, 1)  # (B * N, classes)
        target = targets[..., j].flatten()
        if name in _OBJECT_ONLY:
            if not bool(on_object.any()):
                continue
            logit, target = logit[on_object], target[on_object]
        total = total + _WEIGHTS.get(name, 1.0) * F.cross_entropy(logit, target)
    return total


@torch.no_grad()
def patch_accuracy(
    model: MQTLlavaForConditionalGeneration,
    heads: PatchHeads,
    pixels: torch.Tensor,
    targets: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 128,
) -> dict[str, float]:
    """Accuracy (%) per attribute; colour, shape, size and object on object patches only.

    Args:
        pixels: (I, 3, H, W) uint8 images.
        targets: (I, N, 7) their targets.
        normalize: uint8 images -> the model's pixel values.
    """
    model.eval()
    hits = torch.zeros(len(ATTRIBUTES))
    counts = torch.zeros(len(ATTRIBUTES))
    for start in range(0, len(pixels), batch_size):
        features = model.get_vision_features(normalize(pixels[start : start + batch_size]))
        target = targets[start : start + batch_size]
        on_object = target[..., 0] > 0
        for j, logit in enumerate(heads(features)):
            right = logit.argmax(-1) == target[..., j]  # (B, N)
            keep = on_object if ATTRIBUTES[j][0] in _ON_OBJECT else torch.ones_like(on_object)
            hits[j] += right[keep].sum()
            counts[j] += keep.sum()
    return {
        name: round(100 * float(h / max(c, 1)), 2)
        for (name, _), h, c in zip(ATTRIBUTES, hits, counts, strict=True)
    }


def warm_up_vision(
    model: MQTLlavaForConditionalGeneration,
    pixels: torch.Tensor,
    targets: torch.Tensor,
    config: VisionWarmupConfig,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    log: Callable[[str], None] = print,
) -> PatchHeads:
    """Trains the vision tower (in place) with per-patch heads.

    AdamW without weight decay, linear warm-up then cosine decay, gradient norm clipped at 1;
    batches are drawn with replacement by a generator seeded with `config.seed`.

    Args:
        model: The model whose `vision_tower` is trained (the rest is untouched).
        pixels: (I, 3, H, W) uint8 training images.
        targets: (I, N, 7) per-patch targets.
        config: Steps, batch size, learning rate, seed.
        normalize: uint8 images -> the model's pixel values.
        log: Where progress lines go.

    Returns:
        The trained heads (for measuring patch accuracy).
    """
    torch.manual_seed(config.seed)
    vision = model.config.vision_config
    heads = PatchHeads(vision.hidden_size, vision.image_size // vision.patch_size)
    params = [*model.vision_tower.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    schedule = cosine_schedule(optimizer, config.steps, config.warmup_ratio)
    generator = torch.Generator().manual_seed(config.seed)
    model.vision_tower.train()
    start = time.perf_counter()
    for step in range(config.steps):
        index = torch.randint(0, len(pixels), (config.batch_size,), generator=generator)
        features = model.get_vision_features(normalize(pixels[index]))  # (B, N, C)
        loss = patch_loss(heads(features), targets[index])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == config.steps - 1:
            elapsed = time.perf_counter() - start
            log(
                f"vision warm-up step {step + 1}/{config.steps} loss {loss.item():.4f} "
                f"({elapsed:.0f} s)"
            )
    model.vision_tower.eval()
    return heads
