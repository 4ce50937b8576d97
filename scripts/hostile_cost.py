"""The cost of each hostile request of tests/serving/test_hostile_requests.py: time and memory.

Runs the suite's cases (refused ones and hostile-but-valid ones) against a real server in this
process, with the tiny test model, and prints per case the status, the wall time and the peak
memory above the RSS at its start (the peak is reset through /proc/self/clear_refs), each case
followed by a valid request. Exit status 1 if any case was answered 5xx, took 5 s or more, or
cost 200 MB or more, or a valid request after it failed.

    python scripts/hostile_cost.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "serving")]


def main() -> int:
    import test_hostile_requests as suite
    import torch
    from tiny_models import build_tiny

    import mqt_llava
    from mqt_llava.serving.image_sources import ImagePolicy

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir, images, outside = root / "model", root / "images", root / "outside"
        model, processor = build_tiny()
        model.save_pretrained(model_dir)
        processor.save_pretrained(model_dir)
        images.mkdir()
        outside.mkdir()
        (images / "ok.png").write_bytes(suite.png_bytes())
        (outside / "secret.png").write_bytes(suite.png_bytes(seed=1))
        (images / "link.png").symlink_to(outside / "secret.png")
        vlm = mqt_llava.load(model_dir, device="cpu")
        policy = ImagePolicy(allowed_hosts=frozenset({"images.allowed.test"}), image_dir=images)
        cases = [(name, raw, headers) for name, raw, headers, *_ in suite.ALL_CASES]
        cases += [(name, suite.encoded(payload), suite.ACCEPTED_HEADERS.get(name, {}))
                  for name, payload in suite.ACCEPTED]  # fmt: skip
        worst_s = worst_mb = 0.0
        bad = []
        with suite.running_server(vlm, api_key=suite.KEY, limits=suite.LIMITS, images=policy) as s:
            suite.post(s, suite.encoded(suite.TEXT_BODY), {})  # warm-up
            print(f"{'case':<42} {'status':>6} {'ms':>7} {'peak MB':>8} {'then valid':>10}")
            for name, raw, headers in cases:
                with suite.Cost() as cost:
                    status = suite.post(s, raw, headers).status_code
                after = suite.post(s, suite.encoded(suite.TEXT_BODY), {}).status_code
                print(f"{name:<42} {status:>6} {cost.seconds * 1000:>7.1f} "
                      f"{cost.peak_mb:>8.1f} {after:>10}")  # fmt: skip
                worst_s, worst_mb = max(worst_s, cost.seconds), max(worst_mb, cost.peak_mb)
                if status >= 500 or cost.seconds >= 5 or cost.peak_mb >= 200 or after != 200:
                    bad.append(name)
        print(
            f"{len(cases)} cases; slowest {worst_s * 1000:.0f} ms, largest peak "
            f"{worst_mb:.1f} MB; torch threads 1; bad: {bad or 'none'}"
        )
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
