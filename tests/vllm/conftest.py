"""vLLM tests run in their own venv (`make vllm-env`, `.venv-vllm`): vLLM's CPU build pins
torch and transformers. In the main venv, where vllm is absent, every module here is skipped."""

from __future__ import annotations

import importlib.util
import os

_spec = importlib.util.find_spec("vllm")  # None, or this folder as a namespace package
if _spec is not None and _spec.origin is not None:
    # Fast, small engines on a shared CPU (measured in shared/ENV-NOTES.md, "vLLM on CPU"):
    # in-process engine cores start in seconds instead of tens of seconds.
    for key, value in {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_CI_ENV": "1",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "OMP_NUM_THREADS": "1",
    }.items():
        os.environ.setdefault(key, value)
