"""`scripts/probe_tower_features.py` on the real DINOv2 tower: its probes find what the tower
encodes at each object, and nothing in shuffled labels.

The patch read for each object must be the one under its centre: a colour is linear in the
embeddings only there, and a shape appears only in the layers' features there. Measured on 60
scenes, the right patch gave colour 0.95 at the embeddings and shape 0.95 at layer 11; with the
scenes' x and y swapped (a wrong patch), 0.32 and 0.41. The full run's figures (1000 scenes) are
in docs/pretrained.md; here 40 scenes keep it to seconds, where colour at layer 11 is too noisy
to test (0.63 on 27 held-out objects, 0.80 on 60 scenes).
"""

from __future__ import annotations

import pytest
import torch
from script_loader import load_script

from mqt_llava.data.shapes import generate_shapes_dataset
from mqt_llava.pretrained.assemble import DINOV2_DIR

probe_script = load_script("probe_tower_features")
SCENES = 40


@pytest.fixture(scope="module")
def features(backbones, tmp_path_factory):
    data = tmp_path_factory.mktemp("shapes")
    generate_shapes_dataset(data, n=3 * SCENES, seed=0)
    return probe_script.object_features(backbones / DINOV2_DIR, data, SCENES)


@pytest.mark.slow
def test_features_are_one_row_per_object_and_hidden_state(features):
    x, y_colour, y_shape, colours, shapes = features
    assert x.shape[1:] == (13, 384)  # the embeddings and 12 layers of ViT-S/14
    assert len(x) == len(y_colour) == len(y_shape) > 2 * SCENES  # two to five objects a scene
    assert set(shapes) == {"circle", "square", "triangle", "cross"} and len(colours) == 7


@pytest.mark.slow
def test_colour_is_in_the_embeddings_and_shape_in_the_layer_the_connector_reads(features):
    x, y_colour, y_shape, colours, shapes = features
    assert probe_script.probe(x[:, 0], y_colour, len(colours)) >= 0.8  # chance 0.14
    assert probe_script.probe(x[:, 11], y_shape, len(shapes)) >= 0.8  # chance 0.25
    # vision_feature_layer -2 of 13 hidden states; the embeddings alone do not tell the shape
    assert probe_script.probe(x[:, 0], y_shape, len(shapes)) <= 0.5


@pytest.mark.slow
def test_shuffled_labels_stay_near_chance(features):
    x, y_colour, _, colours, _ = features
    shuffled = y_colour[torch.randperm(len(y_colour), generator=torch.Generator().manual_seed(0))]
    assert probe_script.probe(x[:, 11], shuffled, len(colours)) <= 0.4
