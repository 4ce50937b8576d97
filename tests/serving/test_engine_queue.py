"""The engine: batched rows answer as they would alone, the queue is bounded, cancelled jobs stop
early, and a full queue is a 429 at the HTTP level."""

from __future__ import annotations

import queue
import threading
import time

import httpx
import pytest
from serving_helpers import MODEL_NAME, data_uri, png_bytes, running_server, user_message

from mqt_llava.model.images import load_image
from mqt_llava.serving.engine import (
    Delta,
    Engine,
    Failed,
    Finished,
    QueueFullError,
    SamplingParams,
)

IMAGE_MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]


def run(engine: Engine, jobs_args: list[tuple]) -> list[tuple[str, Finished]]:
    """Submits all jobs at once and waits for every answer."""
    sinks = [queue.Queue() for _ in jobs_args]
    jobs = [engine.prepare(*args, sink.put) for args, sink in zip(jobs_args, sinks, strict=True)]
    for job in jobs:
        engine.submit(job)
    answers = []
    for sink in sinks:
        pieces = []
        while isinstance(event := sink.get(timeout=60), Delta):
            pieces.append(event.text)
        assert isinstance(event, Finished), event
        answers.append(("".join(pieces), event))
    return answers


@pytest.fixture(scope="module")
def images():
    return [load_image(png_bytes(seed=s)) for s in range(4)]


def test_a_batch_answers_each_row_as_it_would_alone(tiny_vlm, images):
    # Different prompts, images, budgets, lengths and stop strings in one greedy batch.
    requests = [
        (IMAGE_MESSAGES, [images[0]], 16, SamplingParams(max_tokens=10)),
        (IMAGE_MESSAGES, [images[1]], 1, SamplingParams(max_tokens=3)),
        ([{"role": "user", "content": "Only text, a longer prompt than the others."}], [], None,
         SamplingParams(max_tokens=7)),
        (IMAGE_MESSAGES, [images[2]], 5, SamplingParams(max_tokens=10, stop=("a",))),
    ]  # fmt: skip
    alone = Engine(tiny_vlm, max_batch=1).start()
    together = Engine(tiny_vlm, max_batch=8).start()
    try:
        expected = [run(alone, [r])[0] for r in requests]
        # A long job keeps the worker busy while the others queue; cancelled, it lets them go
        # as one batch.
        started = queue.Queue()
        blocker = together.prepare(*requests[0][:3], SamplingParams(max_tokens=300), started.put)
        together.submit(blocker)
        started.get(timeout=30)
        sinks = [queue.Queue() for _ in requests]
        for r, sink in zip(requests, sinks, strict=True):
            together.submit(together.prepare(*r, sink.put))
        blocker.cancel()
        got = []
        for sink in sinks:
            pieces = []
            while isinstance(event := sink.get(timeout=60), Delta):
                pieces.append(event.text)
            got.append(("".join(pieces), event))
    finally:
        alone.stop()
        together.stop()
    assert together.stats["batches"] == 2 and together.stats["largest_batch"] == 4
    assert got == expected
    assert [e.completion_tokens for _, e in got][:3] == [10, 3, 7]


def test_sampled_requests_batch_only_with_equal_settings(tiny_vlm, images):
    engine = Engine(tiny_vlm)
    prepare = lambda p: engine.prepare(IMAGE_MESSAGES, [images[0]], 4, p, print)  # noqa: E731
    greedy = prepare(SamplingParams(temperature=0, seed=3)).key
    assert greedy == prepare(SamplingParams(temperature=0)).key
    assert prepare(SamplingParams(0.7, 0.9)).key == prepare(SamplingParams(0.7, 0.9)).key
    assert prepare(SamplingParams(0.7, 0.9)).key != prepare(SamplingParams(0.7, 1.0)).key
    seeded = prepare(SamplingParams(0.7, 0.9, seed=1)).key
    assert seeded != prepare(SamplingParams(0.7, 0.9, seed=1)).key  # a seeded job runs alone


def test_queue_is_bounded_and_cancelled_jobs_are_skipped(tiny_vlm, images):
    engine = Engine(tiny_vlm, max_queue=2, max_batch=1).start()
    try:
        long = SamplingParams(max_tokens=200)
        blocker_events = queue.Queue()
        blocker = engine.prepare(IMAGE_MESSAGES, [images[0]], 16, long, blocker_events.put)
        engine.submit(blocker)
        assert isinstance(blocker_events.get(timeout=30), Delta)  # the worker is busy with it
        waiting = [engine.prepare(IMAGE_MESSAGES, [images[0]], 2, long, lambda e: None)
                   for _ in range(2)]  # fmt: skip
        for job in waiting:
            engine.submit(job)
        with pytest.raises(QueueFullError, match="busy"):
            engine.submit(engine.prepare(IMAGE_MESSAGES, [images[0]], 2, long, print))
        for job in waiting:
            job.cancel()
        blocker.cancel()  # stops generating at the next token: no Finished is sent
        ok = run(engine, [(IMAGE_MESSAGES, [images[1]], 2, SamplingParams(max_tokens=3))])
        assert ok[0][1].completion_tokens == 3
        assert not any(job.finished for job in waiting)  # skipped, never generated
    finally:
        engine.stop()


def test_a_failing_batch_reports_and_the_worker_survives(tiny_vlm, images):
    engine = Engine(tiny_vlm).start()
    try:
        events = queue.Queue()
        job = engine.prepare(
            IMAGE_MESSAGES, [images[0]], 4, SamplingParams(max_tokens=3), events.put
        )
        job.pixel_values = job.pixel_values[:, :1]  # a corrupted tensor: the model will raise
        engine.submit(job)
        assert isinstance(events.get(timeout=30), Failed)
        assert run(engine, [(IMAGE_MESSAGES, [images[0]], 4, SamplingParams(max_tokens=2))])
        assert engine.alive and engine.stats["failed"] == 1
    finally:
        engine.stop()


def test_full_queue_answers_429_in_the_error_shape(tiny_vlm):
    body = {"model": MODEL_NAME, "max_tokens": 200, "temperature": 0,
            "messages": [user_message("Hi", data_uri(png_bytes()))]}  # fmt: skip
    with running_server(tiny_vlm, max_queue=1, max_batch=1) as server:
        url = f"{server.url}/v1/chat/completions"
        statuses, errors = [], []

        def post():
            response = httpx.post(url, json=body, timeout=60)
            statuses.append(response.status_code)
            if response.status_code != 200:
                errors.append((response.json()["error"], response.headers.get("retry-after")))

        threads = [threading.Thread(target=post) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert sorted(set(statuses)) == [200, 429] and statuses.count(200) >= 2
        assert all(e["code"] == "queue_full" and e["type"] == "rate_limit_error" and retry == "1"
                   for e, retry in errors)  # fmt: skip
        assert httpx.post(url, json={**body, "max_tokens": 2}, timeout=60).status_code == 200


def test_an_answer_later_than_the_timeout_is_a_503_and_is_cancelled(tiny_vlm):
    body = {"model": MODEL_NAME, "max_tokens": 400,
            "messages": [user_message("Hi", data_uri(png_bytes()))]}  # fmt: skip
    with running_server(tiny_vlm, request_timeout=0.05) as server:
        response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "timeout"
        for _ in range(100):
            stats = httpx.get(f"{server.url}/health").json()["stats"]
            if stats["cancelled"]:
                break
            time.sleep(0.05)
        assert stats["cancelled"] == 1 and stats["completed"] == 0
