"""Loading options: dtype, device / device_map="auto", 8-bit and 4-bit (bitsandbytes) on CPU.

bitsandbytes' multi-backend releases run 4-bit and 8-bit layers on CPUs, so the quantized paths
run here for real; the GPU-only refusals are exercised by hiding the package or its CPU backend.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

import mqt_llava
from mqt_llava.cli import main
from mqt_llava.hub.loading import model_kwargs, parse_dtype

QUESTION = "What is shown in this image?"


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("bf16", torch.bfloat16),
        ("bfloat16", torch.bfloat16),
        ("fp16", torch.float16),
        ("torch.float16", torch.float16),
        ("fp32", torch.float32),
        (torch.float32, torch.float32),
        ("auto", "auto"),
        (None, None),
    ],
)
def test_dtype_names(name, dtype):
    assert parse_dtype(name) == dtype


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtype": "int4"}, "dtype must be one of bf16, fp16, fp32 or auto"),
        ({"device": "bogus"}, "--device must be cpu, cuda, cuda:N or auto"),
        ({"load_in_8bit": True, "load_in_4bit": True}, "not both"),
    ],
)
def test_option_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        model_kwargs(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_says_so_in_one_line(converted_dir, capsys):
    code = main(
        ["ask", "Hi?", "--image", "x.png", "--model", str(converted_dir), "--device", "cuda"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "CUDA GPU" in err[0], err  # refused while parsing, before the model loads
    with pytest.raises(ValueError, match="--device cuda: this machine has no CUDA GPU"):
        model_kwargs(device="cuda")


def test_defaults_on_cpu_and_device_map_auto():
    kwargs, move_to = model_kwargs()
    if not torch.cuda.is_available():
        assert kwargs == {"dtype": torch.float32} and move_to == torch.device("cpu")
    kwargs, move_to = model_kwargs(device="auto", dtype="bf16")
    assert kwargs == {"dtype": torch.bfloat16, "device_map": "auto"} and move_to is None


def test_dtype_and_device_map_auto_load(converted_dir, manifest, fixture_dir):
    vlm = mqt_llava.load(converted_dir, dtype="bf16", device="cpu")
    assert vlm.model.dtype == torch.bfloat16
    vlm = mqt_llava.load(converted_dir, device="auto")  # accelerate's placement: all on CPU here
    # Only a CPU here: transformers places everything on it (and records no map then).
    assert set(getattr(vlm.model, "hf_device_map", {"": "cpu"}).values()) <= {"cpu", 0}
    assert vlm.model.device.type in ("cpu", "cuda")
    case = next(c for c in manifest["cases"] if c["name"] == "generate_m16_b1")
    answer = vlm.ask(fixture_dir / "images/img0.png", QUESTION, 16, max_new_tokens=8)
    assert answer == case["decoded"][0].strip()  # device_map="auto" changes nothing numerically


def _hide_bitsandbytes(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bitsandbytes" else real(name, *a),
    )


@pytest.mark.parametrize("flag", ["--load-4bit", "--load-8bit"])
def test_quantization_without_bitsandbytes_is_one_line(
    converted_dir, fixture_dir, monkeypatch, capsys, flag
):
    _hide_bitsandbytes(monkeypatch)
    image = str(fixture_dir / "images/img0.png")
    for argv in (
        ["ask", "Hi?", "--image", image, "--model", str(converted_dir), flag],
        ["chat", "--model", str(converted_dir), flag],  # the options reach every command's load
    ):
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith("mqt-llava: error: ")
        assert f"{flag} needs bitsandbytes: pip install 'mqt-llava[quant]'" in err[0]


def test_quantization_without_a_backend_for_this_device(monkeypatch):
    bnb = pytest.importorskip("bitsandbytes")
    monkeypatch.setattr(bnb, "supported_torch_devices", {"cuda"})  # a CUDA-only build
    with pytest.raises(ValueError, match=r"--load-4bit: bitsandbytes .* cannot run on cpu here"):
        model_kwargs(device="cpu", load_in_4bit=True)


@pytest.mark.parametrize("bits", [4, 8])
def test_quantized_load_keeps_tower_connector_and_head(converted_dir, fixture_dir, bits):
    bnb = pytest.importorskip("bitsandbytes")
    flag = {f"load_in_{bits}bit": True}
    vlm = mqt_llava.load(converted_dir, device="cpu", **flag)
    layer = vlm.model.language_model.model.layers[0]
    quantized = bnb.nn.Linear4bit if bits == 4 else bnb.nn.Linear8bitLt
    assert isinstance(layer.mlp.up_proj, quantized)
    assert isinstance(layer.self_attn.q_proj, quantized)
    for name, module in vlm.model.named_modules():
        if name.startswith(("vision_tower", "connector", "language_model.lm_head")):
            assert not isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)), name
    assert all(p.dtype == torch.float32 for p in vlm.model.connector.parameters())
    answer = vlm.ask(fixture_dir / "images/img0.png", QUESTION, 16, max_new_tokens=4)
    assert isinstance(answer, str) and answer
