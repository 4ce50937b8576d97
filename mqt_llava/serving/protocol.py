"""The OpenAI Chat Completions request, parsed and validated at the edge.

Everything a client sends is checked here, before any image is decoded or any token generated:
each refusal is an [`APIError`] that the server answers as a 4xx in OpenAI's error shape,
`{"error": {"message", "type", "param", "code"}}`, naming the field (`param`) that was wrong.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from ..model.configuration import check_num_visual_tokens

IMAGE_TOKEN = "<image>"

# Fields we implement, fields we accept and ignore, and fields accepted only at their default.
SUPPORTED_FIELDS = {
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop",
    "seed", "stream", "stream_options", "num_visual_tokens",
}  # fmt: skip
IGNORED_FIELDS = {"user", "metadata", "store", "service_tier"}
DEFAULT_ONLY_FIELDS = {
    "n": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logprobs": False,
    "tools": [],
    "tool_choice": "none",
}
ROLES = ("system", "developer", "user", "assistant")
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
    """Validates a Chat Completions body.

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
    for key in payload:
        if key in SUPPORTED_FIELDS or key in IGNORED_FIELDS:
            continue
        if key in DEFAULT_ONLY_FIELDS:
            default = DEFAULT_ONLY_FIELDS[key]
            if payload[key] is not None and payload[key] != default:
                raise bad_request(
                    f"{key}={payload[key]!r} is not supported; only {default!r} is.",
                    param=key,
                    code="unsupported_value",
                )
            continue
        raise bad_request(
            f"Unrecognized request argument supplied: {key}.", param=key, code="unknown_parameter"
        )
    model = payload.get("model")
    if not isinstance(model, str):
        raise bad_request("model is required: a string, see GET /v1/models.", param="model")
    if model != model_name:
        raise APIError(
            404,
            f"The model {model!r} does not exist; this server serves {model_name!r}.",
            param="model",
            code="model_not_found",
        )
    messages, images = _parse_messages(payload.get("messages"), limits)
    request = ChatRequest(model=model, messages=messages, images=images)
    budget = payload.get("num_visual_tokens")
    if budget is not None:
        try:
            if budget == "auto":  # chosen per request by the engine's budget policy
                request.num_visual_tokens = budget
            else:
                request.num_visual_tokens = check_num_visual_tokens(budget, max_visual_tokens)
        except ValueError:
            raise bad_request(
                f'num_visual_tokens must be an integer between 1 and {max_visual_tokens} or "auto"'
                f", got {budget!r}.",
                param="num_visual_tokens",
            ) from None
    for key in ("max_tokens", "max_completion_tokens"):  # both checked; the newer one wins
        if payload.get(key) is not None:
            request.max_tokens = _integer(payload[key], key, 1, limits.max_tokens)
    request.temperature = _number(payload, "temperature", 0.0, 2.0, default=0.0)
    if request.temperature < MIN_TEMPERATURE:
        request.temperature = 0.0
    request.top_p = _number(payload, "top_p", 0.0, 1.0, default=1.0, open_low=True)
    if request.num_visual_tokens == "auto" and request.temperature > 0:
        raise bad_request(
            'num_visual_tokens "auto" answers greedily: use temperature 0 or a fixed budget.',
            "num_visual_tokens",
        )
    request.stop = _parse_stop(payload.get("stop"), limits)
    if payload.get("seed") is not None:
        request.seed = _integer(payload["seed"], "seed", -(2**63), 2**64 - 1)
    request.stream = _boolean(payload.get("stream", False), "stream")
    options = payload.get("stream_options")
    if options is not None:
        if not request.stream:
            raise bad_request("stream_options is only allowed with stream=true.", "stream_options")
        if not isinstance(options, dict) or set(options) - {"include_usage"}:
            raise bad_request(
                'stream_options must be an object like {"include_usage": true}.', "stream_options"
            )
        request.include_usage = _boolean(
            options.get("include_usage", False), "stream_options.include_usage"
        )
    return request


def _parse_messages(messages: Any, limits: Limits) -> tuple[list[dict], list[ImageRef]]:
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty array of message objects.", "messages")
    if len(messages) > limits.max_messages:
        raise bad_request(
            f"At most {limits.max_messages} messages are accepted, got {len(messages)}.",
            "messages",
        )
    converted: list[dict] = []
    images: list[ImageRef] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(f"{where} must be an object with role and content.", where)
        role = message.get("role")
        if role not in ROLES:
            raise bad_request(
                f"{where}.role must be one of {', '.join(ROLES)}; got {role!r} (tools and "
                "functions are not supported).",
                f"{where}.role",
            )
        if role in ("system", "developer"):
            if i != 0:
                raise bad_request(f"A {role} message is only accepted first.", f"{where}.role")
            role = "system"
        parts = _parse_content(message.get("content"), where, role, images)
        converted.append({"role": role, "content": parts})
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


def _parse_content(content: Any, where: str, role: str, images: list[ImageRef]) -> list[dict]:
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise bad_request(
            f"{where}.content must be a string or an array of text and image_url parts.",
            f"{where}.content",
        )
    text_parts, image_parts = [], []
    for j, part in enumerate(content):
        param = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise bad_request(f"{param}.text must be a string.", f"{param}.text")
            if IMAGE_TOKEN in text:
                raise bad_request(
                    f"{param}.text contains the reserved placeholder {IMAGE_TOKEN}; send images "
                    "as image_url parts instead.",
                    f"{param}.text",
                    code="reserved_token",
                )
            text_parts.append({"type": "text", "text": text})
        elif kind == "image_url":
            if role != "user":
                raise bad_request(f"Only user messages may hold images ({param}).", param)
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            if not isinstance(url, str) or not url:
                raise bad_request(
                    f'{param}.image_url must be {{"url": "data:image/png;base64,..."}}.',
                    f"{param}.image_url",
                )
            images.append(ImageRef(url, f"{param}.image_url"))
            image_parts.append({"type": "image"})
        else:
            raise bad_request(
                f"{param} must be an object with type 'text' or 'image_url', got "
                f"{kind if kind is not None else _json_type(part)!r}.",
                param,
            )
    # The llava_v1 template puts a turn's images before its text, as the release did.
    return image_parts + text_parts


def _parse_stop(stop: Any, limits: Limits) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if (
        not isinstance(stops, list)
        or len(stops) > limits.max_stop
        or not all(isinstance(s, str) and 0 < len(s) <= limits.max_stop_chars for s in stops)
    ):
        raise bad_request(
            f"stop must be a string or an array of at most {limits.max_stop} non-empty strings "
            f"of at most {limits.max_stop_chars} characters.",
            "stop",
        )
    return stops


def _integer(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(
            f"{name} must be an integer between {low} and {high}, got {value!r}.",
            name,
            code="invalid_type",
        )
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}, got {value}.", name)
    return value


def _number(
    payload: dict, name: str, low: float, high: float, default: float, open_low: bool = False
) -> float:
    value = payload.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise bad_request(f"{name} must be a number, got {value!r}.", name, code="invalid_type")
    too_low = value <= low if open_low else value < low
    if too_low or value > high:
        bracket = "(" if open_low else "["
        raise bad_request(f"{name} must be in {bracket}{low}, {high}], got {value}.", name)
    return float(value)


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false, got {value!r}.", name, "invalid_type")
    return value


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
