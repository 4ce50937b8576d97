"""ShapesVQA scenes: vocabulary, scene sampling, rendering and captions.

A scene is a handful of non-overlapping coloured shapes on a plain background. The scene
description, not the rendered image, is the ground truth for every question and caption, so
it records everything needed to locate an object again (centre, diameter, pixel box).

All randomness comes from a caller-owned ``random.Random``; rendering uses PIL's aliased
primitives only, so the same scene always gives the same pixels and the same PNG bytes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
PLURALS: dict[str, str] = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "cross": "crosses",
}
# Saturated colours at least ~100 apart in RGB from each other and from the background, so a
# 7-pixel object is still unambiguous after the vision tower's resize.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 30, 30),
    "orange": (255, 128, 0),
    "yellow": (240, 230, 40),
    "green": (30, 160, 50),
    "cyan": (40, 200, 220),
    "blue": (30, 60, 220),
    "purple": (140, 50, 190),
}
SIZES: tuple[str, ...] = ("large", "small")
BACKGROUND: tuple[int, int, int] = (190, 190, 190)
MIN_IMAGE_SIZE = 32


def _odd(value: float) -> int:
    """Rounds, bumping an even result up to odd, at least 3 (odd puts the centre on a pixel)."""
    return max(3, round(value) | 1)


def diameters(image_size: int, size: str) -> tuple[int, ...]:
    """Allowed object diameters in pixels for a size class.

    At 64 px a small object is 7 px across and a large one 13–19 px; both scale linearly
    with ``image_size``.

    Args:
        image_size: Side of the square image in pixels.
        size: ``"large"`` or ``"small"``.

    Returns:
        The odd diameters to choose from.
    """
    if size == "small":
        return (_odd(image_size * 7 / 64),)
    return tuple(range(_odd(image_size * 13 / 64), _odd(image_size * 19 / 64) + 1, 2))


@dataclass(frozen=True)
class SceneObject:
    """One shape in a scene.

    Attributes:
        shape: One of :data:`SHAPES`.
        colour: One of the keys of :data:`COLOURS`.
        size: Size class, ``"large"`` or ``"small"``.
        x: Column of the centre pixel.
        y: Row of the centre pixel (0 is the top).
        diameter: Side of the object's square box in pixels (odd).
    """

    shape: str
    colour: str
    size: str
    x: int
    y: int
    diameter: int

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """Pixel box ``(x0, y0, x1, y1)``, ``x1``/``y1`` exclusive (``mask[y0:y1, x0:x1]``)."""
        r = (self.diameter - 1) // 2
        return (self.x - r, self.y - r, self.x + r + 1, self.y + r + 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description, including the box and the RGB colour."""
        return {
            "shape": self.shape,
            "colour": self.colour,
            "size": self.size,
            "x": self.x,
            "y": self.y,
            "diameter": self.diameter,
            "bbox": list(self.bbox),
            "rgb": list(COLOURS[self.colour]),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneObject:
        """Inverse of :meth:`to_dict` (derived keys are ignored)."""
        return cls(
            data["shape"], data["colour"], data["size"], data["x"], data["y"], data["diameter"]
        )


@dataclass(frozen=True)
class Scene:
    """A rendered-to-be image: plain background plus non-overlapping objects.

    Attributes:
        scene_id: Unique id; also names the image file.
        image_size: Side of the square image in pixels.
        objects: The objects, in sampling order.
    """

    scene_id: str
    image_size: int
    objects: tuple[SceneObject, ...]

    @property
    def image(self) -> str:
        """Image path relative to the dataset folder."""
        return f"images/{self.scene_id}.png"

    def signature(self) -> tuple[SceneObject, ...]:
        """Content key (without the id) used to keep splits from sharing a scene."""
        return tuple(sorted(self.objects, key=lambda o: (o.x, o.y, o.shape, o.colour)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the scene."""
        return {
            "scene_id": self.scene_id,
            "image": self.image,
            "width": self.image_size,
            "height": self.image_size,
            "background": list(BACKGROUND),
            "objects": [o.to_dict() for o in self.objects],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        """Inverse of :meth:`to_dict`."""
        objects = tuple(SceneObject.from_dict(o) for o in data["objects"])
        return cls(data["scene_id"], data["width"], objects)


def boxes_apart(a: SceneObject, b: SceneObject, gap: int) -> bool:
    """Whether two objects' boxes are at least ``gap`` pixels apart on some axis."""
    ax0, ay0, ax1, ay1 = a.bbox
    bx0, by0, bx1, by1 = b.bbox
    return ax1 + gap <= bx0 or bx1 + gap <= ax0 or ay1 + gap <= by0 or by1 + gap <= ay0


def object_gap(image_size: int) -> int:
    """Minimum free pixels between two objects' boxes."""
    return max(2, image_size // 32)


def _pick_attribute(rng: random.Random, values: tuple[str, ...], used: list[str]) -> str:
    # Reusing an attribute already in the scene now and then makes counts of 3–5 occur and
    # gives referring expressions something to disambiguate.
    if used and rng.random() < 0.3:
        return rng.choice(used)
    return rng.choice(values)


def _place(
    rng: random.Random, image_size: int, placed: list[SceneObject], small_prob: float
) -> SceneObject | None:
    size = "small" if rng.random() < small_prob else "large"
    diameter = rng.choice(diameters(image_size, size))
    shape = _pick_attribute(rng, SHAPES, [o.shape for o in placed])
    colour = _pick_attribute(rng, tuple(COLOURS), [o.colour for o in placed])
    r = (diameter - 1) // 2
    gap = object_gap(image_size)
    low, high = 1 + r, image_size - 2 - r  # keep a one-pixel frame of background
    for _ in range(50):
        obj = SceneObject(
            shape, colour, size, rng.randint(low, high), rng.randint(low, high), diameter
        )
        if all(boxes_apart(obj, other, gap) for other in placed):
            return obj
    return None


def sample_scene(
    rng: random.Random,
    scene_id: str,
    image_size: int,
    num_objects: int,
    small_prob: float = 0.4,
) -> Scene:
    """Samples a scene of non-overlapping objects by rejection sampling.

    Args:
        rng: The only source of randomness.
        scene_id: Id to give the scene.
        image_size: Side of the square image in pixels.
        num_objects: Number of objects to place.
        small_prob: Probability that an object is small.

    Returns:
        The scene.
    """
    while True:  # restart from scratch when the canvas gets too crowded
        placed: list[SceneObject] = []
        for _ in range(num_objects):
            obj = _place(rng, image_size, placed, small_prob)
            if obj is None:
                break
            placed.append(obj)
        else:
            return Scene(scene_id, image_size, tuple(placed))


def single_object_scenes(n: int, seed: int = 0, image_size: int = 64) -> list[Scene]:
    """`n` scenes of one object on the plain background (the pointing game's scenes): shape,
    colour, size and position drawn uniformly (the object wholly inside the image),
    reproducibly from `seed`."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}.")
    rng = random.Random(seed)
    scenes = []
    for i in range(n):
        size = rng.choice(SIZES)
        diameter = rng.choice(diameters(image_size, size))
        half = diameter // 2
        x, y = (rng.randint(half, image_size - 1 - half) for _ in range(2))
        obj = SceneObject(rng.choice(SHAPES), rng.choice(list(COLOURS)), size, x, y, diameter)
        scenes.append(Scene(f"single_{i:04d}", image_size, (obj,)))
    return scenes


def _draw_object(draw: ImageDraw.ImageDraw, obj: SceneObject) -> None:
    x0, y0, x1, y1 = obj.bbox
    x1, y1 = x1 - 1, y1 - 1  # PIL boxes are inclusive
    fill = COLOURS[obj.colour]
    if obj.shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif obj.shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([(obj.x, y0), (x0, y1), (x1, y1)], fill=fill)
    elif obj.shape == "cross":
        h = _odd(obj.diameter / 3) // 2
        draw.rectangle((x0, obj.y - h, x1, obj.y + h), fill=fill)
        draw.rectangle((obj.x - h, y0, obj.x + h, y1), fill=fill)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}; expected one of {SHAPES}")


def render_scene(scene: Scene) -> Image.Image:
    """Draws a scene without anti-aliasing.

    Args:
        scene: The scene to draw.

    Returns:
        An RGB image of ``scene.image_size`` × ``scene.image_size`` pixels.
    """
    image = Image.new("RGB", (scene.image_size, scene.image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        _draw_object(draw, obj)
    return image


def save_png(image: Image.Image, path: Path) -> None:
    """Saves a PNG with fixed encoder options and no metadata, so bytes are reproducible."""
    image.save(path, format="PNG", optimize=False, compress_level=6)


def location_phrase(obj: SceneObject, image_size: int) -> str:
    """Coarse 3×3-grid location, e.g. ``"at the top left"`` or ``"in the centre"``."""
    third = image_size / 3
    col = "left" if obj.x < third else "right" if obj.x >= 2 * third else ""
    row = "top" if obj.y < third else "bottom" if obj.y >= 2 * third else ""
    if row and col:
        return f"at the {row} {col}"
    if row:
        return f"at the {row}"
    if col:
        return f"on the {col}"
    return "in the centre"


def caption(scene: Scene) -> str:
    """One-sentence description listing every object left to right.

    Example: ``"a large red circle at the top left and a small blue square at the bottom
    right."``
    """
    objects = sorted(scene.objects, key=lambda o: (o.x, o.y))
    parts = [
        f"a {o.size} {o.colour} {o.shape} {location_phrase(o, scene.image_size)}" for o in objects
    ]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return text + "."
