"""Loading images of any common kind as RGB, and the release's "pad" aspect handling."""

from __future__ import annotations

import io
from os import PathLike
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageInput = str | PathLike | bytes | Image.Image | np.ndarray

# Pillow refuses images above twice this many pixels before decoding them (decompression bombs);
# above it, once, it only warns. We turn the warning into a refusal too.
MAX_IMAGE_PIXELS = 89_478_485


class InvalidImageError(ValueError):
    """An input that cannot be used as an image (corrupt, empty, not an image, too large)."""


def load_image(image: ImageInput) -> Image.Image:
    """Opens an image and returns it as an 8-bit RGB PIL image.

    Modes are converted, not refused: transparency (RGBA, LA, P with a transparent colour) is
    composited over white, as `transformers`' image processors do; 16-bit and 32-bit greyscale are
    rescaled to 8 bits (not clipped); CMYK, YCbCr, L, 1 and palettes convert with Pillow. EXIF
    orientation is applied.

    Args:
        image: A path, encoded bytes, a PIL image, or an (H, W), (H, W, 3) or (H, W, 4) uint8 array.

    Returns:
        An RGB `PIL.Image.Image`.

    Raises:
        FileNotFoundError: For a path that does not exist.
        InvalidImageError: For empty, corrupt, truncated or non-image data, or an image larger
            than `MAX_IMAGE_PIXELS`.
    """
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        return to_rgb(_from_array(image))
    if isinstance(image, bytes):
        return _decode(io.BytesIO(image), "the given bytes")
    if isinstance(image, (str, PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"Image file not found: {path}")
        if path.stat().st_size == 0:
            raise InvalidImageError(f"Image file is empty (0 bytes): {path}")
        with path.open("rb") as handle:
            return _decode(handle, str(path))
    raise InvalidImageError(
        f"Unsupported image input of type {type(image).__name__}: pass a path, bytes, a PIL image "
        "or a uint8 NumPy array."
    )


def _decode(stream, source: str) -> Image.Image:
    try:
        with Image.open(stream) as img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InvalidImageError(
                    f"{source}: {width}x{height} pixels is more than the {MAX_IMAGE_PIXELS} "
                    "accepted; downscale the image first."
                )
            img.load()
            return to_rgb(img)
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as err:
        raise InvalidImageError(f"{source}: refused as a decompression bomb ({err}).") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InvalidImageError(
            f"{source} is not a readable image ({err}). Accepted: any format Pillow decodes "
            "(PNG, JPEG, WebP, GIF, BMP, TIFF, ...)."
        ) from err


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if (
        array.dtype != np.uint8
        or array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[-1] not in (3, 4))
    ):
        raise InvalidImageError(
            f"Arrays must be uint8 of shape (H, W), (H, W, 3) or (H, W, 4); got {array.dtype} "
            f"{array.shape}."
        )
    return Image.fromarray(array)


def to_rgb(img: Image.Image) -> Image.Image:
    """Converts any Pillow mode to 8-bit RGB (see `load_image` for the rules)."""
    img = ImageOps.exif_transpose(img)
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(img, dtype=np.float64)
        peak = values.max() if values.size else 0.0
        if img.mode == "F" and peak <= 1.0:
            values = values * 255.0
        elif peak > 255:  # 16-bit data (32-bit "I" holding 16-bit PNG values included)
            values = values / 257.0
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def expand_to_square(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """The release's "pad" aspect handling: centre the image on a square canvas.

    Args:
        img: An RGB image.
        background: Fill colour, `int(255 * mean)` per channel of the image processor's mean.

    Returns:
        A square RGB image of side `max(width, height)`.
    """
    width, height = img.size
    if width == height:
        return img
    side = max(width, height)
    canvas = Image.new(img.mode, (side, side), background)
    canvas.paste(img, ((side - width) // 2, (side - height) // 2))
    return canvas
