"""Prefill latency and decode speed per budget against LLaVA-1.5 (see docs/performance.md).

A thin wrapper over the library; the same as `mqt-llava bench`, with the same options:

    python benchmarks/latency.py --repeats 7 --out bench.json
"""

import sys

from mqt_llava.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
