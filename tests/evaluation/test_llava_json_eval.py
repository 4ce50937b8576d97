"""`eval --benchmark llava-json`: any LLaVA-format test set, exact match, shortcut baselines; and
the runner's handling of reruns, refusals and damaged run records."""

from __future__ import annotations

import json
from pathlib import Path

import benchmark_fixtures as fx
import pytest

from mqt_llava.cli import main
from mqt_llava.evaluation import score
from mqt_llava.evaluation.answer_files import RUN_FILE, write_atomically
from mqt_llava.evaluation.scorers.llava_json import score_llava_json_files

COLOUR_Q = "What colour is the square?"
YES_NO_Q = "Is there a circle?"
# (image colour index, question, gold answer, category); texts repeat, answers depend on images.
ROWS = [
    (0, COLOUR_Q, "Red", "colour"),
    (1, COLOUR_Q, "blue", "colour"),
    (0, COLOUR_Q, "red.", "colour"),
    (0, COLOUR_Q, "red", "colour"),
    (2, YES_NO_Q, "Yes", "yes/no"),
    (3, YES_NO_Q, "no", "yes/no"),
    (4, YES_NO_Q, "yes", "yes/no"),
]


def write_set(root: Path) -> tuple[Path, Path]:
    """A LLaVA-JSON test set with its images in a separate folder."""
    images = root / "pictures"
    records = []
    for i, (colour, question, answer, category) in enumerate(ROWS):
        fx.image(images / f"{i}.png", colour, size=(32, 32))
        records.append({
            "id": f"scene{i}", "image": f"{i}.png", "category": category,
            "conversations": [{"from": "human", "value": f"<image>\n{question}"},
                              {"from": "gpt", "value": answer}],
        })  # fmt: skip
    data = root / "set" / "test.json"
    data.parent.mkdir(parents=True)
    data.write_text(json.dumps(records))
    return data, images


def answer_file(path: Path, texts: list[str]) -> Path:
    lines = [{"question_id": f"scene{i}", "prompt": q, "text": t}
             for i, ((_, q, _, _), t) in enumerate(zip(ROWS, texts, strict=True))]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_shortcut_only_model_is_flagged(tmp_path):
    data, _ = write_set(tmp_path)
    # Text-only guess per exact question text (normalised gold answers):
    #   colour: red, blue, red, red → "red" (3 of 4); yes/no: yes, no, yes → "yes" (2 of 3).
    #   Text-only baseline = (3 + 2) / 7 = 71.4286 %.  Majority answer overall: "red" (3 of 7)
    #   → 42.8571 %.
    shortcut = answer_file(tmp_path / "shortcut.jsonl", ["red"] * 4 + ["yes"] * 3)
    r = score_llava_json_files(shortcut, data)
    assert r["text_only_baseline"]["accuracy"] == pytest.approx(500 / 7, abs=5e-5)
    assert r["majority_baseline"] == {"answer": "red", "accuracy": pytest.approx(300 / 7)}
    assert r["accuracy"] == pytest.approx(r["text_only_baseline"]["accuracy"])  # 71.4286
    assert r["agreement_with_text_only"] == 100.0
    assert r["shortcut_flag"] is True
    assert r["per_category"]["yes/no"]["shortcut_flag"] is True
    assert r["per_category"]["yes/no"]["accuracy"] == pytest.approx(200 / 3)
    # A model that reads the image: "Blue." and "No" normalise to the gold answers.
    seeing = answer_file(
        tmp_path / "seeing.jsonl", ["red", "Blue.", "Red", "red", "yes", "No", "yes"]
    )
    r = score_llava_json_files(seeing, data)
    assert (r["accuracy"], r["shortcut_flag"]) == (100.0, False)
    assert r["agreement_with_text_only"] == pytest.approx(500 / 7)
    # Half right in colour and image-blind in yes/no: only yes/no is flagged.
    mixed = answer_file(tmp_path / "mixed.jsonl", ["red", "blue", "red", "red"] + ["yes"] * 3)
    r = score_llava_json_files(mixed, data)
    assert r["per_category"]["colour"]["shortcut_flag"] is False
    assert r["per_category"]["yes/no"]["shortcut_flag"] is True


def eval_argv(model_dir, data, images, out, *extra):
    return ["eval", "--model", str(model_dir), "--benchmark", "llava-json", "--data", str(data),
            "--image-folder", str(images), "--num-visual-tokens", "2,16", "--out", str(out),
            "--batch-size", "3", "--max-new-tokens", "3", "--no-progress", *extra]  # fmt: skip


def test_eval_reports_accuracy_per_budget_and_both_baselines(tiny_model_dir, tmp_path, capsys):
    data, images = write_set(tmp_path)
    out = tmp_path / "run"
    assert main(eval_argv(tiny_model_dir, data, images, out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["title"] == "test.json (LLaVA-JSON)"  # the data's name, not a benchmark's
    assert [r["num_visual_tokens"] for r in metrics["results"]] == [2, 16]
    for row in metrics["results"]:
        m = row["metrics"]
        assert row["score"] == m["accuracy"] and m["n"] == len(ROWS)
        assert m["text_only_baseline"]["accuracy"] == pytest.approx(500 / 7)
        assert m["majority_baseline"]["accuracy"] == pytest.approx(300 / 7)
        assert set(m["per_category"]) == {"colour", "yes/no"}
        expected = score("llava-json", out / row["answers"], data)
        assert m == json.loads(json.dumps(expected))
    printed = capsys.readouterr().out
    assert "test.json (LLaVA-JSON): 7 questions" in printed
    assert "shortcut baselines" in printed and "yes/no" in printed


def test_rerun_with_a_smaller_limit_scores_only_its_questions(tiny_model_dir, tmp_path, capsys):
    from mqt_llava.evaluation.report import write_report

    data, images = write_set(tmp_path)
    out = tmp_path / "run"
    assert main(eval_argv(tiny_model_dir, data, images, out)) == 0
    assert main(eval_argv(tiny_model_dir, data, images, out, "--limit", "3")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_questions"] == 3
    assert all(row["metrics"]["n"] == 3 for row in metrics["results"])
    assert len((out / "answers_m2.jsonl").read_text().splitlines()) == 7  # kept for a resume
    write_report([out], tmp_path / "report")
    assert "n=3" in (tmp_path / "report" / "results.md").read_text()


def test_a_refused_eval_writes_no_run_record(tiny_model_dir, tmp_path, capsys):
    data, images = write_set(tmp_path)
    out = tmp_path / "run"
    bad = eval_argv(tiny_model_dir, data, images, out)
    bad[bad.index("--num-visual-tokens") + 1] = "2,99"  # the tiny model has M = 16
    assert main(bad) == 2
    assert not (out / RUN_FILE).exists()
    zero = eval_argv(tiny_model_dir, data, images, out)
    zero[zero.index("--max-new-tokens") + 1] = "0"
    assert main(zero) == 2
    assert "--max-new-tokens: expected a positive integer" in capsys.readouterr().err
    assert not (out / RUN_FILE).exists()
    assert main(eval_argv(tiny_model_dir, data, images, out)) == 0  # the corrected retry runs


def test_a_damaged_run_record_is_named_with_what_to_do(tiny_model_dir, tmp_path, capsys):
    data, images = write_set(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / RUN_FILE).write_text('{"benchmark": "llavajs')  # cut short
    assert main(eval_argv(tiny_model_dir, data, images, out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mqt-llava: error: {out / RUN_FILE} is damaged")
    assert "delete it" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert main(eval_argv(tiny_model_dir, data, images, out, "--overwrite")) == 0
    assert json.loads((out / RUN_FILE).read_text())["benchmark"] == "llavajson"


def test_run_record_is_replaced_atomically(tmp_path, monkeypatch):
    path = tmp_path / RUN_FILE
    path.write_text("old")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("mqt_llava.evaluation.answer_files.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, "new")
    assert path.read_text() == "old"  # never half-written
    assert [p.name for p in tmp_path.iterdir()] == [RUN_FILE]  # the temporary file is removed
