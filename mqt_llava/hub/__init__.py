"""Hub ids everywhere a model is named, loading options, and publishing.

- [`resolve_model`]: a local folder or a hub id -> a folder in this library's format (a hub
  repository in the original release's layout is converted once and cached).
- [`model_kwargs`]: `dtype`, `device` / `device_map="auto"`, 8-bit and 4-bit loading.
- [`save_for_hub`] / [`write_model_card`]: folders others can load, with a model card.

Submodules are imported on use, so that the CLI's `--help` stays free of torch.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "resolve_model": "mqt_llava.hub.resolve",
    "converted_cache_dir": "mqt_llava.hub.resolve",
    "download_repo": "mqt_llava.hub.resolve",
    "LoadOptions": "mqt_llava.hub.loading",
    "model_kwargs": "mqt_llava.hub.loading",
    "parse_dtype": "mqt_llava.hub.loading",
    "model_card": "mqt_llava.hub.card",
    "write_model_card": "mqt_llava.hub.card",
    "save_for_hub": "mqt_llava.hub.card",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mqt_llava.hub' has no attribute {name!r}")
