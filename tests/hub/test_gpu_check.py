"""`scripts/gpu_check.py` end to end at a tiny shape on CPU: what can be checked without a GPU.

The 7B run itself needs a GPU; here the same code builds both models, shares the backbones,
times every variant, counts FLOPs and writes the JSON and Markdown report.
"""

from __future__ import annotations

import json

import pytest
from script_loader import load_script


@pytest.fixture(scope="module")
def gpu_check():
    return load_script("gpu_check")


def test_the_7b_preset_is_the_release_shape(gpu_check):
    config = gpu_check.preset("7b")
    assert config.text_config.num_hidden_layers == 32 and config.text_config.hidden_size == 4096
    assert config.vision_config.hidden_size == 1024 and config.vision_config.image_size == 336
    assert config.num_queries == 256


def test_the_stock_llava_shares_our_backbones(gpu_check):
    import torch

    ours, stock = gpu_check.build(gpu_check.preset("tiny"), torch.device("cpu"), torch.float32)
    assert stock.model.vision_tower is ours.vision_tower
    assert stock.model.language_model is ours.language_model.get_decoder()
    assert stock.lm_head is ours.language_model.get_output_embeddings()
    assert stock.config.image_seq_length == 576


@pytest.mark.slow
def test_tiny_run_on_cpu_writes_the_report(gpu_check, tmp_path):
    argv = ["--preset", "tiny", "--device", "cpu", "--dtype", "float32", "--repeats", "1",
            "--warmup", "0", "--batch", "2", "--decode-tokens", "2"]  # fmt: skip
    argv += ["--out", str(tmp_path)]
    gpu_check.main(argv)
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [r["variant"] for r in result["rows"]] == ["m=1", "m=16", "m=64", "m=256", "llava-576"]
    assert [r["variant"] for r in result["batch"]] == ["m=16", "m=256", "llava-576"]
    for row in result["rows"]:
        assert row["prefill_ms"] > 0 and row["decode_ms_per_token"] > 0
    flop_ratios = [r["flop_ratio"] for r in result["rows"]]
    assert flop_ratios[-1] == 1.0 and all(r > 1 for r in flop_ratios[:-1])
    assert flop_ratios == sorted(flop_ratios, reverse=True)  # fewer tokens, fewer FLOPs
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| llava-576 | 576 |" in table and "answers/s" in table


def test_cuda_without_a_gpu_is_refused(gpu_check, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no CUDA GPU here" in capsys.readouterr().err
