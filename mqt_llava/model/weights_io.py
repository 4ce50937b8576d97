"""Streaming weight I/O: read one tensor at a time, write shards without holding them.

A 7B checkpoint is ~14 GB: holding it (and again as the bytes of an output shard, which is what
`safetensors.torch.save_file` builds) would need two to three times that. Here a safetensors
source is read straight from its file, tensor by tensor, and copied into the output file in
chunks; a `.bin` shard is opened with `torch.load(mmap=True)`, one shard at a time. Output files
are plain safetensors (header, then the tensors' bytes in header order), readable by the
`safetensors` library and `from_pretrained`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import mmap
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

# safetensors dtype codes <-> torch dtypes (those a checkpoint of this model can hold).
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
CODES = {dtype: code for code, dtype in DTYPES.items()}
MAX_HEADER_BYTES = 100 * 2**20  # the safetensors library's own limit
COPY_CHUNK = 64 * 2**20


@dataclass
class TensorEntry:
    """One tensor to write: where its bytes come from, and what it is.

    Exactly one source is set: `file` + `offset` (raw bytes in a safetensors file), `load`
    (a callable returning the tensor, e.g. from a memory-mapped `.bin` shard), or `tensor`.
    """

    dtype: torch.dtype
    shape: tuple[int, ...]
    file: Path | None = None
    offset: int = 0
    load: Callable[[], torch.Tensor] | None = None
    tensor: torch.Tensor | None = None
    # `tensor` lives in a file mapping (`torch.load(mmap=True)`), never in anonymous memory:
    # only then may its pages be dropped after writing (they are re-read from the file).
    mapped: bool = False

    @property
    def nbytes(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count * torch.empty((), dtype=self.dtype).element_size()


def read_safetensors_header(path: Path) -> dict[str, TensorEntry]:
    """The tensors of a safetensors file, without reading their data.

    Raises:
        ValueError: If the file is not a complete, well-formed safetensors file.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path} is not a safetensors file (shorter than its header).")
        (length,) = struct.unpack("<Q", head)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise ValueError(f"{path} is not a safetensors file (header length {length}).")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError(f"{path} is not a safetensors file (unreadable header).") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file (header is not a JSON object).")
    start = 8 + length
    entries: dict[str, TensorEntry] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            code, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"{path}: malformed header entry for {name!r}.") from None
        if code not in DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has dtype {code}, not a weight dtype.")
        entry = TensorEntry(DTYPES[code], tuple(int(s) for s in shape), path, start + int(begin))
        if end - begin != entry.nbytes or start + end > size:
            raise ValueError(
                f"{path}: tensor {name!r} does not fit its declared shape or the file is truncated."
            )
        entries[name] = entry
    return entries


def read_bin_shard(path: Path) -> dict[str, TensorEntry]:
    """The tensors of a PyTorch `.bin` shard, memory-mapped so that nothing is read yet.

    Raises:
        ValueError: If the file is not a loadable state dict (`weights_only`: no pickled code).
    """
    mapped = True
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):
            raise ValueError(f"{path} is not a readable PyTorch state dict ({err}).") from None
        # A legacy (pre-zipfile) file cannot be mapped: read it now, once (it is one shard).
        state, mapped = _load_bin(path), False
    except Exception as err:  # pickle / zip errors of a damaged or hostile file
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path} is not a readable PyTorch state dict ({message}).") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict.")
    entries = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: {name!r} is not a tensor.")
        entries[name] = TensorEntry(value.dtype, tuple(value.shape), tensor=value, mapped=mapped)
    return entries


def _load_bin(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path} is not a readable PyTorch state dict ({message}).") from None


def read_weight_files(files: Iterable[Path]) -> dict[str, TensorEntry]:
    """All tensors of a checkpoint's weight files, by name; a name twice is an error."""
    entries: dict[str, TensorEntry] = {}
    for file in files:
        shard = read_safetensors_header(file) if file.suffix == ".safetensors" else None
        if shard is None:
            shard = read_bin_shard(file)
        for name, entry in shard.items():
            if name in entries:
                raise ValueError(f"Tensor {name!r} appears in two weight files (second: {file}).")
            entries[name] = entry
    return entries


def load_tensor(entry: TensorEntry) -> torch.Tensor:
    """Materialises one entry (a copy for file sources; used for small tensors only)."""
    if entry.tensor is not None:
        return entry.tensor
    if entry.load is not None:
        return entry.load()
    with open(entry.file, "rb") as f:
        f.seek(entry.offset)
        data = bytearray(f.read(entry.nbytes))
    flat = torch.frombuffer(data, dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    return flat.view(entry.dtype).reshape(entry.shape)


def _write_entry(out, entry: TensorEntry) -> None:
    if entry.file is not None:
        with open(entry.file, "rb") as src:
            src.seek(entry.offset)
            left = entry.nbytes
            while left:
                chunk = src.read(min(COPY_CHUNK, left))
                if not chunk:
                    raise ValueError(f"{entry.file} ended early: the file is truncated.")
                out.write(chunk)
                left -= len(chunk)
        return
    tensor = load_tensor(entry).detach().cpu().contiguous()
    if tensor.numel():
        out.write(tensor.reshape(-1).view(torch.uint8).numpy().data)
    if entry.mapped:
        _drop_pages(tensor)


def _drop_pages(tensor: torch.Tensor) -> None:
    """Returns a memory-mapped tensor's pages to the kernel once written (Linux, best effort).

    The pages of a `torch.load(mmap=True)` shard are clean, private file pages: dropping them
    costs nothing (they would be read from the file again if touched) and keeps the resident
    size at one tensor instead of the whole shard while the shard is being copied.
    """
    if _LIBC is None or not tensor.numel():
        return
    start = tensor.data_ptr() // mmap.PAGESIZE * mmap.PAGESIZE
    end = tensor.data_ptr() + tensor.numel() * tensor.element_size()
    _LIBC.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), 4)  # MADV_DONTNEED


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


_LIBC = _libc()


def write_safetensors(path: Path, tensors: list[tuple[str, TensorEntry]]) -> None:
    """Writes a safetensors file, streaming each tensor's bytes from its source.

    Args:
        path: The output file.
        tensors: `(name, entry)` pairs, written in this order.
    """
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, entry in tensors:
        header[name] = {
            "dtype": CODES[entry.dtype],
            "shape": list(entry.shape),
            "data_offsets": [offset, offset + entry.nbytes],
        }
        offset += entry.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the library pads the header to 8 bytes the same way
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(blob)))
        out.write(blob)
        for _, entry in tensors:
            _write_entry(out, entry)


def write_sharded(
    folder: Path, tensors: list[tuple[str, TensorEntry]], max_shard_bytes: int = 5 * 10**9
) -> list[Path]:
    """Writes `model.safetensors`, or numbered shards and an index past `max_shard_bytes`.

    In-memory tensors of a shard are released once it is written, so a large tensor source
    (the vision tower) is not held while later shards stream.

    Returns:
        The files written.
    """
    shards: list[list[tuple[str, TensorEntry]]] = [[]]
    size = 0
    for item in tensors:
        if shards[-1] and size + item[1].nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(item)
        size += item[1].nbytes
    total = sum(entry.nbytes for _, entry in tensors)
    if len(shards) == 1:
        names = ["model.safetensors"]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    written = []
    for name, shard in zip(names, shards, strict=True):
        write_safetensors(folder / name, shard)
        written.append(folder / name)
        for _, entry in shard:  # drop references so memory held by earlier shards is freed
            entry.tensor = None
    if len(shards) > 1:
        weight_map = {
            key: name for name, shard in zip(names, shards, strict=True) for key, _ in shard
        }
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return written
