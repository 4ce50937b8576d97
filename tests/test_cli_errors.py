"""Every subcommand refuses wrong input with one line on stderr and exit status 2, no traceback.

Checks of values (budgets, devices, ports, counts, temperatures, output paths) run while the
arguments are parsed, before any model loads.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import mqt_llava
from mqt_llava.cli import main

MODEL, IMAGE, CHECKPOINT, FILE = "<model>", "<image>", "<checkpoint>", "<file>"
CUDA = "cuda:999" if torch.cuda.is_available() else "cuda"  # a device this machine lacks
EVAL = ["eval", "--model", MODEL, "--benchmark", "gqa", "--num-visual-tokens", "2", "--out", "o"]
ASK = ["ask", "Q?", "--model", MODEL, "--image", IMAGE]
GRADCAM = ["gradcam", "--image", IMAGE, "--question", "q", "--model", MODEL, "--out", "o"]

CASES = [
    ([], "required: COMMAND"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["ask", "Q?"], "required: --image"),
    ([*ASK, "--num-visual-tokens", "2,,4"], "an empty item"),
    ([*ASK, "--num-visual-tokens", "16,16"], "16 repeated"),
    ([*ASK, "--num-visual-tokens", "a,b"], "distinct positive integers"),
    ([*ASK, "--num-visual-tokens", "0"], "budgets start at 1"),
    ([*ASK, "--num-visual-tokens", "257"], "between 1 and 256"),
    ([*ASK, "--max-new-tokens", "0"], "--max-new-tokens: expected a positive integer"),
    ([*ASK, "--temperature", "-1"], "--temperature: expected a finite number >= 0"),
    ([*ASK, "--temperature", "nan"], "--temperature: expected a finite number >= 0"),
    ([*ASK, "--device", "bogus"], "--device: expected cpu, cuda, cuda:N, mps or auto, got 'bogus'"),
    ([*ASK, "--device", CUDA], "--device: 'cuda"),
    ([*ASK, "--threads", "0"], "--threads: expected a positive number of threads or 'auto'"),
    (["ask", "Q?", "--image", IMAGE, "--model", "/nonexistent"], "not a model folder"),
    (["ask", "Q?", "--image", "/nonexistent.png", "--model", MODEL], "Image file not found"),
    (["chat", "--model", MODEL, "--device", CUDA], "--device: 'cuda"),
    (["chat", "--model", MODEL, "--device", "bogus"], "--device: expected cpu"),
    (["chat", "--model", MODEL, "--max-new-tokens", "0"], "--max-new-tokens: expected a positive"),
    (["chat", "--model", MODEL, "--temperature", "-1"], "--temperature: expected a finite"),
    (["chat", "--model", MODEL, "--num-visual-tokens", "0"], "--num-visual-tokens: expected a pos"),
    (["chat", "--model", MODEL, "--image", "/nonexistent.png"], "Image file not found"),
    (["serve", "--model", MODEL, "--port", "99999"], "--port: expected a port number between 0"),
    (["serve", "--model", MODEL, "--port", "http"], "--port: expected a port number"),
    (["serve", "--model", MODEL, "--device", "bogus"], "--device: expected cpu"),
    (["serve", "--model", MODEL, "--device", CUDA], "--device: 'cuda"),
    (["serve", "--model", MODEL, "--max-batch", "0"], "--max-batch: expected a positive integer"),
    (["serve", "--model", MODEL, "--request-timeout", "0"], "--request-timeout: expected a number"),
    (["serve", "--model", MODEL, "--image-dir", "/nonexistent"], "is not a folder"),
    (["ui", "--model", MODEL, "--port", "-1"], "--port: expected a port number"),
    (["ui", "--model", MODEL, "--device", "bogus"], "--device: expected cpu"),
    ([*EVAL, "--data", "/tmp", "--device", "bogus"], "--device: expected cpu"),
    ([*EVAL, "--data", "/tmp", "--device", CUDA], "--device: 'cuda"),
    ([*EVAL, "--data", "/nonexistent"], "--data /nonexistent: no such folder"),
    ([*EVAL, "--data", "/tmp", "--num-visual-tokens", "2,,4"], "an empty item"),
    ([*EVAL, "--data", "/tmp", "--max-new-tokens", "0"], "--max-new-tokens: expected a positive"),
    (["eval", "--benchmark", "gqa", "--data", "/tmp"], "required: --num-visual-tokens, --out"),
    ([*GRADCAM, "--device", "bogus"], "--device: expected cpu"),
    ([*GRADCAM, "--device", CUDA], "--device: 'cuda"),
    ([*GRADCAM, "--num-visual-tokens", "16,16"], "16 repeated"),
    ([*GRADCAM, "--max-new-tokens", "0"], "--max-new-tokens: expected a positive"),
    ([*GRADCAM, "--target", "bogus"], "target must be 'answer' or 'logit:ID'"),
    (["attention", "--out", "o", "--head", "-1"], "--head: expected an integer >= 0"),
    (["attention", "--out", "o", "--device", "bogus"], "--device: expected cpu"),
    (["attention", "--out", "o", "--model", "/nonexistent"], "not a model folder"),
    (["data", "shapes", "--out", FILE], "exists and is not a folder"),
    (["data", "shapes", "--out", "d", "--n", "0"], "--n: expected a positive integer"),
    (["data"], "required: DATASET"),
    (["flops", "--prompt-tokens", "-1"], "--prompt-tokens: expected an integer >= 0"),
    (["flops", "--model", "/nonexistent"], "No config.json in /nonexistent"),
    (["flops", "--budgets", "4,4"], "4 repeated"),
    (["bench", "--repeats", "0"], "--repeats: expected an integer >= 1"),
    (["bench", "--threads", "0"], "--threads: expected an integer >= 1"),
    (["bench", "--max-time-over-flop", "0.9"], "--max-time-over-flop: expected a factor >= 1"),
    (["bench", "--max-connector-share", "0"], "--max-connector-share: expected a number > 0"),
    (["score", "bogus", "--answers", "a", "--annotations", "b"], "unknown benchmark 'bogus'"),
    (["score", "vqav2", "--answers", "/nonexistent", "--annotations", "b"], "no such file"),
    (["report", "/nonexistent", "--out", "r"], "no metrics.json"),
    (["train", "/nonexistent.yaml"], "No recipe file"),
    (["train", "stage1", "--set", "nonsense"], "--set expects key=value"),
    (["train", "stage1", "--threads", "none"], "--threads: expected a positive number"),
    (["experiment", "shapes", "--variants", ","], "expected comma-separated variant names"),
    (["experiment", "shapes", "--set", "bogus=1", "--out", "e"], "unknown key(s) ['bogus']"),
    (["convert", "/nonexistent", "dst"], "Nothing to convert at /nonexistent"),
    (["convert", CHECKPOINT, "dst", "--num-visual-tokens", "0"], "between 1 and 256"),
    (["convert", CHECKPOINT, "dst", "--num-heads", "7"], "--num-heads"),
    (["convert", CHECKPOINT, "dst", "--num-heads", "0"], "--num-heads"),
    (["convert", CHECKPOINT, "dst", "--vision-tower", "/nonexistent"], "/nonexistent"),
]


@pytest.fixture(scope="module")
def places(converted_dir, fixture_dir, tmp_path_factory) -> dict[str, str]:
    file = tmp_path_factory.mktemp("cli-errors") / "a-file"
    file.write_text("not a folder")
    return {
        MODEL: str(converted_dir),
        IMAGE: str(fixture_dir / "images/img0.png"),
        CHECKPOINT: str(fixture_dir / "checkpoint"),
        FILE: str(file),
    }


def test_the_table_covers_every_subcommand():
    assert len(CASES) >= 30
    commands = {argv[0] for argv, _ in CASES if argv}
    every = "convert ask data score train eval report serve chat ui flops bench gradcam attention"
    assert commands >= {*every.split(), "experiment"}


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_wrong_invocation_is_one_line_and_exit_2(
    argv, message, places, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # relative outputs ("o", "dst", ...) land in a fresh folder
    status = main([places.get(arg, arg) for arg in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("mqt-llava: error: ") and "Traceback" not in err
    assert message in lines[0]


@pytest.mark.parametrize("module", ["mqt_llava.cli", "mqt_llava"])
def test_the_installed_command_exits_2_without_a_traceback(tmp_path, module):
    existing = tmp_path / "file.txt"
    existing.write_text("x")
    argv = [sys.executable, "-m", module, "data", "shapes", "--out", str(existing)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "exists and is not a folder" in done.stderr


def test_load_of_a_missing_folder_says_it_is_not_a_model_folder():
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        mqt_llava.load("/nonexistent")


def test_quiet_transformers_hides_only_transformers_future_warnings():
    """The model commands hide `transformers`' deprecation notices, not everyone's."""
    import warnings

    from mqt_llava import cli_args

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli_args.quiet_transformers()
        warnings.warn_explicit("ours", FutureWarning, "x.py", 1, module="mqt_llava.model")
        warnings.warn_explicit("torch's", FutureWarning, "y.py", 1, module="torch.nn")
        warnings.warn_explicit("hf's", FutureWarning, "z.py", 1, module="transformers.utils")
    assert sorted(str(w.message) for w in caught) == ["ours", "torch's"]
