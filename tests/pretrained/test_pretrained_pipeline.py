"""`mqt-llava pretrained train` runs both recipes; the adapter alone rebuilds the trained model."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from mqt_llava.cli import main as cli_main
from mqt_llava.data.shapes import generate_shapes_dataset
from mqt_llava.inference import load
from mqt_llava.pretrained.pipeline import assemble_trained_model, train_pretrained

EXAMPLE = "mqt_llava/assets/examples/example_large_and_small.png"
TINY_RUN = ["training.max_steps=1", "training.per_device_train_batch_size=1"]


@pytest.mark.slow
def test_adapter_rebuilds_the_trained_model(backbones, tmp_path):
    data = tmp_path / "data"
    generate_shapes_dataset(data, n=30, seed=2)
    adapter = train_pretrained(
        data,
        tmp_path / "run",
        backbones,
        # the merged full model too, to compare with what the adapter rebuilds
        {"stage1": TINY_RUN, "stage2": [*TINY_RUN, "export.full_model=true"]},
        log=lambda line: None,
    )
    files = {p.name: p.stat().st_size for p in adapter.iterdir()}
    assert "adapter_config.json" in files
    assert sum(files.values()) < 25e6  # what ships: LoRA matrices + connector, not the model
    rebuilt, processor = assemble_trained_model(adapter, backbones)
    trained = load(tmp_path / "run" / "stage2", device="cpu")
    inputs = processor(images=[Image.open(EXAMPLE)], text=processor.build_prompt("Colour?"))
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(**inputs).logits, trained.model(**inputs).logits)
    # a finished stage is kept: a second call trains nothing
    lines = []
    train_pretrained(data, tmp_path / "run", backbones, log=lines.append)
    assert [line.split(":")[0] for line in lines] == ["stage1", "stage2"]
    assert all("finished earlier" in line for line in lines)


def test_assemble_without_an_adapter_is_one_line(tmp_path, capsys):
    code = cli_main(["pretrained", "assemble", "--adapter", str(tmp_path), "--out", "x"])
    assert code == 2
    err = capsys.readouterr().err
    assert "holds no adapter_config.json" in err and "Traceback" not in err


@pytest.mark.parametrize("item", ["stage3.training.max_steps=1", "stage2.training"])
def test_a_set_without_its_stage_is_refused(tmp_path, capsys, item):
    args = ["pretrained", "train", "--data", str(tmp_path), "--out", str(tmp_path), "--set", item]
    assert cli_main(args) == 2
    assert "expected stage1.KEY=VALUE or stage2.KEY=VALUE" in capsys.readouterr().err
