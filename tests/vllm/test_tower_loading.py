"""The plugin loads a vision tower from the names `save_pretrained` writes, renamed or not.

transformers 5 saves DINOv2 under its checkpoint names (`attention.attention.query`) while its
modules are `attention.q_proj`; CLIP's names are the same both ways. Tiny random towers, saved
and reloaded into a differently initialised tower, must give the saved tower's outputs.
"""

from __future__ import annotations

import pytest
from vllm_models import SKIP_REASON, vllm_installed

if not vllm_installed():
    pytest.skip(SKIP_REASON, allow_module_level=True)

import torch
from safetensors.torch import load_file
from transformers import CLIPVisionConfig, CLIPVisionModel, Dinov2Config, Dinov2Model

from mqt_llava.serving.vllm.model import load_vision_tower

TOWERS = {
    "dinov2": lambda: Dinov2Model(
        Dinov2Config(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=28,
            patch_size=14, mlp_ratio=2,
        )
    ),
    "clip": lambda: CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=28, patch_size=14,
        )
    ),
}  # fmt: skip


def _saved_state(name: str, tmp_path) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    tower = TOWERS[name]().eval()
    tower.save_pretrained(tmp_path)
    return tower, load_file(tmp_path / "model.safetensors")


@pytest.mark.parametrize("name", sorted(TOWERS))
def test_a_saved_tower_loads_with_its_outputs(name, tmp_path):
    saved, state = _saved_state(name, tmp_path)
    if name == "dinov2":  # the case this guards: saved names are not the module names
        assert "encoder.layer.0.attention.attention.query.weight" in state
        assert "encoder.layer.0.attention.q_proj.weight" not in state
    torch.manual_seed(1)
    fresh = TOWERS[name]().eval()
    loaded = load_vision_tower(fresh, state)
    assert loaded == set(fresh.state_dict())
    pixels = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        expected = saved(pixels, output_hidden_states=True).hidden_states[-2]
        got = fresh(pixels, output_hidden_states=True).hidden_states[-2]
    assert torch.equal(got, expected)


@pytest.mark.parametrize("name", sorted(TOWERS))
def test_a_missing_tower_weight_is_named(name, tmp_path):
    _, state = _saved_state(name, tmp_path)
    del state[next(k for k in sorted(state) if k.endswith("mlp.fc1.weight"))]
    with pytest.raises(ValueError, match=r"lacks 1 vision tower weights \(first: vision_tower\."):
        load_vision_tower(TOWERS[name]().eval(), state)
