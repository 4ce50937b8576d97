"""The Trainer path with the ShapesVQA loop's options reproduces the hand-written loop.

`mqt_llava.experiments.shapes_train.train_stage` (the loop that trains the bundled model) and
`mqt-llava train` with `data.sampling=per-step`, `lr_schedule=warmup-first-step-cosine`,
`feature_cache=float16`, `shared_prefix_loss=true` and the loop's AdamW betas draw the same
batches and budgets and take the same optimizer steps: the losses and the trained weights agree
to float rounding.
"""

from __future__ import annotations

import json

import pytest
import torch

from mqt_llava.data.llava_json import LlavaJsonDataset
from mqt_llava.experiments.shapes_train import (
    StageConfig,
    encode_features,
    tokenize_records,
    train_stage,
)
from mqt_llava.model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from mqt_llava.training.config import load_recipe
from mqt_llava.training.recipe import train

STEPS = 6


def test_trainer_path_reproduces_the_shapes_loop(tmp_path, tiny_dir, records_dir):
    records = [r for r in json.loads((records_dir / "train.json").read_text()) if "image" in r]
    data = tmp_path / "train.json"
    data.write_text(json.dumps(records))

    # the hand-written loop, on the features of the images the dataset gives
    processor = MQTLlavaProcessor.from_pretrained(tiny_dir)
    loop_model = MQTLlavaForConditionalGeneration.from_pretrained(tiny_dir)
    dataset = LlavaJsonDataset(data, processor, image_folder=records_dir / "images")
    pixels = torch.cat([dataset[i]["pixel_values"] for i in range(len(records))])
    features = encode_features(loop_model, pixels, normalize=lambda x: x)  # float16 bank
    samples = tokenize_records(
        records, processor, "llava_v1", {r["image"]: i for i, r in enumerate(records)}
    )
    stage = StageConfig(
        budget="uniform-even", steps=STEPS, batch_size=4, learning_rate=2e-3, seed=0
    )
    loop = train_stage(loop_model, processor, features, samples, stage, "loop", log=lambda _: 0)

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: loop-equivalence\n")
    result = train(
        load_recipe(
            recipe,
            [
                f"model={tiny_dir}",
                f"output_dir={tmp_path / 'trainer'}",
                "seed=0",
                "train_modules=[connector, language_model]",
                "budget.policy=uniform-even",
                f"data.train_json={data}",
                f"data.image_folder={records_dir / 'images'}",
                "data.sampling=per-step",
                "feature_cache=float16",
                "shared_prefix_loss=true",
                "lr_schedule=warmup-first-step-cosine",
                "export.connector=false",
                f"training.max_steps={STEPS}",
                "training.per_device_train_batch_size=4",
                "training.learning_rate=2e-3",
                "training.warmup_steps=0.05",
                "training.adam_beta2=0.98",
                "training.save_strategy=no",
                "training.disable_tqdm=true",
                "training.dataloader_num_workers=0",
            ],
        )
    )
    assert [m for _, m in result.budgets] == loop["budgets"]
    for step, loss in loop["losses"]:  # the loop records steps 1 and 6
        assert result.losses[step - 1] == pytest.approx(loss, abs=1e-4)  # it rounds to 4 places
    trained = MQTLlavaForConditionalGeneration.from_pretrained(tmp_path / "trainer")
    worst = max(
        float((a - b).abs().max())
        for a, b in zip(
            trained.state_dict().values(), loop_model.state_dict().values(), strict=True
        )
    )
    initial = MQTLlavaForConditionalGeneration.from_pretrained(tiny_dir)
    moved = max(
        float((a - b).abs().max())
        for a, b in zip(trained.state_dict().values(), initial.state_dict().values(), strict=True)
    )
    print(
        f"losses {result.losses}, loop {loop['losses']}; max |weights diff| {worst:.2e}, "
        f"moved {moved:.2e}"
    )
    assert moved > 1e-3 and worst < 1e-5  # trained, and trained alike
