"""Heat-map overlays and the budgets x tokens grid figure (matplotlib, Agg backend, no pyplot)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

# Overlays are drawn at least this many pixels wide: the tiny and ShapesVQA models see 32-64 px.
MIN_DISPLAY_SIDE = 224


def _colormap(name: str):
    try:
        from matplotlib import colormaps
    except ImportError as err:  # matplotlib is the optional "viz" extra
        raise ImportError("Plotting maps needs matplotlib: pip install 'mqt-llava[viz]'.") from err
    return colormaps[name]


def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a (rows, cols) map to `size = (width, height)` pixels."""
    grid = Image.fromarray(np.asarray(cam, dtype=np.float32), mode="F")
    return np.asarray(grid.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)


def display_image(image: Image.Image, min_side: int = MIN_DISPLAY_SIDE) -> Image.Image:
    """The model's view of the image, enlarged (bicubic) when small so overlays stay readable."""
    scale = max(1, -(-min_side // max(image.size)))
    if scale == 1:
        return image.convert("RGB")
    return image.convert("RGB").resize(
        (image.width * scale, image.height * scale), Image.Resampling.BICUBIC
    )


def overlay(
    image: Image.Image,
    cam: np.ndarray,
    alpha: float = 0.5,
    cmap: str = "jet",
    normalise: str | None = "max",
) -> Image.Image:
    """Blends a patch-grid map over an image.

    Args:
        image: The image the model saw (square after "pad"); enlarged for display when small.
        cam: (rows, cols) map; values in [0, 1], or any non-negative values with `normalise`.
        alpha: Opacity of the heat map.
        cmap: A matplotlib colormap name.
        normalise: `"max"` divides the map by its maximum, `"minmax"` stretches it from its
            minimum to its maximum (for attention maps, which are near-uniform probabilities),
            `None` uses it as it is.

    Returns:
        An RGB image of the display size.
    """
    base = display_image(image)
    cam = np.asarray(cam, dtype=np.float32)
    if normalise not in ("max", "minmax", None):
        raise ValueError(f"normalise must be 'max', 'minmax' or None, got {normalise!r}.")
    low = float(cam.min()) if normalise == "minmax" else 0.0
    high = float(cam.max()) if normalise else 1.0
    if high > low:
        cam = (cam - low) / (high - low)
    heat = upsample(np.clip(cam, 0.0, 1.0), base.size)  # (H, W)
    colours = _colormap(cmap)(heat)[..., :3]  # (H, W, 3) in [0, 1]
    picture = np.asarray(base, dtype=np.float32) / 255.0
    blended = (1 - alpha) * picture + alpha * colours
    return Image.fromarray(np.round(blended * 255).astype(np.uint8), "RGB")


def save_grid(
    image: Image.Image,
    maps: Mapping[int, Mapping[int, np.ndarray]],
    path: str | Path,
    tokens: Sequence[int] | None = None,
    title: str | None = None,
    row_labels: Mapping[int, str] | None = None,
    normalise: str | None = "max",
    cell_inches: float = 1.6,
    dpi: int = 80,
) -> Path:
    """The teaser-style figure: one row per budget, one column per token, the image first.

    Args:
        image: The image the model saw.
        maps: budget -> token -> (rows, cols) map (missing tokens leave a blank cell).
        path: Where to write the PNG.
        tokens: Columns to show (default: every token present, in order).
        title: Figure title.
        row_labels: budget -> extra text under the row's label (e.g. the answer).
        normalise: Colour scaling of each map, as in [`overlay`].
        cell_inches: Size of one cell.
        dpi: Resolution; the defaults keep a 4 x 5 grid around 100 kB.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _colormap("jet")  # a clear message if matplotlib is missing
    budgets = list(maps)
    if tokens is None:
        tokens = sorted({k for per_budget in maps.values() for k in per_budget})
    rows, cols = len(budgets), len(tokens) + 1
    figure = Figure(
        figsize=(cell_inches * cols, cell_inches * rows + (0.3 if title else 0.0)),
        dpi=dpi,
        layout="constrained",
    )
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False)
    for r, m in enumerate(budgets):
        axes[r, 0].imshow(display_image(image))
        label = f"{m} tokens"
        if row_labels and row_labels.get(m):
            text = "".join(ch for ch in row_labels[m] if ch.isprintable())  # no control glyphs
            label += f"\n{text[:18]}"
        axes[r, 0].set_ylabel(label, fontsize=8)
        for c, k in enumerate(tokens, start=1):
            if k in maps[m]:
                axes[r, c].imshow(overlay(image, maps[m][k], normalise=normalise))
            if r == 0:
                axes[r, c].set_title(f"token {k}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(ax.has_data())
    if title:
        figure.suptitle(title, fontsize=9)
    canvas.draw()
    rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A 256-colour palette keeps the figure small enough to commit (about a third of the bytes).
    rgb.quantize(256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
    return path
