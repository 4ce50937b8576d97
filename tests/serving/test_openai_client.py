"""The real server on a loopback port, driven by the official `openai` client."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest
from serving_helpers import MODEL_NAME, data_uri, png_bytes, running_server, user_message


@pytest.fixture(scope="module")
def server(tiny_vlm):
    with running_server(tiny_vlm, api_key="test-key", max_batch=8) as server:
        yield server


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="test-key", max_retries=0)


@pytest.fixture(scope="module")
def image_message():
    return [user_message("What is in the picture?", data_uri(png_bytes()))]


def ask(client, messages, budget=None, **kwargs):
    extra = {"num_visual_tokens": budget} if budget is not None else None
    kwargs.setdefault("max_tokens", 8)
    kwargs.setdefault("temperature", 0)
    return client.chat.completions.create(
        model=MODEL_NAME, messages=messages, extra_body=extra, **kwargs
    )


def test_models_and_health(client, server):
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL_NAME]
    assert models[0].max_visual_tokens == 16 and models[0].default_visual_tokens == 16
    health = httpx.get(f"{server.url}/health").json()  # no key needed for health checks
    assert health["status"] == "ok" and health["queue"]["max"] == 16


def test_answer_with_an_image_counts_visual_tokens_in_usage(client, image_message):
    answers = {m: ask(client, image_message, budget=m) for m in (1, 4, 16)}
    for m, answer in answers.items():
        assert answer.model == MODEL_NAME and answer.object == "chat.completion"
        assert answer.choices[0].message.role == "assistant"
        assert answer.choices[0].message.content  # the tiny model never stops at once
        assert answer.choices[0].finish_reason in ("stop", "length")
        assert answer.num_visual_tokens == m and answer.usage.visual_tokens == m
        usage = answer.usage
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        assert 1 <= usage.completion_tokens <= 8
    # The prompt differs only in its visual tokens: prompt_tokens grows exactly with the budget.
    text_tokens = answers[1].usage.prompt_tokens - 1
    assert [answers[m].usage.prompt_tokens - text_tokens for m in (1, 4, 16)] == [1, 4, 16]
    # Different budgets are different inputs: not all three answers agree.
    assert len({a.choices[0].message.content for a in answers.values()}) > 1


def test_default_budget_is_the_models(client, image_message):
    answer = ask(client, image_message)
    assert answer.num_visual_tokens == 16 and answer.usage.visual_tokens == 16
    assert (
        answer.choices[0].message.content
        == ask(client, image_message, 16).choices[0].message.content
    )


def test_stream_matches_the_non_streamed_answer(client, image_message):
    whole = ask(client, image_message, budget=4)
    chunks = list(ask(client, image_message, budget=4, stream=True,
                      stream_options={"include_usage": True}))  # fmt: skip
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert sum(1 for p in pieces if p) >= 2  # streamed in several pieces, not in one
    assert "".join(pieces) == whole.choices[0].message.content
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.visual_tokens == 4
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stop_string_cuts_the_answer_in_both_modes(client, image_message):
    full = ask(client, image_message, budget=16, max_tokens=12).choices[0].message.content
    cut = len(full) // 2
    stop = full[cut : cut + 2]
    expected = full[: full.index(stop)]
    answer = ask(client, image_message, budget=16, max_tokens=12, stop=[stop])
    assert answer.choices[0].message.content == expected
    assert answer.choices[0].finish_reason == "stop"
    stream = ask(client, image_message, budget=16, max_tokens=12, stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == expected


def test_seeded_sampling_is_reproducible(client, image_message):
    def sample(seed):
        answer = ask(client, image_message, temperature=1.0, top_p=0.9, seed=seed, max_tokens=16)
        return answer.choices[0].message.content

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_multi_turn_and_text_only_conversations(client, image_message):
    first = ask(client, image_message).choices[0].message.content
    follow_up = [*image_message, {"role": "assistant", "content": first},
                 {"role": "user", "content": "And what colour is it?"}]  # fmt: skip
    assert (
        ask(client, follow_up).usage.prompt_tokens > ask(client, image_message).usage.prompt_tokens
    )
    text_only = ask(client, [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Hello"}])  # fmt: skip
    assert text_only.usage.visual_tokens == 0 and text_only.num_visual_tokens is None


def test_concurrent_requests_are_batched_and_answer_as_alone(client, server, image_message):
    budgets = [1, 2, 4, 8, 16, 3]
    alone = {m: ask(client, image_message, m).choices[0].message.content for m in budgets}
    before = httpx.get(f"{server.url}/health").json()["stats"]
    results: dict[int, str] = {}
    # A long first request keeps the worker busy while the others queue up behind it.
    blocker = threading.Thread(target=lambda: ask(client, image_message, 16, max_tokens=120))
    blocker.start()
    threads = [threading.Thread(target=lambda m=m: results.__setitem__(
        m, ask(client, image_message, m).choices[0].message.content)) for m in budgets]  # fmt: skip
    for t in threads:
        t.start()
    for t in [blocker, *threads]:
        t.join(timeout=60)
    assert results == alone  # left-padded rows with mixed budgets answer as they do alone
    stats = httpx.get(f"{server.url}/health").json()["stats"]
    assert stats["largest_batch"] > 1
    assert stats["batches"] - before["batches"] < len(budgets) + 1


def test_a_client_leaving_mid_stream_frees_the_worker(server, image_message):
    body = {"model": MODEL_NAME, "messages": image_message, "max_tokens": 400, "stream": True,
            "temperature": 0}  # fmt: skip
    before = httpx.get(f"{server.url}/health").json()["stats"]
    headers = {"Authorization": "Bearer test-key"}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers=headers) as r:
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")  # the stream has begun; now hang up
    for _ in range(400):  # up to 20 s: a loaded CI machine can be slow to see the hang-up
        stats = httpx.get(f"{server.url}/health").json()["stats"]
        if stats["cancelled"] > before["cancelled"]:
            break
        time.sleep(0.05)
    assert stats["cancelled"] == before["cancelled"] + 1
    assert stats["completed"] == before["completed"]  # stopped, not generated to the end


def test_greedy_unless_a_temperature_is_given(client, image_message):
    plain = client.chat.completions.create(model=MODEL_NAME, messages=image_message, max_tokens=8)
    assert plain.choices[0].message.content == ask(client, image_message).choices[0].message.content
