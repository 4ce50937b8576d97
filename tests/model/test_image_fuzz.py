"""Fuzzing `load_image` and the processor with a seeded corpus of mutated files.

Eight kinds of file (PNG, 16-bit PNG, baseline and progressive JPEG, GIF, BMP, TIFF, WebP) are
mutated in ways decoders meet in the wild: flipped bits, overwritten bytes, truncation, a
repeated or dropped span, and header dimensions rewritten. `load_image` may only return an RGB
image or raise `InvalidImageError` (its documented error); whatever it accepts, the processor
must preprocess, and loading its own output again must give the same pixels.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from PIL import Image

from mqt_llava.model.images import (
    MAX_CANVAS_SIDE,
    InvalidImageError,
    expand_to_square,
    jpeg_scan_count,
    load_image,
)

MUTANTS_PER_FORMAT = 60


def _encode(fmt: str, **options) -> bytes:
    rng = np.random.default_rng(len(fmt))
    pixels = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    if options.pop("sixteen_bit", False):
        img = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257).convert("I;16")
    if fmt == "GIF":
        img = img.convert("P")
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


SEEDS = {
    "png": _encode("PNG"),
    "png16": _encode("PNG", sixteen_bit=True),
    "jpeg": _encode("JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"),
    "jpeg-progressive": _encode("JPEG", progressive=True),
    "gif": _encode("GIF"),
    "bmp": _encode("BMP"),
    "tiff": _encode("TIFF", compression="tiff_deflate"),
    "webp": _encode("WEBP", quality=80),
}


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One seeded mutation of `data` (the header is hit more often than the rest)."""
    out = bytearray(data)
    kind = int(rng.integers(6))
    span = min(len(out), 64) if rng.random() < 0.5 else len(out)  # header-biased
    if kind == 0:  # flip bits
        for _ in range(int(rng.integers(1, 9))):
            out[int(rng.integers(span))] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # overwrite bytes with extremes
        for _ in range(int(rng.integers(1, 5))):
            out[int(rng.integers(span))] = int(rng.choice([0x00, 0xFF, 0x7F, 0x80]))
    elif kind == 2:  # truncate
        out = out[: int(rng.integers(1, len(out)))]
    elif kind == 3:  # repeat a span
        a = int(rng.integers(len(out)))
        b = min(len(out), a + int(rng.integers(1, 200)))
        out[a:a] = out[a:b] * int(rng.integers(2, 20))
    elif kind == 4:  # drop a span
        a = int(rng.integers(len(out)))
        del out[a : a + int(rng.integers(1, 100))]
    else:  # a 32-bit big- or little-endian dimension-like field rewritten
        at = int(rng.integers(max(1, min(len(out), 40) - 4)))
        value = int(rng.choice([0, 1, 65535, 100_000, 2**31 - 1]))
        out[at : at + 4] = struct.pack(">I" if rng.random() < 0.5 else "<I", value)
    return bytes(out)


def corpus():
    for name, seed in SEEDS.items():
        rng = np.random.default_rng(sum(name.encode()))  # seeded: the same corpus every run
        for i in range(MUTANTS_PER_FORMAT):
            yield f"{name}-{i}", mutate(seed, rng)


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


def test_the_seeds_themselves_load(processor):
    for name, data in SEEDS.items():
        img = load_image(data)
        assert img.mode == "RGB" and img.size == (20, 24), name
        assert processor.preprocess_images([data]).shape[0] == 1


def test_mutated_files_load_or_raise_the_documented_error(processor):
    accepted = refused = 0
    for name, data in corpus():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF, truncated files
            try:
                img = load_image(data)
            except InvalidImageError:
                refused += 1
                continue
            except Exception as err:  # anything else is a bug
                pytest.fail(f"{name}: load_image raised {type(err).__name__}: {err}")
            accepted += 1
            assert img.mode == "RGB", name
            again = load_image(img)  # idempotent: its own output loads to the same pixels
            assert np.array_equal(np.asarray(again), np.asarray(img)), name
            try:
                pixels = processor.preprocess_images([img, data])
            except Exception as err:
                pytest.fail(f"{name}: accepted by load_image, processor raised {err!r}")
            assert pixels.shape[0] == 2 and bool(pixels.isfinite().all()), name
    # The corpus exercises both outcomes in quantity, or it tests nothing.
    assert accepted >= 50 and refused >= 50, (accepted, refused)


@pytest.mark.parametrize(
    ("width", "height"), [(1, 10000), (10000, 1), (1, 65), (3, 200), (10_000, 100)]
)
def test_elongated_images_are_refused_before_any_canvas(processor, width, height):
    img = Image.new("RGB", (width, height))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    with pytest.raises(InvalidImageError, match="elongated"):
        load_image(buffer.getvalue())
    with pytest.raises(InvalidImageError, match="elongated"):
        processor.preprocess_images([img])
    with pytest.raises(InvalidImageError, match="elongated"):
        expand_to_square(img, (0, 0, 0))


def test_large_images_are_downscaled_before_padding():
    img = Image.new("RGB", (MAX_CANVAS_SIDE * 2, MAX_CANVAS_SIDE // 2), (10, 200, 30))
    square = expand_to_square(img, (1, 2, 3))
    assert square.size == (MAX_CANVAS_SIDE, MAX_CANVAS_SIDE)
    small = Image.new("RGB", (40, 10), (10, 200, 30))
    padded = expand_to_square(small, (1, 2, 3))  # below the bound: the release's exactly
    assert padded.size == (40, 40) and padded.getpixel((0, 0)) == (1, 2, 3)


def test_jpeg_scans_are_counted_and_bounded():
    progressive = _encode("JPEG", progressive=True)
    assert jpeg_scan_count(_encode("JPEG")) == 1
    assert 2 <= jpeg_scan_count(progressive) <= 12
    last, end = progressive.rindex(b"\xff\xda"), progressive.rindex(b"\xff\xd9")
    bomb = progressive[:end] + progressive[last:end] * 500 + progressive[end:]
    assert jpeg_scan_count(bomb) > 500
    with pytest.raises(InvalidImageError, match="scans"):
        load_image(bomb)


def test_corrupt_exif_is_ignored_and_loading_is_idempotent():
    data = _encode("JPEG", exif=b"Exif\x00\x00XX\x00*\x00\x00\x00\x08")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        once = load_image(data)
        twice = load_image(once)  # used to raise SyntaxError: the corrupt EXIF was kept
    assert "exif" not in once.info
    assert np.array_equal(np.asarray(once), np.asarray(twice))


def test_a_tiny_file_claiming_a_huge_image_is_refused_not_a_memory_error(tmp_path):
    """Under an address-space cap, as in the issue: InvalidImageError, never MemoryError."""
    code = textwrap.dedent(
        """
        import io, resource, struct, sys, zlib
        from mqt_llava.model.images import InvalidImageError, load_image

        def chunk(kind, data):
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        # 9000 x 9000 16-bit RGBA: within MAX_IMAGE_PIXELS, 648 MB decoded; ~100 bytes encoded
        ihdr = struct.pack(">IIBBBBB", 9000, 9000, 16, 6, 0, 0, 0)
        png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", ihdr)
               + chunk(b"IDAT", zlib.compress(b"\\x00" * 1000)) + chunk(b"IEND", b""))
        size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (size + 256 * 2**20, resource.RLIM_INFINITY))
        try:
            load_image(png)
        except InvalidImageError as err:
            print("refused:", err)
            sys.exit(0)
        sys.exit("accepted")
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout
    assert "refused:" in proc.stdout
