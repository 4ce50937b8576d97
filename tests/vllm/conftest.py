"""vLLM tests run in their own venv (`make vllm-env`, `.venv-vllm`): vLLM's CPU build pins
torch and transformers. In the main venv, where vllm is absent, every module here is skipped."""

from __future__ import annotations

import os

# Fast, small and quiet engines on a shared CPU (measured in shared/ENV-NOTES.md, "vLLM on CPU").
for key, value in {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_CI_ENV": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "OMP_NUM_THREADS": "1",
    "VLLM_LOGGING_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(key, value)

SKIP_REASON = "vllm is not installed: these tests run in .venv-vllm (`make vllm-test`)"
