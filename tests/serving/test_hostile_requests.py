"""Malformed and hostile requests: each gets the right 4xx in OpenAI's error shape, fast, and the
server answers valid requests afterwards (it neither answers 500 nor dies).

Each case is timed and its peak memory measured (the process's peak RSS is reset before it
through /proc/self/clear_refs): none may cost more than 5 s or 200 MB. Each is followed by a
valid request that must be answered 200. `scripts/hostile_cost.py` prints the figures.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import httpx
import pytest
from serving_helpers import (
    MODEL_NAME,
    corrupt_exif_jpeg,
    data_uri,
    elongated_png,
    jpeg_bytes,
    many_scan_jpeg,
    png_bomb,
    png_bytes,
    running_server,
    user_message,
)

from mqt_llava.serving.image_sources import ImagePolicy
from mqt_llava.serving.protocol import Limits

KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}
LIMITS = Limits(
    max_request_bytes=256 * 1024, max_image_bytes=64 * 1024, max_image_pixels=100 * 100,
    max_images=2, max_tokens=64,
)  # fmt: skip


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    images, outside = root / "images", root / "outside"
    images.mkdir()
    outside.mkdir()
    (images / "ok.png").write_bytes(png_bytes())
    (outside / "secret.png").write_bytes(png_bytes(seed=1))
    (images / "link.png").symlink_to(outside / "secret.png")
    return images, outside


@pytest.fixture(scope="module")
def server(tiny_vlm, folders):
    policy = ImagePolicy(allowed_hosts=frozenset({"images.allowed.test"}), image_dir=folders[0])
    with running_server(tiny_vlm, api_key=KEY, limits=LIMITS, images=policy) as server:
        yield server


def body(*messages, **fields) -> dict:
    messages = messages or (user_message("What is this?", data_uri(png_bytes())),)
    return {"model": MODEL_NAME, "messages": list(messages), "max_tokens": 4, **fields}


def with_image(url: str) -> dict:
    return body(user_message("What is this?", url))


def encoded(payload) -> bytes:
    return json.dumps(payload).encode()


PNG = png_bytes()
B64 = base64.b64encode(PNG).decode()
LONG_TEXT = "tell me about the picture " * 100  # ~700 tokens: more than the LM's 512 positions
HUGE_TEXT = "tell me about the picture " * 400  # more than the tokenizer's 2048 tokens

# (id, raw body or JSON payload, extra headers, status, error code, param)
CASES = [
    ("bad-json", b'{"model": "tiny-mqt", "messages": [', {}, 400, "invalid_json", None),
    ("not-utf8", b"\xff\xfe{}", {}, 400, "invalid_json", None),
    ("nan", b'{"model": "tiny-mqt", "messages": [], "temperature": NaN}', {}, 400, "invalid_json",
     None),
    ("deep-nesting", b"[" * 50_000, {}, 400, "invalid_json", None),
    ("array-body", encoded([body()]), {}, 400, "invalid_type", None),
    ("no-messages", encoded({"model": MODEL_NAME}), {}, 400, "invalid_value", "messages"),
    ("empty-messages", encoded(body(messages=[])), {}, 400, "invalid_value", "messages"),
    ("messages-string", encoded(body(messages="hi")), {}, 400, "invalid_value", "messages"),
    ("tool-role", encoded(body({"role": "tool", "content": "x"})), {}, 400, "invalid_value",
     "messages[0].role"),
    ("content-number", encoded(body({"role": "user", "content": 7})), {}, 400, "invalid_value",
     "messages[0].content"),
    ("part-audio", encoded(body({"role": "user", "content": [{"type": "input_audio"}]})), {}, 400,
     "invalid_value", "messages[0].content[0]"),
    ("text-not-string", encoded(body({"role": "user", "content": [{"type": "text", "text": 3}]})),
     {}, 400, "invalid_value", "messages[0].content[0].text"),
    ("literal-image-token", encoded(body(user_message("Describe <image> please"))), {}, 400,
     "reserved_token", "messages[0].content[0].text"),
    ("image-in-assistant", encoded(body(
        user_message("hi"),
        {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
        user_message("and?"))), {}, 400, "invalid_value", "messages[1].content[0]"),
    ("last-is-assistant", encoded(body(user_message("hi"), {"role": "assistant", "content": "x"})),
     {}, 400, "invalid_value", "messages[1].role"),
    ("system-not-first", encoded(body(user_message("hi"), {"role": "system", "content": "x"},
                                      user_message("hi"))), {}, 400, "invalid_value",
     "messages[1].role"),
    ("too-many-images", encoded(body(user_message("x", *[data_uri(PNG)] * 3))), {}, 400,
     "too_many_images", "messages"),
    *[(f"budget-{name}", encoded(body(num_visual_tokens=value)), {}, 400, "invalid_value",
       "num_visual_tokens")
      for name, value in [("0", 0), ("M+1", 17), ("-1", -1), ("2.5", 2.5), ("str", "8"),
                          ("true", True), ("list", [4])]],
    ("max-tokens-0", encoded(body(max_tokens=0)), {}, 400, "invalid_value", "max_tokens"),
    ("max-tokens-negative", encoded(body(max_tokens=-5)), {}, 400, "invalid_value", "max_tokens"),
    ("max-tokens-over-limit", encoded(body(max_tokens=65)), {}, 400, "invalid_value",
     "max_tokens"),
    ("max-tokens-string", encoded(body(max_tokens="4")), {}, 400, "invalid_type", "max_tokens"),
    ("temperature-negative", encoded(body(temperature=-0.5)), {}, 400, "invalid_value",
     "temperature"),
    ("temperature-string", encoded(body(temperature="hot")), {}, 400, "invalid_type",
     "temperature"),
    ("top-p-zero", encoded(body(top_p=0)), {}, 400, "invalid_value", "top_p"),
    ("stop-five", encoded(body(stop=["a", "b", "c", "d", "e"])), {}, 400, "invalid_value", "stop"),
    ("stop-number", encoded(body(stop=3)), {}, 400, "invalid_value", "stop"),
    ("seed-float", encoded(body(seed=1.5)), {}, 400, "invalid_type", "seed"),
    ("stream-string", encoded(body(stream="yes")), {}, 400, "invalid_type", "stream"),
    ("stream-with-bad-budget", encoded(body(stream=True, num_visual_tokens=99)), {}, 400,
     "invalid_value", "num_visual_tokens"),
    ("stream-options-without-stream", encoded(body(stream_options={"include_usage": True})), {},
     400, "invalid_value", "stream_options"),
    ("n-2", encoded(body(n=2)), {}, 400, "unsupported_value", "n"),
    ("unknown-field", encoded(body(foo=1)), {}, 400, "unknown_parameter", "foo"),
    ("unknown-model", encoded({**body(), "model": "gpt-4o"}), {}, 404, "model_not_found", "model"),
    ("truncated-base64", encoded(with_image(f"data:image/png;base64,{B64[:-3]}")), {}, 400,
     "invalid_image", "messages[0].content[0].image_url"),
    ("truncated-png", encoded(with_image(data_uri(PNG[: len(PNG) // 2]))), {}, 400,
     "invalid_image", "messages[0].content[0].image_url"),
    ("not-an-image", encoded(with_image(data_uri(b"hello, I am text" * 8))), {}, 400,
     "invalid_image", "messages[0].content[0].image_url"),
    ("text-media-type", encoded(with_image(data_uri(PNG, "text/plain"))), {}, 400,
     "invalid_image", "messages[0].content[0].image_url"),
    ("data-uri-not-base64", encoded(with_image("data:image/png,rawbytes")), {}, 400,
     "invalid_image_url", "messages[0].content[0].image_url"),
    ("png-bomb-20000x20000", encoded(with_image(data_uri(png_bomb()))), {}, 400,
     "image_too_large", "messages[0].content[0].image_url"),
    ("pixels-over-limit-from-header", encoded(with_image(data_uri(png_bomb(101, 100)))), {}, 400,
     "image_too_large", "messages[0].content[0].image_url"),
    ("image-bytes-over-limit", encoded(with_image(data_uri(png_bytes(size=160)))), {}, 400,
     "image_too_large", "messages[0].content[0].image_url"),
    ("remote-url", encoded(with_image("https://example.com/cat.png")), {}, 400,
     "image_url_not_allowed", "messages[0].content[0].image_url"),
    ("remote-url-userinfo-trick", encoded(with_image("http://images.allowed.test@evil.test/a.png")),
     {}, 400, "image_url_not_allowed", "messages[0].content[0].image_url"),
    ("remote-url-suffix-trick", encoded(with_image("https://images.allowed.test.evil.test/a.png")),
     {}, 400, "image_url_not_allowed", "messages[0].content[0].image_url"),
    ("ftp-url", encoded(with_image("ftp://images.allowed.test/a.png")), {}, 400,
     "invalid_image_url", "messages[0].content[0].image_url"),
    ("absolute-path-outside", encoded(with_image("/etc/passwd")), {}, 400,
     "image_path_not_allowed", "messages[0].content[0].image_url"),
    ("relative-path-escape", encoded(with_image("../outside/secret.png")), {}, 400,
     "image_path_not_allowed", "messages[0].content[0].image_url"),
    ("file-url-outside", encoded(with_image("file:///etc/hostname")), {}, 400,
     "image_path_not_allowed", "messages[0].content[0].image_url"),
    ("symlink-out-of-folder", encoded(with_image("link.png")), {}, 400, "image_path_not_allowed",
     "messages[0].content[0].image_url"),
    ("missing-file-in-folder", encoded(with_image("nope.png")), {}, 400, "not_found",
     "messages[0].content[0].image_url"),
    ("context-too-long", encoded(body(user_message(LONG_TEXT))), {}, 400,
     "context_length_exceeded", "messages"),
    ("prompt-over-tokenizer-limit", encoded(body(user_message(HUGE_TEXT))), {}, 400,
     "invalid_value", "messages"),
    ("oversize-body", encoded(body(user_message("x" * 300_000))), {}, 413, "request_too_large",
     None),
    ("missing-api-key", encoded(body()), {"Authorization": ""}, 401, "missing_api_key", None),
    ("wrong-api-key", encoded(body()), {"Authorization": "Bearer nope"}, 401, "invalid_api_key",
     None),
]  # fmt: skip

IMAGE = "messages[0].content[0].image_url"
TEXT_BODY = {"model": MODEL_NAME, "messages": [user_message("hi")], "max_tokens": 2}


def raw_json(text: str) -> bytes:
    """A body written by hand: JSON escapes such as a lone \\ud800 survive as written."""
    return text.replace("MODEL", MODEL_NAME).encode()


# Issue 16's classes: amplification, slow decoding, 500s, cross-site use, max_tokens.
NEW_CASES = [
    # 1. pad-to-square amplification: within the pixel limit, refused before any canvas exists
    *[(f"elongated-{w}x{h}", encoded(with_image(data_uri(elongated_png(w, h)))), {}, 400,
       "invalid_image", IMAGE)
      for w, h in [(1, 10000), (10000, 1), (2, 5000), (5000, 2), (10, 1000), (1000, 10),
                   (12, 800)]],
    ("elongated-1x100000-header", encoded(with_image(data_uri(png_bomb(1, 100000)))), {}, 400,
     "image_too_large", IMAGE),
    ("elongated-gif-1x9000", encoded(with_image(data_uri(elongated_png(1, 9000)))), {}, 400,
     "invalid_image", IMAGE),
    # 2. slow decoding: progressive JPEGs with repeated refinement scans
    *[(f"jpeg-{n}-scans", encoded(with_image(data_uri(many_scan_jpeg(n, size=8), "image/jpeg"))),
       {}, 400, "invalid_image", IMAGE) for n in (65, 300, 1000)],
    # 5. formerly 500s
    ("lone-surrogate-text", raw_json('{"model": "MODEL", "messages": [{"role": "user", '
                                     '"content": "hi \\ud800"}]}'), {}, 400, "invalid_json", None),
    ("lone-low-surrogate", raw_json('{"model": "MODEL", "messages": [{"role": "user", '
                                    '"content": "\\udfff"}]}'), {}, 400, "invalid_json", None),
    ("surrogate-in-part", raw_json('{"model": "MODEL", "messages": [{"role": "user", "content": '
                                   '[{"type": "text", "text": "a\\ud83d"}]}]}'), {}, 400,
     "invalid_json", None),
    ("surrogate-in-model", raw_json('{"model": "\\ud800", "messages": []}'), {}, 400,
     "invalid_json", None),
    ("surrogate-in-key", raw_json('{"model": "MODEL", "\\ud800": 1, "messages": []}'), {}, 400,
     "invalid_json", None),
    ("surrogate-in-stop", raw_json('{"model": "MODEL", "messages": [{"role": "user", '
                                   '"content": "hi"}], "stop": ["\\ud800"]}'), {}, 400,
     "invalid_json", None),
    ("surrogate-in-system", raw_json('{"model": "MODEL", "messages": [{"role": "system", '
                                     '"content": "\\udbff"}, {"role": "user", "content": "x"}]}'),
     {}, 400, "invalid_json", None),
    ("surrogate-in-image-url", raw_json('{"model": "MODEL", "messages": [{"role": "user", '
                                        '"content": [{"type": "image_url", "image_url": '
                                        '{"url": "\\ud800.png"}}]}]}'), {}, 400, "invalid_json",
     None),
    ("path-too-long", encoded(with_image("a" * 5000 + ".png")), {}, 400, "invalid_image_url",
     IMAGE),
    ("path-component-too-long", encoded(with_image("b" * 300 + "/x.png")), {}, 400,
     "invalid_image_url", IMAGE),
    ("path-too-deep", encoded(with_image("d/" * 3000 + "x.png")), {}, 400, "invalid_image_url",
     IMAGE),
    ("file-url-too-long", encoded(with_image("file://" + "c" * 5000)), {}, 400,
     "invalid_image_url", IMAGE),
    ("path-nul-byte", encoded(with_image("ok.png\x00.png")), {}, 400, "image_path_not_allowed",
     IMAGE),
    ("path-is-a-folder", encoded(with_image(".")), {}, 400, "not_found", IMAGE),
    # 6. cross-site use of a keyless server: DNS rebinding and CORS-simple requests
    *[(f"host-{name}", encoded(body()), {"Host": host}, 421, "invalid_host", None)
      for name, host in [("evil", "evil.example"), ("evil-port", "evil.example:8000"),
                         ("loopback-suffix", "127.0.0.1.evil.example"),
                         ("localhost-suffix", "localhost.evil.example"), ("empty", ""),
                         ("ipv6-other", "[::2]:80"), ("at-trick", "127.0.0.1@evil.example")]],
    *[(f"content-type-{name}", encoded(body()), {"Content-Type": value}, 415,
       "unsupported_media_type", None)
      for name, value in [("text-plain", "text/plain"),
                          ("form", "application/x-www-form-urlencoded"),
                          ("multipart", "multipart/form-data; boundary=x"), ("none", ""),
                          ("json-lookalike", "application/jsonp"), ("star", "*/*")]],
    ("max-tokens-bad-beside-max-completion", encoded(body(max_tokens=-1, max_completion_tokens=4)),
     {}, 400, "invalid_value", "max_tokens"),
    ("max-tokens-string-beside-max-completion",
     encoded(body(max_tokens="x", max_completion_tokens=4)), {}, 400, "invalid_type", "max_tokens"),
    ("max-completion-bad-beside-max-tokens", encoded(body(max_tokens=4, max_completion_tokens=0)),
     {}, 400, "invalid_value", "max_completion_tokens"),
    ("max-completion-over-limit", encoded(body(max_completion_tokens=10**9)), {}, 400,
     "invalid_value", "max_completion_tokens"),
    # more of the same kinds
    ("temperature-huge", encoded(body(temperature=1e308)), {}, 400, "invalid_value",
     "temperature"),
    ("temperature-over-2", encoded(body(temperature=2.0000001)), {}, 400, "invalid_value",
     "temperature"),
    ("top-p-tiny-negative", encoded(body(top_p=-1e-300)), {}, 400, "invalid_value", "top_p"),
    ("seed-huge", encoded(body(seed=2**70)), {}, 400, "invalid_value", "seed"),
    ("image-url-empty-object", encoded(body({"role": "user", "content": [
        {"type": "image_url", "image_url": {}}]})), {}, 400, "invalid_value", IMAGE),
]  # fmt: skip

# Hostile but valid: answered 200 (formerly 500s among them).
ACCEPTED = [
    ("temperature-1e-38", body(temperature=1e-38)),
    ("temperature-1e-39", body(temperature=1e-39)),
    ("temperature-5e-324", body(temperature=5e-324)),
    ("temperature-1e-45-seeded", body(temperature=1e-45, seed=3)),
    ("jpeg-corrupt-exif", with_image(data_uri(corrupt_exif_jpeg(), "image/jpeg"))),
    ("jpeg-progressive-10-scans", with_image(data_uri(jpeg_bytes(32, progressive=True),
                                                      "image/jpeg"))),
    ("elongated-13x760-padded", with_image(data_uri(elongated_png(13, 760)))),
    ("host-localhost", body()),
    ("paired-surrogates-emoji", body(user_message("a \U0001F600 b"))),
    ("content-type-json-charset", body()),
]  # fmt: skip
ACCEPTED_HEADERS = {
    "host-localhost": {"Host": "localhost"},
    "content-type-json-charset": {"Content-Type": "application/json; charset=utf-8"},
}
ALL_CASES = CASES + NEW_CASES


def _kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1))


class Cost:
    """Wall time and peak memory (above the RSS at the start) of one case, in this process."""

    def __enter__(self) -> Cost:
        try:  # "5" resets the peak RSS (VmHWM) to the current RSS
            Path("/proc/self/clear_refs").write_text("5")
            self.measures_memory = True
        except OSError:
            self.measures_memory = False
        self.rss = _kib("VmRSS")
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        self.peak_mb = (_kib("VmHWM") - self.rss) / 1024 if self.measures_memory else 0.0


def post(server, raw: bytes, headers: dict) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        content=raw,
        headers={**AUTH, "Content-Type": "application/json", **headers},
        timeout=30,
    )


def assert_still_serving(server) -> None:
    response = post(server, encoded(TEXT_BODY), {})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "raw,headers,status,code,param", [c[1:] for c in ALL_CASES], ids=[c[0] for c in ALL_CASES]
)
def test_bad_request_gets_the_right_4xx(server, raw, headers, status, code, param):
    with Cost() as cost:
        response = post(server, raw, headers)
    assert cost.seconds < 5  # refused up front, never decoded (the PNG bomb)
    assert cost.peak_mb < 200  # nothing amplified (the 1 x 10000 PNG's canvas)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and error["code"] == code and error["param"] == param
    assert_still_serving(server)


@pytest.mark.parametrize("payload", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_hostile_but_valid_request_is_answered(server, request, payload):
    headers = ACCEPTED_HEADERS.get(request.node.callspec.id, {})
    with Cost() as cost:
        response = post(server, encoded(payload), headers)
    assert cost.seconds < 5 and cost.peak_mb < 200
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["finish_reason"] in ("stop", "length")
    assert_still_serving(server)


def test_the_suite_has_at_least_a_hundred_cases():
    names = [c[0] for c in ALL_CASES + ACCEPTED]
    assert len(set(names)) == len(names) >= 100


def test_oversize_chunked_body_without_length_is_refused(server):
    chunks = (b"x" * 65536 for _ in range(8))  # 512 KiB, sent chunked: no Content-Length
    headers = {**AUTH, "Content-Type": "application/json"}
    response = httpx.post(f"{server.url}/v1/chat/completions", content=chunks, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_there_are_at_least_twenty_distinct_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 20


@pytest.mark.parametrize(
    "method,path,status",
    [("GET", "/v1/chat/completions", 405), ("GET", "/v1/nothing", 404),
     ("GET", "/v1/models/gpt-4o", 404)],
)  # fmt: skip
def test_routes_and_methods_answer_in_the_error_shape(server, method, path, status):
    response = httpx.request(method, f"{server.url}{path}", headers=AUTH)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_models_need_the_key_but_health_does_not(server):
    assert httpx.get(f"{server.url}/v1/models").status_code == 401
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_allowed_local_image_works(server):
    response = httpx.post(f"{server.url}/v1/chat/completions", json=with_image("ok.png"),
                          headers=AUTH, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["visual_tokens"] == 16


def test_server_still_answers_after_the_hostile_requests(server):
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body(num_visual_tokens=2),
                          headers=AUTH, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok" and health["stats"]["failed"] == 0
