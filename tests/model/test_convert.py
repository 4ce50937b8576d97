"""`convert_checkpoint` beyond parity: stage-1 connectors, tower sources, clear errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from mqt_llava.model import MatryoshkaQueryTransformer
from mqt_llava.model.convert import convert_checkpoint, load_connector_state


def test_stage_one_query_abstractor_bin(fixture_dir, tmp_path):
    state = load_file(fixture_dir / "checkpoint/model.safetensors")
    stage1 = {k: v for k, v in state.items() if k.startswith("model.query_abstractor.")}
    torch.save(stage1, tmp_path / "query_abstractor.bin")
    report = convert_checkpoint(tmp_path / "query_abstractor.bin", tmp_path / "out", num_heads=16)
    assert report.kind == "connector" and report.num_queries == 256 and report.vision_dim == 64
    meta = json.loads((tmp_path / "out/connector_config.json").read_text())
    assert meta["num_heads"] == 16 and meta["query_grid"] == [16, 16]
    for source in (tmp_path / "out", tmp_path / "query_abstractor.bin"):
        connector = MatryoshkaQueryTransformer(256, (16, 16), (24, 24), 64, 64, 16)
        connector.load_state_dict(load_connector_state(source))
        assert torch.equal(connector.pos_embed, stage1["model.query_abstractor.pos_embed"].float())


def test_tower_from_its_folder_when_the_checkpoint_has_no_copy(
    fixture_dir, converted_dir, tmp_path
):
    src = tmp_path / "release"
    shutil.copytree(fixture_dir / "checkpoint", src / "checkpoint")
    shutil.copytree(fixture_dir / "vision_tower", src / "vision_tower")
    weights = load_file(src / "checkpoint/model.safetensors")
    from safetensors.torch import save_file

    save_file(
        {k: v for k, v in weights.items() if not k.startswith("model.vision_tower.")},
        src / "checkpoint/model.safetensors",
    )
    report = convert_checkpoint(src / "checkpoint", tmp_path / "out")
    assert report.vision_tower_source.endswith("vision_tower")
    ours = load_file(tmp_path / "out/model.safetensors")
    reference = load_file(converted_dir / "model.safetensors")
    assert ours.keys() == reference.keys()
    assert all(torch.equal(ours[k], reference[k]) for k in ours)


def test_summary_states_the_default_budget(converted_dir, fixture_dir, tmp_path):
    report = convert_checkpoint(fixture_dir / "checkpoint", tmp_path / "out", num_visual_tokens=64)
    assert "default num_visual_tokens: 64" in report.summary()
    assert "'second_stage'" in report.summary()
    assert json.loads((tmp_path / "out/config.json").read_text())["num_visual_tokens"] == 64


def test_clear_errors(tmp_path, fixture_dir):
    with pytest.raises(FileNotFoundError, match="Nothing to convert"):
        convert_checkpoint(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "other").mkdir()
    (tmp_path / "other/config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match="expected the release's 'llava_llama'"):
        convert_checkpoint(tmp_path / "other", tmp_path / "out")
    with pytest.raises(ValueError, match="between 1 and 256"):
        convert_checkpoint(fixture_dir / "checkpoint", tmp_path / "out2", num_visual_tokens=300)
