"""The named sizes: each builds, has the size its name promises, and is the one its users build."""

from __future__ import annotations

import pytest
import torch

from mqt_llava.model import MQTLlavaConfig, MQTLlavaForConditionalGeneration
from mqt_llava.model.presets import BUNDLED_MODEL_DIR, PRESETS, preset_config
from mqt_llava.perf.commands import PRESET_NAMES


def _parameters(config: MQTLlavaConfig) -> int:
    with torch.device("meta"):  # no memory, even for 7B
        model = MQTLlavaForConditionalGeneration(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "low", "high", "queries"),
    [
        ("mqt-llava-7b", 6.9e9, 7.2e9, 256),  # Vicuna-7B + CLIP-L/14-336 + the connector
        ("bench", 1.2e8, 1.6e8, 256),  # "the 140 M benchmark model"
        ("bundled", 1e6, 5e6, 64),  # the ShapesVQA model, about 3 M
        ("tiny", 1e4, 5e5, 16),
    ],
)
def test_each_preset_has_the_size_it_names(name, low, high, queries):
    config = preset_config(name)
    assert config.num_queries == queries
    assert low < _parameters(config) < high


def test_the_7b_preset_is_the_release_shape():
    config = preset_config("mqt-llava-7b")
    assert config.feature_grid == (24, 24)  # 576 patches of CLIP ViT-L/14 at 336 px
    assert (config.text_config.hidden_size, config.text_config.num_hidden_layers) == (4096, 32)
    assert config.num_heads == 16


def test_the_bundled_preset_is_the_shipped_folder():
    assert preset_config("bundled").to_dict() == (
        MQTLlavaConfig.from_pretrained(BUNDLED_MODEL_DIR).to_dict()
    )


def test_overrides_and_refusals():
    config = preset_config("tiny", num_queries=64, key_source="content")
    assert (config.num_queries, config.num_visual_tokens, config.key_source) == (64, 64, "content")
    with pytest.raises(ValueError, match="Unknown preset 'llava-13b'; available presets: "):
        preset_config("llava-13b")
    with pytest.raises(ValueError, match="takes no overrides"):
        preset_config("bundled", num_queries=16)


def test_the_cli_offers_exactly_the_presets():
    assert tuple(PRESET_NAMES) == PRESETS
