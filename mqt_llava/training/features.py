"""The frozen-tower feature cache: each training image goes through the vision tower once.

When the vision tower does not train (both stages of the release), its features for an image
are the same at every step; on a CPU the tower can cost as much as the rest of a step. With the
recipe option `feature_cache: true` (or a dtype, `float16` to halve the memory) the model's
`get_vision_features` is replaced, on this instance only, by a lookup keyed by the bytes of each
preprocessed image; misses run the real tower under `no_grad`. Preprocessing is deterministic
(no augmentation), so a hit returns exactly what the tower would compute (bit for bit in the
tower's dtype). The model's weights, its saving and loading are untouched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class FeatureCache:
    """Replaces `model.get_vision_features` by a per-image cache.

    Args:
        encode: The model's own `get_vision_features` (bound method).
        dtype: Storage dtype (`None`: the tower's output dtype, exact); lookups are cast back.
    """

    def __init__(self, encode: Callable[[torch.Tensor], torch.Tensor], dtype: torch.dtype | None):
        self.encode = encode
        self.dtype = dtype
        self.store: dict[bytes, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0
        self.out_dtype = torch.float32  # the tower's output dtype, set by the first encode

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        keys = [_key(row) for row in pixel_values]
        missing = [i for i, key in enumerate(keys) if key not in self.store]
        if missing:
            with torch.no_grad():
                fresh = self.encode(pixel_values[missing])
            self.out_dtype = fresh.dtype
            for i, features in zip(missing, fresh, strict=True):
                self.store[keys[i]] = features.to(self.dtype or fresh.dtype).clone()
        self.misses += len({keys[i] for i in missing})
        self.hits += len(keys) - len(missing)
        # Cast before stacking: under CPU autocast (`training.bf16`), stacking float16 rows fails
        # in torch's dtype promotion ("Unexpected floating ScalarType").
        device = pixel_values.device
        return torch.stack([self.store[k].to(device=device, dtype=self.out_dtype) for k in keys])


def _key(row: torch.Tensor) -> bytes:
    """A digest of one preprocessed image (its shape, dtype and values)."""
    data = row.detach().cpu().contiguous()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((tuple(data.shape), str(data.dtype))).encode())
    digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.digest()


def install_feature_cache(model: torch.nn.Module, setting: bool | str) -> FeatureCache | None:
    """Turns the cache on for `model` (an `MQTLlavaForConditionalGeneration`).

    Args:
        model: The model, before it is wrapped for training.
        setting: `False` (off), `True` (stored in the tower's dtype) or a dtype name.

    Raises:
        ValueError: If the vision tower has trainable parameters, or the dtype is unknown.
    """
    if setting is False or setting is None:
        return None
    if any(p.requires_grad for p in model.vision_tower.parameters()):
        raise ValueError(
            "feature_cache cannot apply while the vision tower trains (train_modules holds "
            "vision_tower): its features change every step. Set feature_cache=false or remove "
            "vision_tower from train_modules."
        )
    if setting is True:
        dtype = None
    elif setting in DTYPES:
        dtype = DTYPES[setting]
    else:
        raise ValueError(
            f"feature_cache must be true, false or one of {', '.join(DTYPES)}, got {setting!r}."
        )
    cache = FeatureCache(model.get_vision_features, dtype)
    model.get_vision_features = cache  # this instance only: an attribute shadows the method
    return cache
