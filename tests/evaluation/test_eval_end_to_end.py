"""`mqt-llava eval` end to end on a tiny model: every supported format at two budgets."""

from __future__ import annotations

import json
from pathlib import Path

import benchmark_fixtures as fx
import pytest
import torch

import mqt_llava
from mqt_llava.cli import main
from mqt_llava.evaluation import score
from mqt_llava.evaluation.readers import get_benchmark
from mqt_llava.model import MQTLlavaForConditionalGeneration

# (benchmark, fixture writer, question file the scorer also reads)
CASES = [
    ("vqav2", fx.vqav2, None),
    ("gqa", fx.gqa, None),
    ("vizwiz", fx.vizwiz, "llava_test.jsonl"),
    ("textvqa", fx.textvqa, None),
    ("pope", fx.pope, "llava_pope_test.jsonl"),
    ("seed", fx.seed, None),
    ("mme", fx.mme, None),
    ("mme", lambda root: fx.mme(root, jsonl=True), None),
    ("mmbench", fx.mmbench, None),
    ("scienceqa", fx.scienceqa, None),
    ("scienceqa", lambda root: fx.scienceqa(root, llava_file=True), None),
    ("mmmu", fx.mmmu, "mmmu_validation.jsonl"),
    ("shapes", fx.shapes, None),
]


def eval_argv(
    model_dir: Path,
    name: str,
    data: Path,
    out: Path,
    *extra: str,
    budgets: str = "2,16",
    max_new_tokens: int = 3,
) -> list[str]:
    return ["eval", "--model", str(model_dir), "--benchmark", name, "--data", str(data),
            "--num-visual-tokens", budgets, "--out", str(out), "--batch-size", "2",
            "--max-new-tokens", str(max_new_tokens), "--no-progress", *extra]  # fmt: skip


def answers(out: Path, m: int) -> list[dict]:
    return [json.loads(line) for line in (out / f"answers_m{m}.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(("name", "write", "scorer_questions"), CASES)
def test_every_format_runs_at_two_budgets_and_is_scored(
    tiny_model_dir, tmp_path, capsys, name, write, scorer_questions
):
    data, out = write(tmp_path), tmp_path / "out"
    assert main(eval_argv(tiny_model_dir, name, data, out)) == 0
    items = get_benchmark(name).read(data, None, None)
    for m in (2, 16):
        records = answers(out, m)
        assert [(r["question_id"], r["prompt"]) for r in records] == [
            (i.question_id, i.prompt) for i in items
        ]
        assert all(r["metadata"]["num_visual_tokens"] == m for r in records)
        assert all(isinstance(r["text"], str) and r["model_id"] == tiny_model_dir.name
                   for r in records)  # fmt: skip
        assert len({r["answer_id"] for r in records}) == len(records)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["benchmark"] == name and metrics["num_questions"] == len(items)
    assert [r["num_visual_tokens"] for r in metrics["results"]] == [2, 16]
    questions = data / scorer_questions if scorer_questions else None
    for row in metrics["results"]:
        expected = score(name, out / row["answers"], Path(metrics["annotations"]), questions)
        assert row["metrics"] == json.loads(json.dumps(expected))
        assert isinstance(row["score"], float)
    printed = capsys.readouterr().out
    assert f"{len(items)} questions" in printed and "     2  " in printed


def test_vqav2_test_dev_has_no_annotations_and_is_not_scored(tiny_model_dir, tmp_path, capsys):
    data, out = fx.vqav2(tmp_path, annotations=False), tmp_path / "out"
    assert main(eval_argv(tiny_model_dir, "vqav2", data, out, "--limit", "2")) == 0
    assert len(answers(out, 16)) == 2  # --limit
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["annotations"] is None
    assert all(r["score"] is None and r["metrics"] is None for r in metrics["results"])
    assert "not scored: no annotations found" in capsys.readouterr().out


def test_each_batch_is_encoded_once_at_the_largest_budget(tiny_model_dir, tmp_path, monkeypatch):
    calls = []
    original = MQTLlavaForConditionalGeneration.get_image_features

    def spy(self, pixel_values, num_visual_tokens=None):
        calls.append((pixel_values.shape[0], num_visual_tokens))
        return original(self, pixel_values, num_visual_tokens)

    monkeypatch.setattr(MQTLlavaForConditionalGeneration, "get_image_features", spy)
    data, out = fx.shapes(tmp_path), tmp_path / "out"
    argv = eval_argv(tiny_model_dir, "shapes", data, out, budgets="2,8,16")
    assert main(argv) == 0
    n = len(answers(out, 2))
    assert calls == [(2, 16)] * (n // 2) + ([(n % 2, 16)] if n % 2 else [])


def test_sliced_answers_equal_answers_encoded_at_each_budget(tiny_model_dir, tmp_path):
    # The sweep encodes at 16 and slices; the reference encodes each image at each budget.
    data, out = fx.pope(tmp_path), tmp_path / "out"
    argv = eval_argv(
        tiny_model_dir, "pope", data, out, "--batch-size", "1", budgets="1,2,4,16", max_new_tokens=6
    )
    assert main(argv) == 0
    vlm = mqt_llava.load(tiny_model_dir, device="cpu")
    items = get_benchmark("pope").read(data, None, None)
    by_budget = {m: [r["text"] for r in answers(out, m)] for m in (1, 2, 4, 16)}
    for m, texts in by_budget.items():
        for item, text in zip(items, texts, strict=True):
            prompt = vlm.processor.build_prompt(item.question)
            inputs = vlm.processor(images=[item.image], text=prompt, num_visual_tokens=m)
            with torch.no_grad():
                output = vlm.model.generate(**inputs, max_new_tokens=6, do_sample=False)
            expected = vlm.processor.decode(output[0, inputs["input_ids"].shape[1] :],
                                            skip_special_tokens=True)  # fmt: skip
            assert text == expected.strip()
    # The comparison has power: the random model's answers do depend on the visual tokens.
    assert len({tuple(texts) for texts in by_budget.values()}) > 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--num-visual-tokens", "4,17"], "between 1 and 16"),
        (["--benchmark", "okvqa"], "unknown benchmark 'okvqa'"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--limit", "0"], "--limit must be at least 1"),
        (["--data", "/nonexistent/gqa"], "--data /nonexistent/gqa: no such folder"),
    ],
)
def test_errors_are_one_line(tiny_model_dir, tmp_path, capsys, extra, message):
    argv = eval_argv(tiny_model_dir, "gqa", fx.gqa(tmp_path), tmp_path / "out") + extra
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_missing_image_stops_with_one_line_and_keeps_finished_batches(
    tiny_model_dir, tmp_path, capsys
):
    data, out = fx.textvqa(tmp_path), tmp_path / "out"
    (data / "train_images" / "004e8b1b1f5b2f3c.jpg").unlink()  # the 3rd question's image
    argv = eval_argv(tiny_model_dir, "textvqa", data, out, "--batch-size", "1")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "Image file not found" in err and "004e8b1b1f5b2f3c.jpg" in err and "Traceback" not in err
    )
    assert [len(answers(out, m)) for m in (2, 16)] == [2, 2]  # the first 2 batches were kept
