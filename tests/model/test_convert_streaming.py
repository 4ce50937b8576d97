"""The streamed converter: `.bin` shards (memory-mapped, pages dropped after writing), legacy
`.bin` files, sharded output, and safetensors files the `safetensors` library reads back."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from mqt_llava.model.convert import convert_checkpoint
from mqt_llava.model.weights_io import (
    TensorEntry,
    read_safetensors_header,
    read_weight_files,
    write_sharded,
)


def _release(tmp_path, fixture_dir):
    src = tmp_path / "release" / "checkpoint"
    shutil.copytree(fixture_dir / "checkpoint", src)
    shutil.copytree(fixture_dir / "vision_tower", tmp_path / "release" / "vision_tower")
    return src, load_file(src / "model.safetensors")


def _same(folder, reference_folder):
    ours, reference = (
        load_file(folder / "model.safetensors"),
        load_file(reference_folder / "model.safetensors"),
    )
    assert ours.keys() == reference.keys()
    for key in ours:
        assert ours[key].dtype == reference[key].dtype, key
        assert torch.equal(ours[key], reference[key]), key


@pytest.mark.parametrize("layout", ["two-bin-shards", "one-legacy-bin"])
def test_bin_checkpoints_convert_to_the_same_weights(tmp_path, fixture_dir, converted_dir, layout):
    src, state = _release(tmp_path, fixture_dir)
    (src / "model.safetensors").unlink()
    if layout == "two-bin-shards":
        keys = sorted(state)
        first, second = (f"pytorch_model-0000{i}-of-00002.bin" for i in (1, 2))
        shards = {first: keys[::2], second: keys[1::2]}
        for name, names in shards.items():
            torch.save({k: state[k] for k in names}, src / name)
        weight_map = {k: name for name, names in shards.items() for k in names}
        (src / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
        assert all(e.mapped for e in read_weight_files(sorted(src.glob("*.bin"))).values())
    else:  # pre-1.6 serialization: cannot be memory-mapped, read whole (and never madvised)
        torch.save(state, src / "pytorch_model.bin", _use_new_zipfile_serialization=False)
        assert not any(e.mapped for e in read_weight_files([src / "pytorch_model.bin"]).values())
    convert_checkpoint(src, tmp_path / "out")
    _same(tmp_path / "out", converted_dir)


def test_sharded_output_round_trips(tmp_path):
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "a": torch.randn(100, 64, generator=gen),
        "b": torch.randn(3, dtype=torch.float64, generator=gen).to(torch.bfloat16),
        "c": torch.arange(10, dtype=torch.int64),
        "d": torch.randn(64, 64, generator=gen).half(),
        "e": torch.empty(0),
    }
    entries = [(k, TensorEntry(v.dtype, tuple(v.shape), tensor=v)) for k, v in tensors.items()]
    written = write_sharded(tmp_path, entries, max_shard_bytes=20_000)
    # "a" (25.6 kB) is over the limit alone and gets its own shard; the rest share the second.
    assert [p.name for p in written] == [f"model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(tensors)
    loaded = {}
    for path in written:
        loaded.update(load_file(path))  # the safetensors library reads our files
        assert read_safetensors_header(path)  # and so does our reader
    assert loaded.keys() == tensors.keys()
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)
