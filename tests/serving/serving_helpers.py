"""Helpers of the serving tests: servers on loopback ports, images, hostile PNGs, messages."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from contextlib import contextmanager

import numpy as np
from PIL import Image

from mqt_llava.serving.background import BackgroundServer
from mqt_llava.serving.engine import Engine
from mqt_llava.serving.server import ServerSettings, create_app

MODEL_NAME = "tiny-mqt"


@contextmanager
def running_server(vlm, max_queue: int = 16, max_batch: int = 4, **settings):
    """A real uvicorn server with the tiny model on a free 127.0.0.1 port."""
    engine = Engine(vlm, max_queue=max_queue, max_batch=max_batch, default_max_tokens=8)
    app = create_app(engine, ServerSettings(model_name=MODEL_NAME, **settings))
    with BackgroundServer(app) as server:
        yield server


def png_bytes(size: int = 32, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG whose header claims width x height RGB pixels, with a tiny IDAT (~100 bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    idat = zlib.compress(b"\x00" * 4096, 9)  # decoding it would need width*height*3 bytes
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def user_message(text: str, *image_urls: str) -> dict:
    parts = [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
    return {"role": "user", "content": [*parts, {"type": "text", "text": text}]}


def jpeg_bytes(size: int = 32, seed: int = 0, **save_options) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", **save_options)
    return buffer.getvalue()


def many_scan_jpeg(scans: int = 3000, size: int = 64) -> bytes:
    """A progressive JPEG whose last refinement scan is repeated: tiny, slow to decode."""
    data = jpeg_bytes(size, progressive=True)
    last_scan = data.rindex(b"\xff\xda")
    end = data.rindex(b"\xff\xd9")
    return data[:end] + data[last_scan:end] * (scans - 1) + data[end:]


def corrupt_exif_jpeg() -> bytes:
    """A good JPEG whose EXIF block is not TIFF data (decodes; the EXIF cannot be parsed)."""
    return jpeg_bytes(32, exif=b"Exif\x00\x00XX\x00*\x00\x00\x00\x08")


def elongated_png(width: int, height: int) -> bytes:
    """A real (decodable) PNG of width x height, e.g. 1 x 10000: ~100 bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
