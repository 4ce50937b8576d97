"""Training the DINOv2 + SmolLM2 model through `mqt-llava train`, and assembling it again.

`train_pretrained` is orchestration only: it writes each stage's records from a ShapesVQA folder
and runs the two YAML recipes (`recipes/stage1.yaml`, `recipes/stage2.yaml`) through
`training.recipe.train`, the code behind `mqt-llava train`. What stage 2 keeps is its adapter
(`adapter/`: the LoRA matrices and the connector, ≈ 11 MB), not a 600 MB model:
`assemble_trained_model` rebuilds the model from the cached backbones and that adapter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..data.shapes_records import merge_by_scene, with_descriptions
from ..model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from .assemble import DINOV2_DIR, SMOLLM2_DIR, backbones_dir
from .builder import build_pretrained_model

RECIPES = Path(__file__).parent / "recipes"
STAGE_RECIPES = {"stage1": RECIPES / "stage1.yaml", "stage2": RECIPES / "stage2.yaml"}
ADAPTER_DIR = "adapter"
# A quarter of the stage-2 conversations open with "Describe the image.": SmolLM2 keeps
# answering in sentences, and the sentence names every object (a count and their places too).
DESCRIBE_FRACTION = 0.25


def write_records(data: Path, out: Path, seed: int = 0) -> dict[str, Path]:
    """Writes stage 1's caption records and stage 2's conversations for a ShapesVQA folder.

    Args:
        data: A `mqt-llava data shapes` folder (`captions.json`, `train.json`,
            `train_scenes.json`, `images/`).
        out: Where `stage1.json` and `stage2.json` go.
        seed: Which conversations get a description turn.

    Returns:
        `{"stage1": path, "stage2": path}`.
    """
    missing = [
        f for f in ("captions.json", "train.json", "train_scenes.json") if not (data / f).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"{data} is not a ShapesVQA folder (missing {', '.join(missing)}): make one with "
            f"`mqt-llava data shapes --out {data}`"
        )
    captions = json.loads((data / "captions.json").read_text())
    questions = json.loads((data / "train.json").read_text())
    scenes = json.loads((data / "train_scenes.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    conversations = with_descriptions(
        merge_by_scene(questions), captions, scenes, DESCRIBE_FRACTION, seed
    )
    paths = {"stage1": out / "stage1.json", "stage2": out / "stage2.json"}
    paths["stage1"].write_text(json.dumps(captions))
    paths["stage2"].write_text(json.dumps(conversations))
    return paths


def stage_overrides(stage: str, data: Path, records: Path, out: Path, backbones: Path) -> list[str]:
    """The `--set` items that point a stage recipe at this run's folders and backbones."""
    items = [
        f"output_dir={json.dumps(str(out / stage))}",
        f"data.train_json={json.dumps(str(records))}",
        f"data.image_folder={json.dumps(str(data))}",
        f"model_init.vision={json.dumps(str(backbones / DINOV2_DIR))}",
        f"model_init.text={json.dumps(str(backbones / SMOLLM2_DIR))}",
    ]
    if stage == "stage2":
        items.append(f"connector_init={json.dumps(str(out / 'stage1' / 'connector'))}")
    return items


def train_pretrained(
    data: Path,
    out: Path,
    backbones: Path | str | None = None,
    overrides: dict[str, Sequence[str]] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Runs stage 1 and stage 2 through `mqt-llava train`; a finished stage is kept.

    Args:
        data: The ShapesVQA folder.
        out: The run folder (`records/`, `stage1/`, `stage2/`).
        backbones: The assembled backbones (default location when `None`).
        overrides: Extra `--set` items per stage, e.g. `{"stage2": ["training.max_steps=50"]}`.
        log: Where progress lines go.

    Returns:
        Stage 2's `adapter/` folder.
    """
    from ..training.config import load_recipe
    from ..training.recipe import train

    folder = backbones_dir(backbones)
    records = write_records(data, out / "records")
    for stage in ("stage1", "stage2"):
        done = out / stage / ("connector" if stage == "stage1" else ADAPTER_DIR)
        if done.is_dir():
            log(f"{stage}: finished earlier ({done})")
            continue
        items = [
            *stage_overrides(stage, data, records[stage], out, folder),
            *(overrides or {}).get(stage, ()),
        ]
        log(
            f"{stage}: mqt-llava train {STAGE_RECIPES[stage]} "
            + " ".join(f"--set {i}" for i in items)
        )
        start = time.perf_counter()
        result = train(load_recipe(STAGE_RECIPES[stage], items))
        losses = result.losses
        log(
            f"{stage}: {result.global_step} steps in {time.perf_counter() - start:.0f} s, "
            f"loss {losses[0]:.4f} -> {losses[-1]:.4f}"
        )
    return out / "stage2" / ADAPTER_DIR


def assemble_trained_model(
    adapter: Path | str, backbones: Path | str | None = None
) -> tuple[MQTLlavaForConditionalGeneration, MQTLlavaProcessor]:
    """The trained model: the cached backbones, a fresh connector, then the adapter merged in.

    Args:
        adapter: A stage-2 `adapter/` folder (peft: `adapter_config.json`,
            `adapter_model.safetensors` with the LoRA matrices and the connector).
        backbones: The assembled backbones (default location when `None`).

    Returns:
        `(model, processor)`, a plain MQT-LLaVA (no peft wrapper), in eval mode.
    """
    from peft import PeftModel

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(
            f"{adapter} holds no adapter_config.json: give a stage-2 adapter/ folder "
            "(`mqt-llava pretrained train`)"
        )
    model, processor = build_pretrained_model(backbones)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return merged.eval(), processor
