"""`mqt-llava gradcam` and `mqt-llava attention` end to end on the shared tiny model folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mqt_llava.cli import build_parser, main
from mqt_llava.data.shapes import write_example_images


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    out = tmp_path_factory.mktemp("examples")
    write_example_images(out)
    return out / "example_single_small.png"


def test_gradcam_writes_overlays_grid_arrays_and_a_summary(tiny_model_dir, image, tmp_path, capsys):
    out = tmp_path / "cam"
    argv = ["gradcam", "--model", str(tiny_model_dir), "--image", str(image), "--question",
            "What colour is the circle?", "--num-visual-tokens", "4,16", "--token", "0,3",
            "--max-new-tokens", "3", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[0].split()[:3] == ["tokens", "top", "token"]
    assert [line.split()[0] for line in printed[1:3]] == ["4", "16"]
    for m in (4, 16):
        for k in (0, 3):
            with Image.open(out / f"gradcam_m{m}_token{k}.png") as png:
                assert png.size == (224, 224) and png.mode == "RGB"
    with Image.open(out / "gradcam_grid.png") as grid:
        assert grid.width > grid.height  # 2 rows, 3 columns (image, token 0, token 3)
    arrays = np.load(out / "gradcam_maps.npz")
    assert sorted(arrays.files) == ["m16_token0", "m16_token3", "m4_token0", "m4_token3"]
    assert arrays["m4_token3"].shape == (8, 8) and arrays["m4_token3"].max() == 1.0
    summary = json.loads((out / "gradcam.json").read_text())
    assert summary["target"] == "answer" and set(summary["budgets"]) == {"4", "16"}
    assert (summary["method"], summary["baseline"]) == ("gradcam", "mean")  # the defaults
    best = summary["budgets"]["4"]["most_relevant_token"]
    relevance = summary["budgets"]["4"]["relevance"]
    assert relevance[str(best)] == max(relevance.values())


def test_gradcam_all_tokens_and_a_logit_target(tiny_model_dir, image, tmp_path, capsys):
    out = tmp_path / "cam"
    argv = ["gradcam", "--model", str(tiny_model_dir), "--image", str(image), "--question", "Q?",
            "--num-visual-tokens", "16", "--token", "all", "--target", "logit:5",
            "--method", "gradxact", "--baseline", "zero", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert len(list(out.glob("gradcam_m16_token*.png"))) == 16
    assert "grid shows tokens 0..7" in capsys.readouterr().out
    summary = json.loads((out / "gradcam.json").read_text())
    assert summary["target"] == "logit:5" and summary["budgets"]["16"]["answer"] is None
    assert (summary["method"], summary["baseline"]) == ("gradxact", "zero")


def test_attention_without_an_image(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "att"
    argv = ["attention", "--model", str(tiny_model_dir), "--num-visual-tokens", "4,16",
            "--token", "0,2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "position (the same map for every image)" in capsys.readouterr().out
    arrays = np.load(out / "attention_maps.npz")
    np.testing.assert_allclose(arrays["m4_token2"], arrays["m16_token2"])  # prefix property
    assert arrays["m4_token0"].sum() == pytest.approx(1.0, abs=1e-5)
    assert (out / "attention_grid.png").is_file() and (out / "attention_m16_token2.png").is_file()


def test_attention_with_an_image_and_a_head(tiny_model_dir, image, tmp_path):
    out = tmp_path / "att"
    argv = ["attention", "--model", str(tiny_model_dir), "--image", str(image), "--head", "1",
            "--num-visual-tokens", "8", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert np.load(out / "attention_maps.npz")["m8_token0"].shape == (8, 8)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["gradcam", "--target", "loss"], "'answer' or 'logit:ID'"),
        (["gradcam", "--token", "16"], "token 16 does not exist at a budget of 8"),
        (["gradcam", "--num-visual-tokens", "17"], "between 1 and 16"),
        (["gradcam", "--image", "/nonexistent.png"], "Image file not found"),
        (["attention", "--head", "9"], "head must be"),
        (["attention", "--token", "5", "--num-visual-tokens", "4"], "budget of 4"),
    ],
)
def test_errors_are_one_line(tiny_model_dir, image, tmp_path, capsys, argv, message):
    base = {"gradcam": ["--image", str(image), "--question", "Q?"], "attention": []}[argv[0]]
    full = [argv[0], "--model", str(tiny_model_dir), "--out", str(tmp_path / "o"), *base, *argv[1:]]
    assert main(full) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bundled_model_missing_is_a_clear_error(image, tmp_path, capsys, monkeypatch):
    from mqt_llava.inference import pipeline

    monkeypatch.setattr(pipeline, "BUNDLED_MODEL_DIR", tmp_path / "none")
    argv = ["attention", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "No bundled default model" in capsys.readouterr().err


def test_help_lists_the_commands_and_bad_token_text_is_refused(capsys):
    parser = build_parser()
    help_text = parser.format_help()
    assert "gradcam" in help_text and "attention" in help_text
    with pytest.raises(SystemExit):
        parser.parse_args(["gradcam", "--image", "x", "--question", "q", "--out", "o",
                           "--token", "first"])  # fmt: skip
    assert "expected 'all' or 0-based token indices" in capsys.readouterr().err


def test_the_command_module_is_torch_free_and_the_api_names_resolve():
    import subprocess
    import sys

    code = (
        "import sys, mqt_llava.visualization.commands; assert 'torch' not in sys.modules; "
        "import mqt_llava.visualization.grad_cam; "
        "from mqt_llava.visualization import gradcam, connector_attention; "
        "assert callable(gradcam) and callable(connector_attention)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
