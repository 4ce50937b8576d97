"""Broken checkpoints and destinations: each refused in one line, exit 2, nothing written.

Every case starts from the parity fixture (a checkpoint the original code wrote) and breaks one
thing; `mqt-llava convert` must refuse it before writing anything. Without these checks a missing
or misshapen language-model tensor converted with exit 0 and then loaded as random weights.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mqt_llava.cli import main

WEIGHTS = "model.safetensors"
TOWER = "model.vision_tower.vision_tower.vision_model."
QA = "model.query_abstractor."


def _config(**changes) -> Callable[[Path], None]:
    def edit(src: Path) -> None:
        config = json.loads((src / "config.json").read_text())
        config.update(changes)
        (src / "config.json").write_text(json.dumps(config))

    return edit


def _weights(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(src: Path) -> None:
        state = load_file(src / WEIGHTS)
        fn(state)
        save_file(state, src / WEIGHTS)

    return edit


def _drop(key: str) -> Callable[[Path], None]:
    return _weights(lambda s: s.pop(key))


def _set(key: str, tensor: torch.Tensor) -> Callable[[Path], None]:
    return _weights(lambda s: s.__setitem__(key, tensor))


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda src: (src / name).write_bytes(data)


def _remove(name: str) -> Callable[[Path], None]:
    return lambda src: (src / name).unlink()


def _truncate(src: Path) -> None:
    data = (src / WEIGHTS).read_bytes()
    (src / WEIGHTS).write_bytes(data[: len(data) // 2])


def _bin_instead(payload: bytes) -> Callable[[Path], None]:
    def edit(src: Path) -> None:
        (src / WEIGHTS).unlink()
        (src / "pytorch_model.bin").write_bytes(payload)

    return edit


class _Exploit:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def _split_duplicate(src: Path) -> None:
    state = load_file(src / WEIGHTS)
    save_file({"lm_head.weight": state["lm_head.weight"]}, src / "extra.safetensors")


def _index_missing_shard(src: Path) -> None:
    index = {"weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}
    (src / "model.safetensors.index.json").write_text(json.dumps(index))


def _no_copy_tower_elsewhere(name: str) -> Callable[[Path], None]:
    def edit(src: Path) -> None:
        _weights(lambda s: [s.pop(k) for k in [k for k in s if k.startswith(TOWER[:28])]])(src)
        _config(mm_vision_tower=name)(src)

    return edit


def _narrow_tower(src: Path) -> None:
    """A CLIP tower of width 32 beside the checkpoint, which keeps no copy of its own."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    _no_copy_tower_elsewhere("narrow_tower")(src)
    config = json.loads((src.parent / "vision_tower" / "config.json").read_text())
    config.update(hidden_size=32, intermediate_size=64)
    CLIPVisionModel(CLIPVisionConfig(**config)).save_pretrained(src.parent / "narrow_tower")
    shutil.copy(src.parent / "vision_tower/preprocessor_config.json", src.parent / "narrow_tower")


def _nothing(src: Path) -> None:
    pass


F32 = torch.float32
CASES = {
    # config.json
    "no config.json": (_remove("config.json"), [], "neither config.json nor query_abstractor.bin"),
    "config not JSON": (_write("config.json", b"{not json"), [], "is not valid JSON"),
    "config a list": (_write("config.json", b"[]"), [], "expected the release's 'llava_llama'"),
    "another model type": (_config(model_type="llama"), [], "expected the release's"),
    "hidden_size != D": (_config(hidden_size=128), [], "differs from the language model's"),
    "more layers": (
        _config(num_hidden_layers=3),
        [],
        "missing from the checkpoint: model.layers.2",
    ),
    "fewer layers": (_config(num_hidden_layers=1), [], "have no place in a model of this config"),
    "vocab_size": (_config(vocab_size=999), [], "misshapen: lm_head.weight is [1000, 64]"),
    "intermediate_size": (_config(intermediate_size=100), [], "misshapen"),
    "kv heads": (_config(num_key_value_heads=2), [], "k_proj.weight is [64, 64], config says [32"),
    "config value type": (_config(num_hidden_layers="two"), [], "not a valid Llama config"),
    # language-model tensors
    "missing MLP tensor": (_drop("model.layers.0.mlp.up_proj.weight"), [], "1 tensor(s) that"),
    "missing lm_head": (_drop("lm_head.weight"), [], "missing from the checkpoint: lm_head"),
    "missing embeddings": (_drop("model.embed_tokens.weight"), [], "model.embed_tokens.weight"),
    "misshapen q_proj": (
        _set("model.layers.1.self_attn.q_proj.weight", torch.zeros(63, 64)),
        [],
        "q_proj.weight is [63, 64], config says [64, 64]",
    ),
    "misshapen embeddings": (
        _set("model.embed_tokens.weight", torch.zeros(1001, 64)),
        [],
        "embed_tokens.weight is [1001, 64]",
    ),
    "unknown tensor": (
        _set("model.mm_projector.weight", torch.zeros(64, 64)),
        [],
        "no place in a model of this config: model.mm_projector.weight",
    ),
    "integer weight": (
        _set("model.norm.weight", torch.zeros(64, dtype=torch.int64)),
        [],
        "not floating point: model.norm.weight",
    ),
    # connector tensors
    "no query": (_drop(QA + "query"), [], "no 'model.query_abstractor.query' tensor"),
    "no proj": (_drop(QA + "proj"), [], "the connector is incomplete"),
    "proj output width": (_set(QA + "proj", torch.zeros(64, 32)), [], "output width D=32"),
    "proj input width": (_set(QA + "proj", torch.zeros(32, 64)), [], "must be the query width"),
    "in_proj misshapen": (
        _set(QA + "attn.in_proj_weight", torch.zeros(191, 64)),
        [],
        "the connector: 1 tensor(s) misshapen: attn.in_proj_weight",
    ),
    "pos_embed misshapen": (_set(QA + "pos_embed", torch.zeros(255, 64)), [], "pos_embed is"),
    "non-square M": (
        _weights(lambda s: s.update({QA + "query": torch.zeros(255, 64, dtype=F32)})),
        [],
        "M=255 queries, not a square number",
    ),
    "unknown connector tensor": (
        _set(QA + "extra", torch.zeros(3)),
        [],
        "the connector: 1 tensor(s) in the checkpoint have no place",
    ),
    # the vision tower
    "tower copy incomplete": (
        _drop(TOWER + "encoder.layers.1.mlp.fc1.weight"),
        [],
        "the vision tower copy: 1 missing tensor(s)",
    ),
    "tower copy misshapen": (
        _set(TOWER + "encoder.layers.0.mlp.fc1.weight", torch.zeros(127, 64)),
        [],
        "the vision tower copy",
    ),
    "tower narrower than C": (_narrow_tower, [], "width 32 differs from the connector's C=64"),
    "tower not cached": (
        _no_copy_tower_elsewhere("test-org/uncached-clip"),
        [],
        "vision tower 'test-org/uncached-clip' is not a local folder, and on the hub: not in",
    ),
    "--vision-tower /nonexistent": (
        _nothing,
        ["--vision-tower", "/nonexistent"],
        "vision tower '/nonexistent' is not a model folder",
    ),
    # weight files
    "no weights": (_remove(WEIGHTS), [], "No *.safetensors or pytorch_model*.bin weights"),
    "truncated safetensors": (_truncate, [], WEIGHTS),
    "garbage safetensors": (_write(WEIGHTS, b"\x10" * 64), [], "is not a safetensors file"),
    "index names a missing shard": (_index_missing_shard, [], "names shard(s) that are missing"),
    "tensor in two files": (_split_duplicate, [], "appears in two weight files"),
    "garbage .bin": (_bin_instead(b"not a zip file"), [], "not a readable PyTorch state dict"),
    "pickled code in .bin": (
        _bin_instead(pickle.dumps({"x": _Exploit()})),
        [],
        "not a readable PyTorch state dict",
    ),
    "no tokenizer": (_remove("tokenizer.model"), [], "no tokenizer (tokenizer.model"),
    # arguments
    "--num-heads 7": (_nothing, ["--num-heads", "7"], "--num-heads 7 does not divide"),
    "--num-heads 0": (_nothing, ["--num-heads", "0"], "--num-heads must be a positive integer"),
    "--num-heads -4": (_nothing, ["--num-heads", "-4"], "--num-heads must be a positive integer"),
    "--num-visual-tokens 300": (_nothing, ["--num-visual-tokens", "300"], "between 1 and 256"),
}


@pytest.fixture
def release(tmp_path, fixture_dir, monkeypatch) -> Path:
    from huggingface_hub import constants

    # Tower ids that are not local resolve through the hub cache: an empty one, offline.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    shutil.copytree(fixture_dir / "checkpoint", tmp_path / "release" / "checkpoint")
    shutil.copytree(fixture_dir / "vision_tower", tmp_path / "release" / "vision_tower")
    return tmp_path / "release" / "checkpoint"


def _refused(capsys, *args: str) -> str:
    capsys.readouterr()  # drop what building the broken checkpoint printed (progress bars)
    code = main(["convert", *args])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("mqt-llava: error: "), err
    assert "Traceback" not in err and not out
    return lines[0]


def test_at_least_25_broken_checkpoints():
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", list(CASES))
def test_broken_checkpoint_is_refused_and_nothing_written(release, tmp_path, capsys, name):
    breakage, args, message = CASES[name]
    breakage(release)
    before = sorted(p.name for p in tmp_path.iterdir())
    line = _refused(capsys, str(release), str(tmp_path / "out"), *args)
    assert message in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no DST, no temporary folder


def test_missing_source(tmp_path, capsys):
    assert "Nothing to convert" in _refused(capsys, str(tmp_path / "missing"), str(tmp_path / "o"))


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_destination_is_the_source(release, capsys):
    before = _tree(release)
    for dst in (release, release / "..", release / "." / ""):
        line = _refused(capsys, str(release), str(dst), "--overwrite")
        assert "DST" in line
    assert _tree(release) == before


def test_destination_inside_the_source(release, capsys):
    assert "lies inside the source" in _refused(capsys, str(release), str(release / "converted"))
    assert not (release / "converted").exists()


def test_non_empty_destination_needs_overwrite(release, tmp_path, capsys):
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "model-00001-of-00009.safetensors").write_bytes(b"stale")
    line = _refused(capsys, str(release), str(dst))
    assert "is not empty: pass --overwrite" in line
    assert _tree(dst) == {"model-00001-of-00009.safetensors": b"stale"}
    (tmp_path / "file").write_text("x")
    assert "is not a folder" in _refused(capsys, str(release), str(tmp_path / "file"))

    assert main(["convert", str(release), str(dst), "--overwrite"]) == 0
    names = {p.name for p in dst.iterdir()}
    assert "model-00001-of-00009.safetensors" not in names  # no stale shard beside the model
    assert {"config.json", WEIGHTS, "README.md"} <= names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders


def test_empty_destination_is_fine(release, tmp_path):
    (tmp_path / "out").mkdir()
    assert main(["convert", str(release), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "config.json").is_file()
