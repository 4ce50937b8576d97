"""Peak tensor memory of a call on CPU, where PyTorch keeps no allocator statistics."""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary


class PeakTensorMemory(TorchDispatchMode):
    """Counts the bytes of tensor storages created while active; records the peak.

    Storages that exist before (weights, inputs: pass them to `ignore`) are never counted, nor are
    views and in-place results of storages already seen. A storage stops counting when it is freed
    (PyTorch keeps a storage's Python object alive as long as the storage, so a weakref finalizer
    fires exactly then). The figure is what a CUDA allocator would call "peak allocated": live
    tensor bytes, without allocator caching or fragmentation.

    Example:
        >>> with PeakTensorMemory(ignore=model.parameters()) as mem:
        ...     model(**inputs)
        >>> mem.peak_bytes
    """

    def __init__(self, ignore: Iterable[torch.Tensor] = ()):
        super().__init__()
        self.current_bytes = 0
        self.peak_bytes = 0
        self._seen = WeakIdKeyDictionary()
        for tensor in ignore:
            self._seen[tensor.untyped_storage()] = 0

    def _free(self, nbytes: int) -> None:
        self.current_bytes -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
                continue
            storage = tensor.untyped_storage()
            if storage in self._seen:
                continue
            nbytes = storage.nbytes()
            self._seen[storage] = nbytes
            weakref.finalize(storage, self._free, nbytes)
            self.current_bytes += nbytes
            self.peak_bytes = max(self.peak_bytes, self.current_bytes)
        return out
