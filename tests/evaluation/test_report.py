"""`mqt-llava report`: the benchmark x budget table and the accuracy / TFLOPs plot."""

from __future__ import annotations

import importlib.util
import json

import pytest
from PIL import Image

from mqt_llava.cli import main
from mqt_llava.evaluation.report import flops_table, write_report


def write_run(folder, benchmark, title, scores, percent=True, headline="accuracy", model="m"):
    folder.mkdir(parents=True)
    results = [
        {"num_visual_tokens": m, "answers": f"answers_m{m}.jsonl", "score": s, "metrics": {}}
        for m, s in scores.items()
    ]
    payload = {
        "benchmark": benchmark,
        "title": title,
        "model": str(model),
        "num_questions": 10,
        "headline": headline,
        "percent": percent,
        "annotations": None,
        "results": results,
    }
    (folder / "metrics.json").write_text(json.dumps(payload))  # fmt: skip
    return folder


@pytest.fixture
def runs(tmp_path):
    shapes = write_run(tmp_path / "shapes", "shapes", "ShapesVQA", {2: 40.0, 16: 55.25, 64: 61.0})
    mme = write_run(
        tmp_path / "mme", "mme", "MME-P", {2: 1144.0, 64: None}, percent=False,
        headline="perception",
    )  # fmt: skip
    return [shapes, mme]


FLOPS_JSON = {
    "baseline": {"num_visual_tokens": 576, "total_tflops": 8.86},
    "rows": [{"num_visual_tokens": m, "total_tflops": t, "vision_tflops": 0.35}
             for m, t in ((2, 0.93), (16, 1.37), (64, 2.0))],
    "prompt_tokens": 40,
}  # fmt: skip


def test_table_and_two_panel_plot(runs, tmp_path):
    markdown, png = write_report(runs, tmp_path / "report", flops=FLOPS_JSON)
    assert markdown.read_text() == (
        "| benchmark (metric) | 2 | 16 | 64 |\n"
        "|---|---:|---:|---:|\n"
        "| ShapesVQA (accuracy, n=10) | 40.0 | 55.2 | 61.0 |\n"
        "| MME-P (perception, n=10) | 1144.0 | – | – |\n"
        "| prefill TFLOPs (1 image + 40 text tokens) | 0.93 | 1.37 | 2 |\n"
    )
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (1560, 540)  # two 6.5 x 4.5 in panels


def test_without_flops_the_plot_has_one_panel(runs, tmp_path):
    markdown, png = write_report(runs, tmp_path / "report")  # model "m" is no folder: no count
    assert "TFLOPs" not in markdown.read_text()
    with Image.open(png) as image:
        assert image.size == (780, 540)


def test_flops_table_forms_and_errors():
    assert flops_table(FLOPS_JSON) == {2: 0.93, 16: 1.37, 64: 2.0}
    assert flops_table({"2": 1.0, "16": "1.5"}) == {2: 1.0, 16: 1.5}
    for bad in ({"rows": [{"m": 2}]}, {"two": 1.0}, [1, 2]):
        with pytest.raises(ValueError, match="mqt-llava flops --json"):
            flops_table(bad)


def test_report_command(runs, tmp_path, capsys):
    flops = tmp_path / "flops.json"
    flops.write_text(json.dumps({"2": 0.9, "16": 1.4, "64": 2.0}))
    out = tmp_path / "report"
    assert main(["report", *map(str, runs), "--out", str(out), "--flops", str(flops)]) == 0
    printed = capsys.readouterr().out
    assert "| ShapesVQA (accuracy, n=10) | 40.0 | 55.2 | 61.0 |" in printed
    assert "prefill TFLOPs (1 image + 60 text tokens) | 0.9 | 1.4 | 2 |" in printed
    assert (out / "accuracy_vs_budget.png").is_file()
    assert main(["report", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "no metrics.json" in capsys.readouterr().err


def test_same_benchmark_of_two_models_is_told_apart(tmp_path):
    a = write_run(tmp_path / "a", "shapes", "ShapesVQA", {2: 1.0}, model="/x/model-a")
    b = write_run(tmp_path / "b", "shapes", "ShapesVQA", {2: 2.0}, model="/x/model-b")
    markdown, _ = write_report([a, b], tmp_path / "report", flops={"2": 1.0})
    text = markdown.read_text()
    assert "ShapesVQA (model-a) (accuracy" in text and "ShapesVQA (model-b) (accuracy" in text


@pytest.mark.skipif(
    importlib.util.find_spec("mqt_llava.perf.flops") is None,
    reason="the FLOPs counter (mqt_llava.perf.flops) is not installed",
)
def test_flops_are_counted_from_the_runs_model_when_not_given(tiny_model_dir, tmp_path):
    run = write_run(tmp_path / "s", "shapes", "ShapesVQA", {2: 1.0, 16: 2.0}, model=tiny_model_dir)
    markdown, _ = write_report([run], tmp_path / "report", prompt_tokens=20)
    row = markdown.read_text().splitlines()[-1]
    assert row.startswith("| prefill TFLOPs (1 image + 20 text tokens) |")
    small, large = (float(cell) for cell in row.strip("| ").split(" | ")[1:])
    assert 0 < small < large  # more visual tokens, more FLOPs
