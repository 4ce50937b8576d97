"""`--threads` / $MQT_LLAVA_THREADS, and the smaller fixes: stream agrees with ask, flops units
for small models, the `data shapes` summary."""

from __future__ import annotations

import json

import pytest
import torch

import mqt_llava
from mqt_llava import cli_args
from mqt_llava.cli import main
from mqt_llava.inference.pipeline import BUNDLED_MODEL_DIR

EXAMPLE = BUNDLED_MODEL_DIR.parent / "examples" / "example_large_and_small.png"
QUESTION = "What colour is the square? Answer the question using a single word or phrase."


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(cli_args.THREADS_ENV, raising=False)
    assert cli_args.resolve_threads(3) == 3
    assert cli_args.resolve_threads(None) == 1  # auto: the bundled model is small
    big = tmp_path / "big"
    big.mkdir()
    with open(big / "model.safetensors", "wb") as f:  # sparse: 600 MB of weights, no disk used
        f.truncate(600 * 2**20)
    assert cli_args.resolve_threads("auto", big) is None  # torch's default for large models
    assert cli_args.resolve_threads("auto", device="cuda") is None
    monkeypatch.setenv(cli_args.THREADS_ENV, "2")
    assert cli_args.resolve_threads(None, big) == 2
    assert cli_args.resolve_threads(5, big) == 5  # the option wins over the variable
    monkeypatch.setenv(cli_args.THREADS_ENV, "many")
    with pytest.raises(ValueError, match=r"\$MQT_LLAVA_THREADS: expected a positive number"):
        cli_args.resolve_threads(None)


def test_ask_honours_threads_option_and_variable(keep_threads, capsys, monkeypatch):
    argv = ["ask", QUESTION, "--image", str(EXAMPLE), "--num-visual-tokens", "4"]
    assert main([*argv, "--threads", "2", "--max-new-tokens", "2"]) == 0
    assert torch.get_num_threads() == 2
    monkeypatch.setenv(cli_args.THREADS_ENV, "1")
    assert main([*argv, "--max-new-tokens", "2"]) == 0
    assert torch.get_num_threads() == 1
    monkeypatch.setenv(cli_args.THREADS_ENV, "zero")
    assert main(argv) == 2
    assert "MQT_LLAVA_THREADS" in capsys.readouterr().err


def test_every_model_command_takes_threads():
    from mqt_llava.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices
    for name in ("ask", "chat", "serve", "ui", "eval", "train", "bench", "gradcam", "attention"):
        options = {s for a in sub[name]._actions for s in a.option_strings}
        assert "--threads" in options, name


def test_stream_joins_to_exactly_what_ask_returns():
    vlm = mqt_llava.load()
    for m in (1, 16, 64):
        answer = vlm.ask(EXAMPLE, QUESTION, m, max_new_tokens=6)
        pieces = list(vlm.stream(EXAMPLE, QUESTION, m, max_new_tokens=6))
        assert "".join(pieces) == answer and answer
        assert not pieces[0][:1].isspace()
    assert vlm.ask(EXAMPLE, QUESTION, 64) == "blue"


def test_flops_of_a_small_model_are_printed_in_a_readable_unit(capsys):
    assert main(["flops", "--model", str(BUNDLED_MODEL_DIR), "--budgets", "1,64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Prefill GFLOPs")
    values = [float(x) for line in lines[2:] for x in line.split()[1:5]]
    assert all(v > 0 for v in values), lines  # no 0.000 cells


def test_data_shapes_prints_a_short_summary(tmp_path, capsys):
    out = tmp_path / "shapes"
    assert main(["data", "shapes", "--out", str(out), "--n", "30", "--image-size", "32"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) <= 6 and printed[0] == f"wrote ShapesVQA to {out}"
    info = json.loads((out / "dataset_info.json").read_text())
    for split, summary in info["splits"].items():
        row = next(line for line in printed if line.split()[0] == split)
        assert f"{summary['questions']} questions" in " ".join(row.split())
        assert str(out / f"{split}.json") in row
