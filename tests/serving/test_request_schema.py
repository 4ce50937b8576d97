"""The request schema (`serving/schema.py`): strict types, bounds, OpenAI's `param` in every
error, the schema in `/openapi.json`, and the official `openai` client reading the errors."""

from __future__ import annotations

import httpx
import openai
import pytest
from serving_helpers import MODEL_NAME, data_uri, png_bytes, running_server, user_message

from mqt_llava.serving.protocol import APIError, Limits, parse_chat_request
from mqt_llava.serving.schema import describe_error, request_model

M = 16
LIMITS = Limits(max_tokens=64, max_messages=8, max_stop=2, max_stop_chars=8)
IMAGE = data_uri(png_bytes())


def body(*messages, **fields) -> dict:
    messages = messages or (user_message("What is this?"),)
    return {"model": MODEL_NAME, "messages": list(messages), **fields}


def refusal(payload) -> APIError:
    with pytest.raises(APIError) as caught:
        parse_chat_request(payload, MODEL_NAME, M, LIMITS)
    return caught.value


def image_part(url) -> dict:
    return {"type": "image_url", "image_url": url}


# (id, payload, code, param): each refused with exactly this code and param.
REFUSED = [
    # bounds
    ("max-tokens-0", body(max_tokens=0), "invalid_value", "max_tokens"),
    ("max-tokens-over-limit", body(max_tokens=65), "invalid_value", "max_tokens"),
    ("max-completion-over-limit", body(max_completion_tokens=65), "invalid_value",
     "max_completion_tokens"),
    ("temperature-below-0", body(temperature=-1e-9), "invalid_value", "temperature"),
    ("temperature-over-2", body(temperature=2.5), "invalid_value", "temperature"),
    ("top-p-0", body(top_p=0.0), "invalid_value", "top_p"),
    ("top-p-over-1", body(top_p=1.01), "invalid_value", "top_p"),
    ("budget-0", body(num_visual_tokens=0), "invalid_value", "num_visual_tokens"),
    ("budget-M+1", body(num_visual_tokens=M + 1), "invalid_value", "num_visual_tokens"),
    ("seed-2**64", body(seed=2**64), "invalid_value", "seed"),
    ("seed-below", body(seed=-(2**63) - 1), "invalid_value", "seed"),
    ("nine-messages", body(*[user_message("x")] * 9), "invalid_value", "messages"),
    ("three-stops", body(stop=["a", "b", "c"]), "invalid_value", "stop"),
    ("n-2", body(n=2), "unsupported_value", "n"),
    ("temperature-10**400", body(temperature=10**400), "invalid_value", "temperature"),  # was a 500
    # strict types: no string is read as a number, no number as a boolean, no 4.0 as an int
    ("max-tokens-string", body(max_tokens="5"), "invalid_type", "max_tokens"),
    ("max-tokens-float", body(max_tokens=5.0), "invalid_type", "max_tokens"),
    ("max-tokens-true", body(max_tokens=True), "invalid_type", "max_tokens"),
    ("temperature-string", body(temperature="0.5"), "invalid_type", "temperature"),
    ("temperature-false", body(temperature=False), "invalid_type", "temperature"),
    ("top-p-string", body(top_p="1"), "invalid_type", "top_p"),
    ("seed-string", body(seed="7"), "invalid_type", "seed"),
    ("stream-1", body(stream=1), "invalid_type", "stream"),
    ("stream-string", body(stream="true"), "invalid_type", "stream"),
    ("budget-string", body(num_visual_tokens="4"), "invalid_value", "num_visual_tokens"),
    ("budget-float", body(num_visual_tokens=4.0), "invalid_value", "num_visual_tokens"),
    ("model-number", {**body(), "model": 7}, "invalid_value", "model"),
    # nested params, in OpenAI's form
    ("role", body({"role": "tool", "content": "x"}), "invalid_value", "messages[0].role"),
    ("second-message-not-object", body(user_message("a"), "b"), "invalid_value", "messages[1]"),
    ("text-number", body(user_message("a"), {"role": "assistant", "content": "b"},
                         {"role": "user", "content": [image_part(IMAGE),
                                                      {"type": "text", "text": 5}]}),
     "invalid_value", "messages[2].content[1].text"),
    ("text-missing", body({"role": "user", "content": [{"type": "text"}]}), "invalid_value",
     "messages[0].content[0].text"),
    ("part-type", body({"role": "user", "content": ["x", {"type": "video"}]}), "invalid_value",
     "messages[0].content[0]"),
    ("image-url-empty", body({"role": "user", "content": [{"type": "text", "text": "a"},
                                                          image_part({"url": ""})]}),
     "invalid_value", "messages[0].content[1].image_url"),
    ("image-url-number", body({"role": "user", "content": [image_part(5)]}), "invalid_value",
     "messages[0].content[0].image_url"),
    ("stop-element", body(stop=["ok", ""]), "invalid_value", "stop[1]"),
    ("stop-element-too-long", body(stop=["a" * 9]), "invalid_value", "stop[0]"),
    ("include-usage-string", body(stream=True, stream_options={"include_usage": "yes"}),
     "invalid_type", "stream_options.include_usage"),
    ("stream-options-unknown", body(stream=True, stream_options={"x": 1}), "unknown_parameter",
     "stream_options.x"),
    ("unknown-field", body(best_of=2), "unknown_parameter", "best_of"),
    ("unknown-field-dotted", {**body(), ".x": 1}, "unknown_parameter", ".x"),
    ("reserved-token", body(user_message("<image> here")), "reserved_token",
     "messages[0].content[0].text"),
]  # fmt: skip


@pytest.mark.parametrize(
    "payload,code,param", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_a_bad_field_is_refused_with_its_param_and_one_sentence(payload, code, param):
    error = refusal(payload)
    assert (error.status, error.code, error.param) == (400, code, param)
    assert error.message.endswith(".") and "\n" not in error.message
    # one human sentence, never pydantic's dump
    for dump in ("Input should", "pydantic", "type=", "input_value", "loc"):
        assert dump not in error.message


def test_messages_say_what_is_accepted():
    assert refusal(body(max_tokens="5")).message == (
        'max_tokens must be an integer between 1 and 64, got "5".'
    )
    assert refusal(body(top_p=0)).message == "top_p must be a number in (0, 1], got 0."
    assert refusal(body(num_visual_tokens=17)).message == (
        'num_visual_tokens must be an integer between 1 and 16 or "auto", got 17.'
    )
    assert refusal({"model": MODEL_NAME}).message == (
        "messages is required: a non-empty array of at most 8 message objects."
    )
    assert refusal(body({"role": "user", "content": [{"type": "audio"}]})).message == (
        "messages[0].content[0] must be an object with type 'text' or 'image_url', "
        'got type "audio".'
    )
    assert refusal(body(best_of=2)).message == "Unrecognized request argument supplied: best_of."


def test_a_long_value_is_not_echoed_back():
    for payload in (body(seed="9" * 10_000), {**body(), "k" * 10_000: 1}):
        message = refusal(payload).message
        assert len(message) < 200 and "9" * 100 not in message and "k" * 100 not in message


def test_an_unknown_model_is_a_404_before_other_errors():
    error = refusal({**body(max_tokens=0), "model": "gpt-4o"})
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")


@pytest.mark.parametrize(
    "fields",
    [
        {"temperature": 1},  # an integer where a number goes: JSON does not tell them apart
        {"temperature": 1.0, "top_p": 1},
        {"temperature": 0, "num_visual_tokens": "auto"},
        {"num_visual_tokens": M, "max_tokens": 64, "max_completion_tokens": 1},
        {"seed": -(2**63), "stop": "x"},
        {"seed": 2**64 - 1, "stop": ["12345678", "b"]},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"n": 1, "presence_penalty": 0.0, "logprobs": False, "tools": [], "tool_choice": "none"},
        {"n": None, "user": {"any": "thing"}, "metadata": None, "store": False},
        {"max_tokens": None, "temperature": None, "top_p": None, "stop": None, "seed": None},
    ],
)
def test_accepted_forms_stay_accepted(fields):
    request = parse_chat_request(body(**fields), MODEL_NAME, M, LIMITS)
    assert request.model == MODEL_NAME


def test_content_forms_and_ignored_keys_convert_as_before():
    payload = body(
        {"role": "developer", "content": "Be brief.", "name": "ops"},
        {"role": "user", "content": [
            {"type": "text", "text": "Compare", "extra": 1},
            image_part({"url": IMAGE, "detail": "low"}),
            image_part(IMAGE),  # the URL as a bare string
        ]},
    )  # fmt: skip
    request = parse_chat_request(payload, MODEL_NAME, M, LIMITS)
    assert request.messages == [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                     {"type": "text", "text": "Compare"}]},
    ]  # fmt: skip
    assert [ref.param for ref in request.images] == [
        "messages[1].content[1].image_url",
        "messages[1].content[2].image_url",
    ]


def test_max_completion_tokens_wins_and_a_tiny_temperature_is_greedy():
    request = parse_chat_request(
        body(max_tokens=5, max_completion_tokens=7, temperature=1e-300), MODEL_NAME, M, LIMITS
    )
    assert (request.max_tokens, request.temperature) == (7, 0.0)


def test_an_error_outside_our_table_still_reads_as_one_sentence():
    error = {"type": "int_parsing", "loc": ("model_id",), "msg": "Input should be an integer"}
    described = describe_error(error, {})
    assert described == {
        "status": 400,
        "message": "model_id: Input should be an integer.",
        "param": "model_id",
        "code": "invalid_value",
    }


def test_the_model_class_is_built_once_per_server():
    assert request_model(MODEL_NAME, M, LIMITS) is request_model(MODEL_NAME, M, LIMITS)
    assert request_model(MODEL_NAME, 8, LIMITS) is not request_model(MODEL_NAME, M, LIMITS)


@pytest.fixture(scope="module")
def server(tiny_vlm):
    with running_server(tiny_vlm, api_key="k", limits=LIMITS) as server:
        yield server


def test_openapi_describes_the_request_body_and_its_bounds(server):
    doc = httpx.get(f"{server.url}/openapi.json").json()
    operation = doc["paths"]["/v1/chat/completions"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schemas = doc["components"]["schemas"]
    request = schemas[ref.rsplit("/", 1)[1]]
    fields = request["properties"]
    assert set(request["required"]) == {"model", "messages"}
    assert request["additionalProperties"] is False
    for name in ("model", "messages", "max_tokens", "max_completion_tokens", "temperature",
                 "top_p", "stop", "seed", "stream", "stream_options", "num_visual_tokens",
                 "n", "user"):  # fmt: skip
        assert name in fields, name

    def bounds(name: str) -> dict:
        (number,) = [s for s in fields[name]["anyOf"] if s.get("type") in ("integer", "number")]
        return {k: v for k, v in number.items() if k != "type"}

    assert bounds("max_tokens") == {"minimum": 1, "maximum": 64}
    assert bounds("num_visual_tokens") == {"minimum": 1, "maximum": M}
    assert {"const": "auto"} in fields["num_visual_tokens"]["anyOf"]
    assert bounds("temperature") == {"minimum": 0, "maximum": 2}
    assert bounds("top_p") == {"exclusiveMinimum": 0, "maximum": 1}
    assert (fields["messages"]["minItems"], fields["messages"]["maxItems"]) == (1, 8)
    (stops,) = [s for s in fields["stop"]["anyOf"] if s.get("type") == "array"]
    assert stops["maxItems"] == 2 and stops["items"]["maxLength"] == 8
    assert fields["n"]["enum"] == [1, None]
    message = schemas["Message"]["properties"]
    assert message["role"]["enum"] == ["system", "developer", "user", "assistant"]
    parts = next(s for s in message["content"]["anyOf"] if s.get("type") == "array")["items"]
    assert parts["discriminator"]["mapping"].keys() == {"text", "image_url"}
    error = operation["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    detail = schemas[error.rsplit("/", 1)[1]]["properties"]["error"]["$ref"]
    detail = schemas[detail.rsplit("/", 1)[1]]
    assert set(detail["properties"]) == {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0)


@pytest.mark.parametrize(
    "kwargs,param",
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"extra_body": {"max_tokens": "5"}}, "max_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"extra_body": {"temperature": 10**400}}, "temperature"),  # a 500 before
        ({"extra_body": {"num_visual_tokens": "8"}}, "num_visual_tokens"),
        ({"stop": ["a", "b", "c"]}, "stop"),
        ({"messages": [user_message("hi", IMAGE), {"role": "user", "content": [
            {"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": ""}}]}]},
         "messages[1].content[1].image_url"),
        ({"messages": [{"role": "function", "content": "x", "name": "f"}]}, "messages[0].role"),
        ({"n": 3}, "n"),
        ({"extra_body": {"foo": 1}}, "foo"),
    ],
)  # fmt: skip
def test_the_openai_client_gets_a_bad_request_error_with_its_param(client, kwargs, param):
    kwargs = {"messages": [user_message("hi")], "max_tokens": 2, **kwargs}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL_NAME, **kwargs)
    error = caught.value
    assert error.status_code == 400 and error.param == param
    assert error.type == "invalid_request_error" and error.code
    assert param in error.body["message"]


def test_the_openai_client_gets_not_found_for_another_model(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[user_message("hi")])
    assert caught.value.param == "model" and caught.value.code == "model_not_found"
