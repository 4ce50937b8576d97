"""The Chat Completions request as pydantic models: strict types, bounds, OpenAI-shaped errors.

[`request_model`] builds the request's model for one server: the bounds that depend on the
model (M, the largest `num_visual_tokens`) and on the operator's limits (`max_tokens`, messages,
stop strings) are part of it, so `/openapi.json` states them. Types are strict: a JSON string is
never read as a number (`"5"` is not 5), nor a number as a boolean; an integer field refuses
`4.0`; a number field accepts integers. Unknown top-level fields are refused, as OpenAI refuses
them (`unknown_parameter`); messages, content parts and `image_url` objects ignore keys they do
not use (`name`, `detail`, ...).

A validation error becomes one OpenAI error: [`describe_error`] turns pydantic's first error
into a sentence saying what was wrong and what is accepted, and its `loc` into OpenAI's `param`
(`messages[0].content[1].text`, the form OpenAI's own errors use).
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    create_model,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from ..model.configuration import check_num_visual_tokens

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .protocol import Limits

IMAGE_TOKEN = "<image>"
ROLES = ("system", "developer", "user", "assistant")
# Fields accepted and ignored, and fields accepted only at their default (or null).
IGNORED_FIELDS = ("user", "metadata", "store", "service_tier")
DEFAULT_ONLY_FIELDS = {
    "n": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logprobs": False,
    "tools": [],
    "tool_choice": "none",
}
SEED_RANGE = (-(2**63), 2**64 - 1)
# pydantic's type errors of fields holding one JSON scalar type: code invalid_type.
TYPE_ERRORS = {"int_type", "float_type", "bool_type"}
# Errors whose own message is the answer (raised by our validators).
OWN_MESSAGES = {"model_not_found": 404, "reserved_token": 400, "unsupported_value": 400}
PART_TYPES = ("text", "image_url")
REF = "#/components/schemas/{model}"


def _no_image_token(text: str) -> str:
    if IMAGE_TOKEN in text:
        raise PydanticCustomError(
            "reserved_token",
            "The text contains the reserved placeholder {token}; send images as image_url "
            "parts instead.",
            {"token": IMAGE_TOKEN},
        )
    return text


def _url_object(value: Any) -> Any:
    """`"URL"` or `{"url": "URL", ...}`; anything else is refused at `image_url` itself, where
    every image error (source, bytes, pixels) is reported."""
    if isinstance(value, str):
        value = {"url": value}
    if not isinstance(value, dict) or not isinstance(value.get("url"), str) or not value["url"]:
        raise ValueError("not an image URL")
    return value


def _text_parts(value: Any) -> Any:
    return [{"type": "text", "text": value}] if isinstance(value, str) else value


def _string_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class ImageURL(_Strict):
    url: str = Field(
        min_length=1,
        description="data:image/...;base64,..., an allow-listed http(s) URL, or a path or "
        "file: URL inside the server's --image-dir.",
    )


class TextPart(_Strict):
    type: Literal["text"]
    text: Annotated[str, AfterValidator(_no_image_token)] = Field(
        description=f"The text; it may not contain {IMAGE_TOKEN}."
    )


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: Annotated[
        ImageURL, BeforeValidator(_url_object, json_schema_input_type=ImageURL | str)
    ] = Field(description='{"url": ...} (its other keys are ignored) or the URL as a string.')


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(_Strict):
    role: Literal[ROLES] = Field(  # type: ignore[valid-type]
        description="system or developer (first message only), user, or assistant; the last "
        "message is the user's."
    )
    content: Annotated[
        list[Part], BeforeValidator(_text_parts, json_schema_input_type=str | list[Part])
    ] = Field(description="A string, or text and image_url parts (images in user messages).")


class StreamOptions(_Strict):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = Field(False, description="End the stream with a usage chunk.")


def _default_only(value: Any, info: ValidationInfo) -> Any:
    default = DEFAULT_ONLY_FIELDS[info.field_name]
    if value is not None and value != default:  # == as before: n=1.0 and logprobs=0 pass
        raise PydanticCustomError(
            "unsupported_value",
            "{name}={value} is not supported; only {default} is.",
            {"name": info.field_name, "value": _json(value), "default": json.dumps(default)},
        )
    return value


def _budget(max_visual_tokens: int):
    def check(value: Any) -> int | str | None:
        if value is None or value == "auto":  # "auto": chosen per request by the engine
            return value
        return check_num_visual_tokens(value, max_visual_tokens)  # the one budget check

    return check


class RequestModel(BaseModel):
    """The base of [`request_model`]'s classes: `accepted` says, per field, what it accepts."""

    model_config = ConfigDict(strict=True, extra="forbid")
    accepted: ClassVar[dict[str, str]]


@functools.lru_cache(maxsize=16)
def request_model(model_name: str, max_visual_tokens: int, limits: Limits) -> type[RequestModel]:
    """The Chat Completions request of one server, as a pydantic model.

    Args:
        model_name: The served model's id; any other `model` is refused (404).
        max_visual_tokens: M, the largest `num_visual_tokens`.
        limits: The operator's limits (messages, `max_tokens`, stop strings).

    Returns:
        A `RequestModel` subclass named `ChatCompletionRequest`; validate with
        `model_validate(payload)` (strict by its config).
    """
    tokens = f"an integer between 1 and {limits.max_tokens}"
    accepted = {
        "model": f"the served model's id, a string ({model_name!r}, see GET /v1/models)",
        "messages": f"a non-empty array of at most {limits.max_messages} message objects",
        "messages.*": "an object with role and content",
        "messages.*.role": f"one of {', '.join(ROLES)} (tools and functions are not supported)",
        "messages.*.content": "a string or an array of text and image_url parts",
        "messages.*.content.*": "an object with type 'text' or 'image_url'",
        "messages.*.content.*.text": "a string",
        "messages.*.content.*.image_url": '{"url": "data:image/png;base64,..."} or a URL string',
        "num_visual_tokens": f'an integer between 1 and {max_visual_tokens} or "auto"',
        "max_tokens": tokens,
        "max_completion_tokens": tokens,
        "temperature": "a number in [0, 2] (0: greedy)",
        "top_p": "a number in (0, 1]",
        "stop": f"a string or an array of at most {limits.max_stop} strings",
        "stop.*": f"a non-empty string of at most {limits.max_stop_chars} characters",
        "seed": f"an integer between {SEED_RANGE[0]} and {SEED_RANGE[1]}",
        "stream": "true or false",
        "stream_options": 'an object like {"include_usage": true}',
        "stream_options.include_usage": "true or false",
    }

    def served(model: str) -> str:
        if model != model_name:
            raise PydanticCustomError(
                "model_not_found",
                "The model {model} does not exist; this server serves {served}.",
                {"model": repr(model), "served": repr(model_name)},
            )
        return model

    budget = {
        "anyOf": [
            {"type": "integer", "minimum": 1, "maximum": max_visual_tokens},
            {"const": "auto"},
            {"type": "null"},
        ]
    }
    stop = Annotated[str, Field(min_length=1, max_length=limits.max_stop_chars)]
    stops = Annotated[list[stop], Field(max_length=limits.max_stop)]
    max_tokens = Annotated[int, Field(ge=1, le=limits.max_tokens)] | None

    def doc(name: str, default: Any = None, note: str = "", **kwargs: Any) -> FieldInfo:
        return Field(default, description=f"{accepted[name]}{note}", **kwargs)  # as errors say

    fields: dict[str, Any] = {
        "model": (Annotated[str, AfterValidator(served)], doc("model", ..., examples=[model_name])),
        "messages": (
            list[Message],
            doc("messages", ..., min_length=1, max_length=limits.max_messages),
        ),
        "num_visual_tokens": (
            Annotated[Any, PlainValidator(_budget(max_visual_tokens)), WithJsonSchema(budget)],
            doc("num_visual_tokens", note="; the model's default when absent"),
        ),
        "max_tokens": (max_tokens, doc("max_tokens")),
        "max_completion_tokens": (max_tokens, doc("max_tokens", note="; wins over max_tokens")),
        "temperature": (Annotated[float, Field(ge=0, le=2)] | None, doc("temperature")),
        "top_p": (Annotated[float, Field(gt=0, le=1)] | None, doc("top_p")),
        "stop": (
            Annotated[stops, BeforeValidator(_string_list, json_schema_input_type=stop | stops)]
            | None,
            doc("stop", note=f" of at most {limits.max_stop_chars} characters"),
        ),
        "seed": (Annotated[int, Field(ge=SEED_RANGE[0], le=SEED_RANGE[1])] | None, doc("seed")),
        "stream": (bool, doc("stream", False)),
        "stream_options": (StreamOptions | None, doc("stream_options", note=", with stream only")),
    }
    for name in IGNORED_FIELDS:
        fields[name] = (Any, Field(None, description="Accepted and ignored."))
    for name, default in DEFAULT_ONLY_FIELDS.items():
        only = {"enum": [default, None], "description": f"Only {json.dumps(default)} is supported."}
        accepted[name] = json.dumps(default)
        fields[name] = (Annotated[Any, AfterValidator(_default_only), WithJsonSchema(only)], None)
    model = create_model(
        "ChatCompletionRequest",
        __base__=RequestModel,
        __doc__=f"A chat completion request to {model_name!r} (M = {max_visual_tokens}).",
        **fields,
    )
    model.accepted = accepted
    return model


def describe_error(error: dict, accepted: dict[str, str]) -> dict[str, Any]:
    """One pydantic error as `APIError` arguments: status, message, param and code.

    Args:
        error: One item of `ValidationError.errors()`.
        accepted: What each field accepts, by dotted path with `*` for indices.
    """
    loc = list(error["loc"])
    if len(loc) > 5 and loc[0] == "messages" and loc[2] == "content" and loc[4] in PART_TYPES:
        del loc[4]  # the discriminated union's tag (the part's type), not a field
    param = ""
    for x in loc:  # OpenAI's form: messages[0].content[1].text
        param += f"[{x}]" if isinstance(x, int) else f".{x}" if param else str(x)
    param = param or None
    kind = error["type"]
    if kind in OWN_MESSAGES:
        return {"status": OWN_MESSAGES[kind], "message": error["msg"], "param": param,
                "code": kind}  # fmt: skip
    if kind == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {_short(param)}."
        return {"status": 400, "message": message, "param": param, "code": "unknown_parameter"}
    what = accepted.get(".".join("*" if isinstance(x, int) else str(x) for x in loc))
    value = error.get("input")
    if what is None:  # not one of ours: pydantic's sentence, with the field named
        message = f"{param or 'The request'}: {error['msg']}."
    elif kind == "missing":
        message = f"{param} is required: {what}."
    else:
        shown = f"type {_json(value.get('type'))}" if kind == "union_tag_invalid" else None
        message = f"{param} must be {what}, got {shown or _shown(value)}."
    too_large = kind == "float_type" and type(value) is int  # 10**400: a number, not a float
    code = "invalid_type" if kind in TYPE_ERRORS and not too_large else "invalid_value"
    return {"status": 400, "message": message, "param": param, "code": code}


def first_error(errors: list[dict]) -> dict:
    """The error to report: unknown and unsupported fields first (they are what a client most
    likely got wrong), then the first field in the schema's order."""
    return min(errors, key=lambda e: e["type"] not in ("extra_forbidden", "unsupported_value"))


def _shown(value: Any) -> str:
    """A value as the client wrote it, short: never a whole image echoed back."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"an array of {len(value)}"
    return _json(value)


def _json(value: Any) -> str:
    return _short(json.dumps(value, ensure_ascii=False, default=repr))


def _short(text: str) -> str:
    return text if len(text) <= 60 else f"{text[:57]}..."


class ErrorDetail(BaseModel):
    message: str = Field(description="What was wrong and what is accepted, one sentence.")
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = Field(description="The field at fault, e.g. messages[0].content[1].text.")
    code: str | None = Field(examples=["invalid_value", "invalid_type", "unknown_parameter"])


class ErrorResponse(BaseModel):
    """OpenAI's error shape, used by every 4xx and 5xx."""

    error: ErrorDetail


def install_openapi(app: FastAPI, path: str, model: type[BaseModel]) -> None:
    """Describes the JSON body of `POST path` and its errors in the app's `/openapi.json`.

    The route reads and validates its body itself (the API key, Content-Type, size and time
    limits come first), so FastAPI cannot infer the body from the route's signature.
    """
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = default()  # FastAPI's, cached in app.openapi_schema
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for schema_model in (model, ErrorResponse):
                schema = schema_model.model_json_schema(ref_template=REF)
                schemas.update(schema.pop("$defs", {}), **{schema_model.__name__: schema})
            operation = document["paths"][path]["post"]
            ref = {"$ref": REF.format(model=model.__name__)}
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref}},
            }
            error = {"application/json": {"schema": {"$ref": REF.format(model="ErrorResponse")}}}
            operation["responses"]["400"] = {"description": "Invalid request", "content": error}
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
