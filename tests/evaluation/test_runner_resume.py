"""Resuming `mqt-llava eval`: an interrupted run, rerun, writes exactly the uninterrupted files."""

from __future__ import annotations

import json

import benchmark_fixtures as fx
import pytest

import mqt_llava.inference.generation as generation
from mqt_llava.cli import main
from mqt_llava.evaluation.answer_files import finished_keys
from mqt_llava.evaluation.runner import evaluate

FILES = ("answers_m2.jsonl", "answers_m16.jsonl", "metrics.json")


@pytest.fixture
def pope_data(tmp_path):
    return fx.pope(tmp_path)  # 6 questions: 3 batches of 2


def argv(model_dir, data, out, batch_size="2"):
    return ["eval", "--model", str(model_dir), "--benchmark", "pope", "--data", str(data),
            "--num-visual-tokens", "2,16", "--out", str(out), "--batch-size", batch_size,
            "--max-new-tokens", "4", "--no-progress"]  # fmt: skip


@pytest.fixture
def reference(tiny_model_dir, pope_data, tmp_path):
    """The files of an uninterrupted run."""
    out = tmp_path / "reference"
    assert main(argv(tiny_model_dir, pope_data, out)) == 0
    return {name: (out / name).read_bytes() for name in FILES}


def same_files(out, reference) -> bool:
    # metrics.json names no folder of its own, so it must match byte for byte too
    return {name: (out / name).read_bytes() for name in FILES} == reference


def test_interrupted_between_budgets_then_resumed(
    tiny_model_dir, pope_data, tmp_path, monkeypatch, reference
):
    # Ctrl-C inside the CLI, during the 4th generation call: batch 0 done at both budgets,
    # batch 1 done at m=2 only.
    calls, original = [], generation.generate_answers

    def interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(generation, "generate_answers", interrupt)
    out = tmp_path / "run"
    assert main(argv(tiny_model_dir, pope_data, out)) == 130
    assert len(finished_keys(out / "answers_m2.jsonl")) == 4
    assert len(finished_keys(out / "answers_m16.jsonl")) == 2
    assert not (out / "metrics.json").exists()

    monkeypatch.setattr(generation, "generate_answers", original)
    assert main(argv(tiny_model_dir, pope_data, out)) == 0
    assert same_files(out, reference)


def test_interrupted_after_a_batch_and_a_torn_line(tiny_model_dir, pope_data, tmp_path, reference):
    def stop_after_first_batch(index):
        raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        evaluate(
            tiny_model_dir, "pope", pope_data, [2, 16], out, batch_size=2, max_new_tokens=4,
            progress=False, on_batch=stop_after_first_batch,
        )  # fmt: skip
    with open(out / "answers_m16.jsonl", "a") as file:  # a write cut short by a crash
        file.write('{"question_id": 3, "prompt": "Is th')
    assert main(argv(tiny_model_dir, pope_data, out)) == 0
    assert same_files(out, reference)


def test_finished_keys_drops_only_an_unterminated_last_line(tmp_path):
    path = tmp_path / "a.jsonl"
    good = [{"question_id": 1, "prompt": "p", "text": "x"}, {"question_id": "b", "prompt": "q"}]
    text = "".join(json.dumps(r) + "\n" for r in good)
    path.write_text(text + '{"question_id": 3, "pro')
    assert finished_keys(path) == {("1", "p"), ("b", "q")}
    assert path.read_text() == text
    assert finished_keys(tmp_path / "missing.jsonl") == set()


def test_a_finished_run_is_not_regenerated(tiny_model_dir, pope_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert main(argv(tiny_model_dir, pope_data, out)) == 0

    def fail(*args, **kwargs):
        raise AssertionError("nothing should be generated again")

    monkeypatch.setattr(generation, "generate_answers", fail)
    assert main(argv(tiny_model_dir, pope_data, out)) == 0  # rescored only
    assert len(finished_keys(out / "answers_m16.jsonl")) == 6


def test_resume_with_other_settings_is_refused_unless_overwrite(
    tiny_model_dir, pope_data, tmp_path, capsys, reference
):
    out = tmp_path / "run"
    assert main(argv(tiny_model_dir, pope_data, out, batch_size="3")) == 0
    assert main(argv(tiny_model_dir, pope_data, out)) == 2
    err = capsys.readouterr().err
    assert "other settings (batch_size: 3 → 2)" in err and "--overwrite" in err
    assert main([*argv(tiny_model_dir, pope_data, out), "--overwrite"]) == 0
    assert same_files(out, reference)
