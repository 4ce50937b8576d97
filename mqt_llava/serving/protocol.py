"""The OpenAI Chat Completions request, parsed and validated at the edge.

Everything a client sends is checked here, before any image is decoded or any token generated:
the JSON itself, each field against the request's pydantic model ([`schema`](schema.py)), then
the rules between fields. Each refusal is an [`APIError`] that the server answers as a 4xx in
OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, naming the field
(`param`) that was wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .schema import describe_error, first_error, request_model

# Below this a temperature divides float32 logits into infinities (NaN probabilities); it is
# run as greedy decoding, which is what such a temperature means.
MIN_TEMPERATURE = 1e-4


class APIError(Exception):
    """A refusal with its HTTP status, in OpenAI's error shape.

    Args:
        status: The HTTP status (4xx for the client's fault).
        message: What was wrong and what is accepted.
        type: OpenAI's error type (`invalid_request_error`, `authentication_error`, ...).
        param: The request field at fault, e.g. `messages[0].content[1].image_url`.
        code: A short machine-readable code.
        headers: Extra response headers (`Retry-After`, `WWW-Authenticate`).
    """

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type,
            param,
            code,
        )
        self.headers = headers

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: str | None = None, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


@dataclass(frozen=True)
class Limits:
    """Operator limits on what one request may ask for (all checked before any work)."""

    max_request_bytes: int = 20 * 2**20
    max_image_bytes: int = 10 * 2**20
    max_image_pixels: int = 4096 * 4096
    max_images: int = 4
    max_messages: int = 256
    max_tokens: int = 1024
    default_max_tokens: int = 256
    max_stop: int = 4
    max_stop_chars: int = 64


@dataclass(frozen=True)
class ImageRef:
    """An image part not yet loaded: its URL (data:, http(s):, file: or a path) and its field."""

    url: str
    param: str


@dataclass
class ChatRequest:
    """A validated chat completion request.

    `messages` are in the chat template's convention: each content is a list of
    `{"type": "image"}` and `{"type": "text", "text": ...}` parts, images in `images` in the
    order their parts appear.
    """

    model: str
    messages: list[dict]
    images: list[ImageRef] = field(default_factory=list)
    num_visual_tokens: int | str | None = None  # "auto": chosen per request
    max_tokens: int | None = None
    temperature: float = 0.0  # greedy unless asked: OpenAI's default of 1 hurts short answers
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    stream: bool = False
    include_usage: bool = False


def parse_json(body: bytes) -> Any:
    """Decodes a request body; bad UTF-8, bad JSON, NaN/Infinity, deep nesting and strings that
    are not Unicode text (lone surrogates such as `"\\ud800"`) are refused."""

    def refuse_constant(name: str):
        raise ValueError(f"{name} is not valid JSON")

    try:
        payload = json.loads(body, parse_constant=refuse_constant)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError too
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise bad_request(
            f"The request body is not valid JSON ({reason}).", code="invalid_json"
        ) from None
    _check_unicode(payload)
    return payload


def _check_unicode(payload: Any) -> None:
    """Refuses lone surrogates anywhere (keys included): they cannot be tokenized or echoed."""
    stack = [payload]
    while stack:  # iterative: nesting is bounded by json.loads, not by our recursion
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                raise bad_request(
                    f"The request holds a string that is not valid Unicode text ({err.reason} "
                    f"at position {err.start}, e.g. an unpaired \\ud800 escape).",
                    code="invalid_json",
                ) from None


def parse_chat_request(
    payload: Any, model_name: str, max_visual_tokens: int, limits: Limits
) -> ChatRequest:
    """Validates a Chat Completions body: its schema ([`schema.request_model`]), then the rules
    between fields (a system message only first, images only from the user, the last message
    the user's, at most `max_images` images, "auto" only greedy, `stream_options` only with
    `stream`).

    Args:
        payload: The decoded JSON body.
        model_name: The served model's id; any other `model` is a 404.
        max_visual_tokens: M, the largest budget.
        limits: The operator's limits.

    Returns:
        The [`ChatRequest`].

    Raises:
        APIError: 400 for a malformed field, 404 for an unknown model.
    """
    if not isinstance(payload, dict):
        raise bad_request(
            f"The request body must be a JSON object, got {_json_type(payload)}.",
            code="invalid_type",
        )
    model = request_model(model_name, max_visual_tokens, limits)
    try:
        fields = model.model_validate(payload)
    except ValidationError as err:
        raise APIError(**describe_error(first_error(err.errors()), model.accepted)) from None
    messages, images = _convert_messages(fields.messages, limits)
    request = ChatRequest(
        model=fields.model,
        messages=messages,
        images=images,
        num_visual_tokens=fields.num_visual_tokens,
        max_tokens=fields.max_completion_tokens or fields.max_tokens,  # the newer one wins
        temperature=fields.temperature or 0.0,
        top_p=1.0 if fields.top_p is None else fields.top_p,
        stop=fields.stop or [],
        seed=fields.seed,
        stream=fields.stream,
        include_usage=fields.stream_options is not None and fields.stream_options.include_usage,
    )
    if request.temperature < MIN_TEMPERATURE:
        request.temperature = 0.0
    if request.num_visual_tokens == "auto" and request.temperature > 0:
        raise bad_request(
            'num_visual_tokens "auto" answers greedily: use temperature 0 or a fixed budget.',
            "num_visual_tokens",
        )
    if fields.stream_options is not None and not fields.stream:
        raise bad_request("stream_options is only allowed with stream=true.", "stream_options")
    return request


def _convert_messages(messages: list, limits: Limits) -> tuple[list[dict], list[ImageRef]]:
    """Validated messages in the chat template's convention, and their images in order."""
    converted: list[dict] = []
    images: list[ImageRef] = []
    for i, message in enumerate(messages):
        where, role = f"messages[{i}]", message.role
        if role in ("system", "developer"):
            if i != 0:
                raise bad_request(f"A {role} message is only accepted first.", f"{where}.role")
            role = "system"
        text_parts, image_parts = [], []
        for j, part in enumerate(message.content):
            param = f"{where}.content[{j}]"
            if part.type == "text":
                text_parts.append({"type": "text", "text": part.text})
                continue
            if role != "user":
                raise bad_request(f"Only user messages may hold images ({param}).", param)
            images.append(ImageRef(part.image_url.url, f"{param}.image_url"))
            image_parts.append({"type": "image"})
        # The llava_v1 template puts a turn's images before its text, as the release did.
        converted.append({"role": role, "content": image_parts + text_parts})
    if len(images) > limits.max_images:
        raise bad_request(
            f"At most {limits.max_images} images per request are accepted, got {len(images)}.",
            "messages",
            code="too_many_images",
        )
    if converted[-1]["role"] != "user":
        raise bad_request(
            "The last message must be from the user (the answer is generated after it).",
            f"messages[{len(messages) - 1}].role",
        )
    return converted, images


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
