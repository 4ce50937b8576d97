"""Loading images of any common kind as RGB, and the release's "pad" aspect handling.

Every image goes through [`load_image`] and, with `image_aspect_ratio="pad"`, through
[`expand_to_square`], whatever the caller (the server, `ask`, evaluation, training). The work
either may do is bounded *before* anything is allocated or decoded:

- at most `MAX_IMAGE_PIXELS` pixels, read from the file's header;
- an aspect ratio of at most `MAX_ASPECT_RATIO` (a 1 x 10000 PNG of 120 bytes would otherwise
  become a 10000 x 10000 padded canvas);
- at most `MAX_JPEG_SCANS` scans in a JPEG (each progressive scan re-decodes the whole image:
  a 73 KB file of 3000 scans took seconds);
- a padded canvas of at most `MAX_CANVAS_SIDE` per side (a larger image is downscaled first).
"""

from __future__ import annotations

import io
from os import PathLike
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageInput = str | PathLike | bytes | Image.Image | np.ndarray

# Pillow refuses images above twice this many pixels before decoding them (decompression bombs);
# above it, once, it only warns. We turn the warning into a refusal too.
MAX_IMAGE_PIXELS = 89_478_485
# Longer side over shorter side. Panoramas and receipts stay far below it.
MAX_ASPECT_RATIO = 64
# Scans in one JPEG. libjpeg's progressive scripts use about 10; decoding cost grows with each.
MAX_JPEG_SCANS = 64
# Side of the padded square. The backbone resizes the square to ~336 px anyway; an image whose
# longer side is above this is downscaled (bicubic, aspect kept) before padding, so the canvas
# holds at most 2048 x 2048 x 3 bytes (12 MiB) whatever the input.
MAX_CANVAS_SIDE = 2048


class InvalidImageError(ValueError):
    """An input that cannot be used as an image (corrupt, empty, not an image, too large)."""


def load_image(image: ImageInput) -> Image.Image:
    """Opens an image and returns it as an 8-bit RGB PIL image.

    Modes are converted, not refused: transparency (RGBA, LA, P with a transparent colour) is
    composited over white, as `transformers`' image processors do; 16-bit and 32-bit greyscale
    are rescaled to 8 bits from their type's range, not clipped (values up to 255 are 8-bit, up
    to 65535 16-bit, above that 32-bit; float images in [0, 1] are scaled by 255); CMYK, YCbCr,
    L, 1 and palettes convert with Pillow. EXIF orientation is applied (a corrupt EXIF block is
    ignored) and the result carries no EXIF, so loading the result again gives the same image.

    Args:
        image: A path, encoded bytes, a PIL image, or an (H, W), (H, W, 3) or (H, W, 4) uint8 array.

    Returns:
        An RGB `PIL.Image.Image`.

    Raises:
        FileNotFoundError: For a path that does not exist.
        InvalidImageError: For empty, corrupt, truncated or non-image data, an image larger
            than `MAX_IMAGE_PIXELS`, more elongated than `MAX_ASPECT_RATIO`, a JPEG of more than
            `MAX_JPEG_SCANS` scans, or one too large to decode in the memory available.
    """
    if isinstance(image, Image.Image):
        _check_size(*image.size, "the given image")
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        img = _from_array(image)
        _check_size(*img.size, "the given array")
        return to_rgb(img)
    if isinstance(image, bytes):
        return _decode(io.BytesIO(image), "the given bytes")
    if isinstance(image, (str, PathLike)):
        path = Path(image)
        try:
            found, size = path.is_file(), path.stat().st_size if path.is_file() else 0
        except OSError as err:  # a name too long for the filesystem, a NUL byte, ...
            raise InvalidImageError(f"Cannot open image path {str(path)[:200]!r}: {err}.") from err
        except ValueError as err:
            raise InvalidImageError(f"Invalid image path {str(path)[:200]!r}: {err}.") from err
        if not found:
            raise FileNotFoundError(f"Image file not found: {path}")
        if size == 0:
            raise InvalidImageError(f"Image file is empty (0 bytes): {path}")
        with path.open("rb") as handle:
            return _decode(handle, str(path))
    raise InvalidImageError(
        f"Unsupported image input of type {type(image).__name__}: pass a path, bytes, a PIL image "
        "or a uint8 NumPy array."
    )


def _check_size(width: int, height: int, source: str) -> None:
    if width < 1 or height < 1:
        raise InvalidImageError(f"{source}: {width}x{height} pixels is an empty image.")
    if width * height > MAX_IMAGE_PIXELS:
        raise InvalidImageError(
            f"{source}: {width}x{height} pixels is more than the {MAX_IMAGE_PIXELS} "
            "accepted; downscale the image first."
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise InvalidImageError(
            f"{source}: {width}x{height} pixels is more elongated than the {MAX_ASPECT_RATIO}:1 "
            "accepted; crop the image first."
        )


def _decode(stream: BinaryIO, source: str) -> Image.Image:
    try:
        with Image.open(stream) as img:
            _check_size(*img.size, source)  # from the header: nothing decoded yet
            if img.format in ("JPEG", "MPO"):
                stream.seek(0)
                scans = jpeg_scan_count(stream.read())
                if scans > MAX_JPEG_SCANS:
                    raise InvalidImageError(
                        f"{source}: a JPEG of {scans} scans is refused (at most {MAX_JPEG_SCANS} "
                        "are accepted); re-encode it."
                    )
            img.load()
            return to_rgb(img)
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as err:
        raise InvalidImageError(f"{source}: refused as a decompression bomb ({err}).") from err
    except MemoryError as err:
        raise InvalidImageError(f"{source}: too large to decode in the memory available.") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        raise InvalidImageError(
            f"{source} is not a readable image ({err}). Accepted: any format Pillow decodes "
            "(PNG, JPEG, WebP, GIF, BMP, TIFF, ...)."
        ) from err


def jpeg_scan_count(data: bytes) -> int:
    """Counts the start-of-scan markers in a JPEG's main stream, without decoding it.

    Segments are walked by their lengths, so an EXIF thumbnail (inside an APPn segment) is not
    counted; entropy-coded data is skipped to the next marker that is neither a stuffed `FF 00`
    nor a restart marker. Stops at the end of the image or at anything malformed (the decoder
    then reports it).
    """
    scans, i, n = 0, 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        if marker == 0xD9 or i + 4 > n:  # end of image
            break
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker != 0xDA:
            continue
        scans += 1
        while True:  # the scan's entropy-coded data
            j = data.find(b"\xff", i)
            if j < 0 or j + 1 >= n:
                return scans
            following = data[j + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:
                i = j + 2
            elif following == 0xFF:
                i = j + 1
            else:
                i = j
                break
    return scans


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


def _orient(img: Image.Image) -> Image.Image:
    """Applies the EXIF orientation; a corrupt EXIF block is ignored (the image is still good)."""
    try:
        return ImageOps.exif_transpose(img)
    # EXIF parsing fails in many ways on damaged data (SyntaxError, struct.error, KeyError, ...):
    # none of them makes the pixels unusable.
    except Exception:
        return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Converts any Pillow mode to 8-bit RGB (see `load_image` for the rules).

    The result is a new image without EXIF or XMP metadata (its orientation is applied), so
    converting it again is a no-op.
    """
    out = _orient(img)
    if out.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(out, dtype=np.float64)
        peak = values.max() if values.size else 0.0
        # The range is read off the peak, as the modes do not say it: Pillow opens 16-bit PNGs
        # as 32-bit "I", and float images come in [0, 1] or in an integer type's range.
        if out.mode == "F" and peak <= 1.0:
            values = values * 255.0
        elif peak > 65535:  # 32-bit data: the full range of a signed 32-bit integer
            values = values * (255.0 / (2**31 - 1))
        elif peak > 255:  # 16-bit data
            values = values / 257.0
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        out = Image.fromarray(grey).convert("RGB")
    elif out.mode != "RGB":
        has_alpha = out.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
            out.mode == "P" and "transparency" in out.info
        )
        if has_alpha:
            rgba = out.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            out = Image.alpha_composite(background, rgba).convert("RGB")
        else:
            out = out.convert("RGB")
    if out is img:  # never hand back (or strip the metadata of) the caller's own object
        out = img.copy()
    for key in ("exif", "xmp", "XML:com.adobe.xmp"):
        out.info.pop(key, None)
    return out


def expand_to_square(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """The release's "pad" aspect handling: centre the image on a square canvas.

    An image whose longer side exceeds `MAX_CANVAS_SIDE` is first downscaled (bicubic, aspect
    kept) so that the canvas never holds more than `MAX_CANVAS_SIDE` squared pixels; below that
    the result is the release's exactly.

    Args:
        img: An RGB image.
        background: Fill colour, `int(255 * mean)` per channel of the image processor's mean.

    Returns:
        A square RGB image of side `min(max(width, height), MAX_CANVAS_SIDE)`.

    Raises:
        InvalidImageError: For an image more elongated than `MAX_ASPECT_RATIO` (checked before
            the canvas is allocated).
    """
    # Why not transformers' `LlavaImageProcessorPil(do_pad=True)`: below `MAX_CANVAS_SIDE` its
    # pixels are identical to these (same `int(255 * mean)` colour, same `(side - w) // 2`
    # placement; tests/model/test_pad_to_square.py), but (1) it pads at full size, so an image
    # our limits accept (75000 x 1200) would need a 17 GB canvas, and (2) it bundles CLIP-style
    # resize and crop, whereas padding here comes before any backbone's own image processor.
    width, height = img.size
    _check_size(width, height, "the image")
    if max(width, height) > MAX_CANVAS_SIDE:
        scale = MAX_CANVAS_SIDE / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        img = img.resize((width, height), Image.Resampling.BICUBIC)
    if width == height:
        return img
    side = max(width, height)
    canvas = Image.new(img.mode, (side, side), background)
    canvas.paste(img, ((side - width) // 2, (side - height) // 2))
    return canvas
