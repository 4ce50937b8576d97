"""The `mqt-llava` command end to end on the converted parity fixture (offline)."""

from __future__ import annotations

import json

import pytest

import mqt_llava
from mqt_llava.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, fixture_dir):
    out = tmp_path_factory.mktemp("cli-model")
    assert main(["convert", str(fixture_dir / "checkpoint"), str(out)]) == 0
    return out


def test_convert_states_the_default_budget(fixture_dir, tmp_path, capsys):
    assert main(["convert", str(fixture_dir / "checkpoint"), str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "default num_visual_tokens: 256" in out and "M=256" in out
    assert json.loads((tmp_path / "m/config.json").read_text())["num_visual_tokens"] == 256


def test_ask_at_several_budgets_prints_budget_answer_and_time(model_dir, fixture_dir, capsys):
    image = str(fixture_dir / "images/img0.png")
    argv = ["ask", "What is shown in this image?", "--model", str(model_dir), "--image", image,
            "--num-visual-tokens", "2,16,256", "--max-new-tokens", "8"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["tokens", "seconds", "answer"]
    rows = [line.split(None, 2) for line in lines[1:]]
    assert [int(r[0]) for r in rows] == [2, 16, 256]
    assert all(float(r[1]) > 0 for r in rows)
    # greedy answers equal the original code's tokens at m=16 and m=256 (fixture manifest)
    vlm = mqt_llava.load(model_dir)
    expected = vlm.processor.decode(
        [310, 526, 96, 296, 352, 950, 281, 43], skip_special_tokens=True
    )
    assert rows[1][2] == expected.strip()


def test_ask_streams_with_one_budget(model_dir, fixture_dir, capsys):
    image = str(fixture_dir / "images/img0.png")
    argv = ["ask", "What is shown in this image?", "--model", str(model_dir), "--image", image,
            "--num-visual-tokens", "16", "--max-new-tokens", "8"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("[16 visual tokens] ") and out.rstrip().endswith(" s)")


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--num-visual-tokens", "0"], "budgets start at 1"),
        (["--num-visual-tokens", "257"], "between 1 and 256"),
        (["--image", "/nonexistent.png"], "Image file not found"),
    ],
)
def test_ask_errors_are_one_line(model_dir, fixture_dir, capsys, extra, message):
    argv = ["ask", "Q?", "--model", str(model_dir), "--image", str(fixture_dir / "images/img0.png")]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_python_api_one_liner(model_dir, fixture_dir):
    vlm = mqt_llava.load(model_dir)
    answer = vlm.ask(fixture_dir / "images/img1.png", "Describe it.", num_visual_tokens=4)
    assert isinstance(answer, str) and answer
    streamed = "".join(vlm.stream(fixture_dir / "images/img1.png", "Describe it.", 4))
    assert streamed.strip() == answer
    with pytest.raises(ValueError, match="between 1 and 256"):
        vlm.ask(fixture_dir / "images/img1.png", "Q", num_visual_tokens=1000)


def test_data_shapes_writes_the_dataset(tmp_path, capsys):
    out = tmp_path / "shapes"
    args = ["data", "shapes", "--out", str(out), "--n", "30", "--seed", "1"]
    assert main([*args, "--questions-per-scene", "5"]) == 0
    assert (out / "train.json").is_file() and (out / "captions.json").is_file()
    assert json.loads((out / "dataset_info.json").read_text())["questions_per_scene"] == 5
    assert main(["data", "shapes", "--out", str(out), "--n", "30"]) == 2  # exists, no --overwrite
    assert "overwrite" in capsys.readouterr().err


def test_score_pope_and_unknown_benchmark(tmp_path, capsys):
    questions = [
        {"question_id": i, "image": f"{i}.jpg", "text": "Is there a cat?"} for i in range(4)
    ]
    labels = ["yes", "no", "yes", "no"]
    answers = ["Yes, there is.", "No.", "no", "yes"]
    (tmp_path / "coco_pope_random.json").write_text(
        "\n".join(json.dumps({**q, "label": lab}) for q, lab in zip(questions, labels, strict=True))
    )
    (tmp_path / "answers.jsonl").write_text(
        "\n".join(
            json.dumps({"question_id": q["question_id"], "text": a})
            for q, a in zip(questions, answers, strict=True)
        )
    )
    argv = ["score", "pope", "--answers", str(tmp_path / "answers.jsonl"),
            "--annotations", str(tmp_path / "coco_pope_random.json")]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)["splits"]["random"]
    # predictions yes, no, no, yes against labels yes, no, yes, no: one of each outcome
    assert (metrics["tp"], metrics["fp"], metrics["tn"], metrics["fn"]) == (1, 1, 1, 1)
    assert metrics["accuracy"] == 50.0
    argv[1] = "nosuch"
    assert main(argv) == 2
    assert "supported" in capsys.readouterr().err
