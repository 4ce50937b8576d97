"""The Trainer path with the ShapesVQA options reproduces the former hand-written loop.

The bundled model was trained by a hand-written loop in `mqt_llava.experiments` until the
ShapesVQA stages became recipes of `mqt-llava train`. `_reference_loop` below is that loop (its
collate, shared-prefix loss, budgets, AdamW and schedule), kept here as the reference: it and
`mqt-llava train` with `data.sampling=per-step`, `lr_schedule=warmup-first-step-cosine`,
`feature_cache=float16`, `shared_prefix_loss=true` and the loop's AdamW betas draw the same
batches and budgets and take the same optimizer steps: the losses and the trained weights agree
to float rounding.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from mqt_llava.data.collator import expand_image_placeholders
from mqt_llava.data.conversation import IGNORE_INDEX, tokenize_record
from mqt_llava.data.llava_json import LlavaJsonDataset
from mqt_llava.model import MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from mqt_llava.training.config import load_recipe
from mqt_llava.training.prefix import with_prefix_cache
from mqt_llava.training.recipe import train
from mqt_llava.training.sampler import BudgetSampler
from mqt_llava.training.schedule import cosine_schedule

STEPS = 6


def _collate(samples, m: int, image_id: int, pad_id: int) -> dict[str, torch.Tensor]:
    length = max(len(s.input_ids) for s in samples)
    input_ids = torch.full((len(samples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(samples), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(samples), length), dtype=torch.long)
    for row, sample in enumerate(samples):
        n = len(sample.input_ids)
        input_ids[row, :n] = torch.tensor(sample.input_ids)
        labels[row, :n] = torch.tensor(sample.labels)
        attention_mask[row, :n] = 1
    batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
    return expand_image_placeholders(batch, m, image_id, pad_id)


def _shared_prefix(samples, image_id: int) -> int:
    first = samples[0].input_ids
    length = first.index(image_id) if image_id in first else len(first)
    for sample in samples[1:]:
        while length and sample.input_ids[:length] != first[:length]:
            length -= 1
    return length


def _reference_loop(model, processor, features, samples, images, steps, batch_size, lr, seed):
    """The former `experiments.shapes_train.train_stage` (no curriculum): per step a seeded
    draw of the batch, m from `BudgetSampler`, float16 features through the connector, the
    shared prefix once, AdamW (0.9, 0.98), clipping at 1, the warm-up-first-step cosine."""
    torch.manual_seed(seed)
    sampler = BudgetSampler("uniform-even", model.config.num_queries, seed)
    model.vision_tower.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    schedule = cosine_schedule(optimizer, steps, 0.05)
    order = random.Random(seed)
    pad_id, image_id = processor.tokenizer.pad_token_id, processor.image_token_id
    prefix = _shared_prefix(samples, image_id)
    indices = list(range(len(samples)))
    model.train()
    losses, budgets = [], []
    for step in range(steps):
        m = sampler(step)
        chosen = order.sample(indices, min(batch_size, len(indices)))
        batch = _collate([samples[i] for i in chosen], m, image_id, pad_id)
        visual = model.connector(features[[images[i] for i in chosen]].float(), m)
        tokens = visual.reshape(-1, visual.shape[-1])
        inputs = with_prefix_cache(model.language_model, dict(batch), prefix)
        loss = model(**inputs, visual_tokens=tokens).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        budgets.append(m)
        if step in (0, steps - 1):
            losses.append((step + 1, round(loss.item(), 4)))
    model.eval()
    return {"losses": losses, "budgets": budgets}


def test_trainer_path_reproduces_the_shapes_loop(tmp_path, tiny_dir, records_dir):
    records = [r for r in json.loads((records_dir / "train.json").read_text()) if "image" in r]
    data = tmp_path / "train.json"
    data.write_text(json.dumps(records))

    # the hand-written loop, on the features of the images the dataset gives
    processor = MQTLlavaProcessor.from_pretrained(tiny_dir)
    loop_model = MQTLlavaForConditionalGeneration.from_pretrained(tiny_dir)
    dataset = LlavaJsonDataset(data, processor, image_folder=records_dir / "images")
    pixels = torch.cat([dataset[i]["pixel_values"] for i in range(len(records))])
    with torch.no_grad():
        features = loop_model.get_vision_features(pixels).half()  # the float16 bank
    samples = [tokenize_record(r, processor, "llava_v1") for r in records]
    loop = _reference_loop(
        loop_model, processor, features, samples, list(range(len(records))), STEPS, 4, 2e-3, 0
    )

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
