"""`auto` at every surface: the Python API, `ask`, `eval` (metrics.json) and the server."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from mqt_llava.cli import main
from mqt_llava.data.shapes import generate_shapes_dataset
from mqt_llava.inference.auto import AutoAnswer

ALWAYS = {"policy": "escalation", "ladder": [1, 64], "threshold": 1.0}  # both rungs, always
ONE_RUNG = {"policy": "escalation", "ladder": [4], "threshold": 0.5}  # auto that is always m=4


@pytest.fixture
def policy_file(tmp_path):
    def write(spec: dict) -> str:
        path = tmp_path / f"policy-{len(list(tmp_path.glob('policy-*')))}.json"
        path.write_text(json.dumps(spec))
        return str(path)

    return write


def test_python_api_returns_the_budget_used(vlm, examples):
    image, question = examples[0]
    answer = vlm.ask(image, question, num_visual_tokens="auto", budget_policy=ALWAYS)
    assert isinstance(answer, AutoAnswer) and isinstance(answer, str)
    assert answer.num_visual_tokens == 64 and [a.num_visual_tokens for a in answer.attempts] == [
        1,
        64,
    ]
    assert answer == vlm.ask(image, question, num_visual_tokens=64)
    assert answer.usage()["prefill_gflops"] > 0
    default = vlm.ask(image, question, num_visual_tokens="auto")  # budget_policy.json's
    assert default.attempts[0].num_visual_tokens == 16  # its ladder is 16/32
    with pytest.raises(ValueError, match="greedily"):
        vlm.ask(image, question, num_visual_tokens="auto", temperature=0.7)


def test_ask_command_mixes_auto_and_fixed(examples, policy_file, capsys):
    image, question = examples[0]
    argv = ["ask", question, "--image", str(image), "--num-visual-tokens", "4,auto,64",
            "--budget-policy", policy_file(ALWAYS), "--max-new-tokens", "4"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["tokens", "seconds", "GFLOPs", "answer"]
    assert [line.split()[0] for line in lines[1:]] == ["4", "auto:64", "64"]
    assert "[escalation, tried 1,64]" in lines[2]
    assert lines[2].split()[3] == lines[3].split()[3]  # auto kept its m=64 answer


@pytest.mark.parametrize(
    "budgets, message",
    [("99,auto", "between 1 and 64 or 'auto'"), ("auto,x", "integers or auto")],
)
def test_ask_command_errors_are_one_line(examples, capsys, budgets, message):
    image, question = examples[0]
    argv = ["ask", question, "--image", str(image), "--num-visual-tokens", budgets]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own refusal of the value
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("content", [None, "{not json"], ids=["missing", "malformed"])
def test_a_bad_policy_file_is_refused_before_any_output(examples, tmp_path, capsys, content):
    image, question = examples[0]
    policy = tmp_path / "policy.json"
    if content is not None:
        policy.write_text(content)
    argv = ["ask", question, "--image", str(image), "--num-visual-tokens", "4,auto",
            "--budget-policy", str(policy)]  # fmt: skip
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "budget policy file" in captured.err and len(captured.err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    generate_shapes_dataset(folder, n=60, seed=5)  # 6 test questions
    return folder


def test_eval_writes_accuracy_mean_budget_and_prefill_flops(
    shapes_data, tmp_path, policy_file, capsys
):
    out = tmp_path / "run"
    argv = ["eval", "--benchmark", "shapes", "--data", str(shapes_data), "--out", str(out),
            "--num-visual-tokens", "4,auto", "--budget-policy", policy_file(ONE_RUNG),
            "--batch-size", "4", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "auto" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    fixed, auto = metrics["results"]
    assert fixed["num_visual_tokens"] == 4 and auto["num_visual_tokens"] == "auto"
    assert auto["score"] == fixed["score"]  # a one-rung ladder at 4 is fixed m = 4
    assert auto["mean_num_visual_tokens"] == 4 and auto["mean_attempts"] == 1
    records = [json.loads(line) for line in (out / "answers_auto.jsonl").read_text().splitlines()]
    fixed_records = [
        json.loads(line) for line in (out / "answers_m4.jsonl").read_text().splitlines()
    ]
    assert [r["text"] for r in records] == [r["text"] for r in fixed_records]
    mean = sum(r["metadata"]["prefill_gflops"] for r in records) / len(records)
    assert auto["mean_prefill_gflops"] == pytest.approx(mean)
    assert auto["policy"] == {"policy": "escalation", "ladder": [4], "threshold": 0.5,
                              "confidence": "first_token"}  # fmt: skip


def test_eval_auto_counts_every_attempt(shapes_data, tmp_path, policy_file):
    out = tmp_path / "run"
    argv = [
        "eval",
        "--benchmark",
        "shapes",
        "--data",
        str(shapes_data),
        "--out",
        str(out),
        "--num-visual-tokens",
        "auto",
        "--budget-policy",
        policy_file(ALWAYS),
        "--no-progress",
    ]
    assert main(argv) == 0
    (auto,) = json.loads((out / "metrics.json").read_text())["results"]
    assert auto["mean_attempts"] == 2 and auto["mean_num_visual_tokens"] == 64
    records = [json.loads(line) for line in (out / "answers_auto.jsonl").read_text().splitlines()]
    for record in records:
        attempts = record["metadata"]["attempts"]
        assert [a["num_visual_tokens"] for a in attempts] == [1, 64]
        assert record["metadata"]["prefill_gflops"] > sum(a["llm_gflops"] for a in attempts)
    assert auto["score"] is not None


# -- the server ---------------------------------------------------------------------------------


MODEL_NAME = "shapes"


def _body(image_uri: str, **extra) -> dict:
    question = "What colour is the square? Answer the question using a single word or phrase."
    parts = [
        {"type": "image_url", "image_url": {"url": image_uri}},
        {"type": "text", "text": question},
    ]
    message = {"role": "user", "content": parts}
    return {"model": MODEL_NAME, "messages": [message], "max_tokens": 4, **extra}


@pytest.fixture(scope="module")
def image_uri(examples):
    return "data:image/png;base64," + base64.b64encode(examples[0][0].read_bytes()).decode()


def test_server_auto_reports_budget_and_prefill_work(vlm, image_uri):
    from mqt_llava.serving.background import BackgroundServer
    from mqt_llava.serving.engine import Engine
    from mqt_llava.serving.server import ServerSettings, create_app

    engine = Engine(vlm, max_queue=8, max_batch=4, default_max_tokens=8)
    app = create_app(engine, ServerSettings(model_name=MODEL_NAME))
    with BackgroundServer(app) as server:
        url = f"{server.url}/v1/chat/completions"
        reply = httpx.post(url, json=_body(image_uri, num_visual_tokens="auto"), timeout=60).json()
        usage = reply["usage"]
        assert reply["num_visual_tokens"] == usage["num_visual_tokens"]
        assert usage["budget_policy"] == "escalation" and usage["prefill_gflops"] > 0
        assert usage["attempted_budgets"][-1] == usage["num_visual_tokens"]
        assert usage["visual_tokens"] == usage["num_visual_tokens"]
        fixed = httpx.post(
            url, json=_body(image_uri, num_visual_tokens=usage["num_visual_tokens"]), timeout=60
        ).json()
        assert fixed["choices"][0]["message"] == reply["choices"][0]["message"]
        stream = httpx.post(
            url,
            json=_body(image_uri, num_visual_tokens="auto", stream=True,
                       stream_options={"include_usage": True}),
            timeout=60,
        )  # fmt: skip
        chunks = [json.loads(line[6:]) for line in stream.text.splitlines()
                  if line.startswith("data: {")]  # fmt: skip
        assert chunks[-1]["usage"]["num_visual_tokens"] == usage["num_visual_tokens"]
        for bad, extra in [("automatic", {}), ("auto", {"temperature": 0.7})]:
            refused = httpx.post(url, json=_body(image_uri, num_visual_tokens=bad, **extra))
            assert refused.status_code == 400
            assert refused.json()["error"]["param"] == "num_visual_tokens"


def test_engine_batch_mixing_auto_and_fixed(vlm, examples):
    """Both requests wait before the worker starts, so they share one batch."""
    from PIL import Image

    from mqt_llava.serving.engine import Engine, Finished, SamplingParams

    engine = Engine(vlm, max_batch=4, default_max_tokens=4)
    engine.budget_policy = ALWAYS
    events: dict[str, list] = {"auto": [], "fixed": []}
    image = Image.open(examples[0][0]).convert("RGB")
    question = examples[0][1]
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}
    ]
    jobs = {
        name: engine.prepare(messages, [image], budget, SamplingParams(), events[name].append)
        for name, budget in (("auto", "auto"), ("fixed", 8))
    }
    engine._waiting.extend(jobs.values())
    engine.start()
    try:
        for _ in range(600):
            if all(job.finished for job in jobs.values()):
                break
            time.sleep(0.1)
    finally:
        engine.stop()
    assert engine.stats["largest_batch"] == 2 and engine.stats["completed"] == 2
    texts = {
        n: "".join(e.text for e in ev if not isinstance(e, Finished)) for n, ev in events.items()
    }
    assert texts["auto"] == vlm.ask(examples[0][0], question, 64, max_new_tokens=4)
    assert texts["fixed"] == vlm.ask(examples[0][0], question, 8, max_new_tokens=4)
    assert jobs["auto"].budgets == [64] and jobs["auto"].budget_usage["attempted_budgets"] == [
        1,
        64,
    ]
    assert jobs["fixed"].budget_usage["attempted_budgets"] == [8]


def test_report_leaves_auto_rows_out(shapes_data, tmp_path, policy_file):
    out = tmp_path / "run"
    argv = ["eval", "--benchmark", "shapes", "--data", str(shapes_data), "--out", str(out),
            "--num-visual-tokens", "2,auto", "--budget-policy", policy_file(ONE_RUNG),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    table = (tmp_path / "report" / "results.md").read_text()
    assert "auto" not in table and "2" in table
