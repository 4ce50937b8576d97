"""Turning a request's image URLs into images, under the operator's policy.

The order of checks is the point: sizes are checked on the encoded text, then on the bytes, then
on the pixel count read from the file's *header* — a 20 000 x 20 000 PNG of a few hundred bytes
is refused before Pillow allocates its 1.2 GB. Only then is the image decoded. Remote URLs are
refused unless their host is allow-listed; local paths are refused unless they resolve (symlinks
followed) inside the operator's image folder.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import io
import re
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..model.images import InvalidImageError, load_image
from .protocol import APIError, ImageRef, Limits, bad_request

_DATA_URI = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?),", re.ASCII)


@dataclass(frozen=True)
class ImagePolicy:
    """Where images may come from.

    Args:
        allowed_hosts: Host names whose http(s) URLs may be fetched (exact, case-insensitive).
            Empty: every remote URL is refused.
        image_dir: The folder local paths (`file://` URLs or plain paths) must lie in. `None`:
            local paths are refused.
        fetch_timeout: Seconds allowed for fetching one allow-listed URL, all of it:
            connecting, the response head and the body (a host that trickles bytes is cut off).
    """

    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    image_dir: Path | None = None
    fetch_timeout: float = 10.0


def load_request_image(ref: ImageRef, policy: ImagePolicy, limits: Limits) -> Image.Image:
    """Loads one image part, or refuses it with a 400 naming the part.

    Args:
        ref: The image part's URL and field name.
        policy: Where images may come from.
        limits: Byte and pixel limits.

    Returns:
        An RGB PIL image.

    Raises:
        APIError: 400 for a refused source, bad encoding, oversize or unreadable image.
    """
    url = ref.url.strip()
    scheme = urllib.parse.urlsplit(url).scheme.lower() if ":" in url[:12] else ""
    if scheme == "data":
        data = _decode_data_uri(url, ref.param, limits)
    elif scheme in ("http", "https"):
        data = _fetch(url, ref.param, policy, limits)
    elif scheme in ("file", ""):
        data = _read_local(url, ref.param, policy, limits)
    else:
        raise bad_request(
            f"Unsupported image URL scheme {scheme!r}: send a data:image/...;base64 URI.",
            ref.param,
            "invalid_image_url",
        )
    return decode_image(data, ref.param, limits)


def decode_image(data: bytes, param: str, limits: Limits) -> Image.Image:
    """Checks the pixel count from the header, then decodes to RGB."""
    if len(data) > limits.max_image_bytes:
        raise _too_large(f"{len(data)} bytes", f"{limits.max_image_bytes} bytes", param)
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            width, height = img.size
    except Image.DecompressionBombError:
        raise _too_large("more pixels than Pillow allows", "", param) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise bad_request(
            f"{param} is not a readable image ({err}); send PNG, JPEG, WebP, GIF, ...",
            param,
            "invalid_image",
        ) from None
    if width * height > limits.max_image_pixels:
        raise _too_large(f"{width}x{height} pixels", f"{limits.max_image_pixels} pixels", param)
    try:
        return load_image(data)
    except InvalidImageError as err:
        raise bad_request(f"{param}: {err}", param, "invalid_image") from None


def _too_large(got: str, limit: str, param: str) -> APIError:
    limit = f" (the limit is {limit})" if limit else ""
    return bad_request(
        f"{param}: the image is too large: {got}{limit}. Downscale it first.",
        param,
        "image_too_large",
    )


def _decode_data_uri(url: str, param: str, limits: Limits) -> bytes:
    match = _DATA_URI.match(url)
    if match is None or ";base64" not in match["params"]:
        raise bad_request(
            f"{param} must be a base64 data URI, e.g. data:image/png;base64,iVBOR...",
            param,
            "invalid_image_url",
        )
    mime = (match["mime"] or "").lower()
    if mime and not mime.startswith("image/"):
        raise bad_request(
            f"{param} has media type {mime!r}; an image/* type is required.",
            param,
            "invalid_image",
        )
    encoded = url[match.end() :]
    # Checked on the encoded text, before decoding: 4 characters carry 3 bytes.
    if len(encoded) > (limits.max_image_bytes + 2) // 3 * 4 + 64:
        raise _too_large(f"about {len(encoded) * 3 // 4} bytes", f"{limits.max_image_bytes}", param)
    try:
        return base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise bad_request(
            f"{param} is not valid base64 ({err}); was it truncated?", param, "invalid_image"
        ) from None


def _fetch(url: str, param: str, policy: ImagePolicy, limits: Limits) -> bytes:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host not in policy.allowed_hosts:
        allowed = ", ".join(sorted(policy.allowed_hosts)) or "none: remote URLs are disabled"
        raise bad_request(
            f"{param}: fetching images from {host or url!r} is not allowed (allowed hosts: "
            f"{allowed}). Send the image as a data:image/...;base64 URI.",
            param,
            "image_url_not_allowed",
        )
    try:
        data = _get(url, policy.fetch_timeout, limits.max_image_bytes + 1)
    except TimeoutError:
        raise bad_request(
            f"{param}: fetching {url!r} took more than {policy.fetch_timeout} s.",
            param,
            "image_fetch_timeout",
        ) from None
    except (OSError, ValueError, http.client.HTTPException) as err:
        raise bad_request(
            f"{param}: could not fetch {url!r} ({err}).", param, "image_fetch_failed"
        ) from None
    if len(data) > limits.max_image_bytes:
        raise _too_large(f"more than {limits.max_image_bytes} bytes", "", param)
    return data


def _get(url: str, timeout: float, max_bytes: int) -> bytes:
    """GETs `url` within `timeout` seconds in all; redirects are refused, not followed.

    A timer shuts the socket down at the deadline, which ends a blocked read at once: per-read
    timeouts alone let a host that sends a byte every few seconds hold the fetch for ever.
    """
    parts = urllib.parse.urlsplit(url)
    https = parts.scheme.lower() == "https"
    connection_class = http.client.HTTPSConnection if https else http.client.HTTPConnection
    connection = connection_class(parts.hostname, parts.port, timeout=timeout)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        connection.request("GET", target, headers={"Accept": "image/*", "User-Agent": "mqt-llava"})
        response = connection.getresponse()
        if 300 <= response.status < 400:  # could lead off the allow-list (an internal address)
            raise ValueError(f"HTTP {response.status}: redirects are not followed")
        if response.status != 200:
            raise ValueError(f"HTTP {response.status} {response.reason}")
        data = bytearray()
        while len(data) < max_bytes and not expired.is_set():
            chunk = response.read1(min(65536, max_bytes - len(data)))
            if not chunk:
                break
            data += chunk
    except (OSError, http.client.HTTPException):
        if expired.is_set():
            raise TimeoutError from None
        raise
    finally:
        timer.cancel()
        connection.close()
    if expired.is_set():
        raise TimeoutError
    return bytes(data)


def _read_local(url: str, param: str, policy: ImagePolicy, limits: Limits) -> bytes:
    if policy.image_dir is None:
        raise bad_request(
            f"{param}: local image paths are disabled (the server was started without "
            "--image-dir). Send the image as a data:image/...;base64 URI.",
            param,
            "image_path_not_allowed",
        )
    if url.lower().startswith("file:"):
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise bad_request(f"{param}: remote file URLs are refused.", param, "invalid_image_url")
        url = urllib.parse.unquote(parts.path)
    root = policy.image_dir.resolve()
    try:
        path = (root / url).resolve()  # an absolute `url` replaces root; `..` and links resolve
        inside = path.is_relative_to(root)
    except (OSError, ValueError, RuntimeError):  # NUL bytes, symlink loops
        inside = False
    if not inside:
        raise bad_request(
            f"{param}: {url[:200]!r} is outside the image folder this server reads from.",
            param,
            "image_path_not_allowed",
        )
    try:
        if not path.is_file():
            message = f"{param}: no image file {url[:200]!r} in the image folder."
            raise bad_request(message, param, "not_found")
        size = path.stat().st_size
        if size > limits.max_image_bytes:
            raise _too_large(f"{size} bytes", f"{limits.max_image_bytes} bytes", param)
        return path.read_bytes()
    except OSError as err:  # a name longer than the filesystem allows, a directory, ...
        raise bad_request(
            f"{param}: cannot read {url[:200]!r} ({err.strerror or err}).",
            param,
            "invalid_image_url",
        ) from None
