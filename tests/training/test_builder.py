"""Model construction for recipes: from parts (random or pretrained), connector init, LoRA."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import FIXTURE, TINY_TEXT, TINY_VISION, build_tiny
from transformers import TrainingArguments, set_seed

from mqt_llava.data.collator import LlavaCollator
from mqt_llava.data.llava_json import LlavaJsonDataset
from mqt_llava.training.builder import (
    build_from_parts,
    export_connector,
    init_connector,
    set_trainable,
)
from mqt_llava.training.config import LoraConfig, ModelInit, load_recipe
from mqt_llava.training.recipe import train
from mqt_llava.training.sampler import BudgetSampler
from mqt_llava.training.trainer import MQTTrainer

IMAGE_PROCESSOR = {
    "class": "CLIPImageProcessorPil",
    "size": {"shortest_edge": 32},
    "crop_size": {"height": 32, "width": 32},
}


def _scratch_spec() -> ModelInit:
    text = {k: v for k, v in TINY_TEXT["llama"].items() if k != "vocab_size"}
    return ModelInit(
        vision=dict(TINY_VISION["clip"]),
        text=text,
        tokenizer=str(FIXTURE / "checkpoint"),
        image_processor=IMAGE_PROCESSOR,
        connector={"num_queries": 16, "num_heads": 4},
    )


def test_model_from_config_dicts_like_a_from_scratch_recipe():
    model, processor = build_from_parts(_scratch_spec())
    assert model.config.text_config.vocab_size == 1000  # the tokenizer's, <image> excluded
    assert model.config.image_token_id == processor.image_token_id == 1000
    assert model.config.num_queries == processor.num_queries == 16
    trainable = set_trainable(model, ["vision_tower", "connector", "language_model"], None)
    assert all(p.requires_grad for p in trainable.vision_tower.parameters())
    frozen = set_trainable(model, ["connector"], None)
    assert not any(p.requires_grad for p in frozen.vision_tower.parameters())
    assert not any(p.requires_grad for p in frozen.language_model.parameters())
    assert all(p.requires_grad for p in frozen.connector.parameters())


def test_recipe_trains_a_vision_tower_from_scratch(tmp_path, records_dir):
    spec = _scratch_spec()
    config = load_recipe(
        _write(tmp_path, "name: scratch\n"),
        [
            f"output_dir={tmp_path / 'out'}",
            f"model_init={{vision: {dict(spec.vision)}, text: {spec.text}, "
            f"tokenizer: {spec.tokenizer}, image_processor: {IMAGE_PROCESSOR}, "
            "connector: {num_queries: 16, num_heads: 4}}",
            "train_modules=[vision_tower, connector]",
            f"data.train_json={records_dir / 'train.json'}",
            f"data.image_folder={records_dir / 'images'}",
            "training.max_steps=2",
            "training.per_device_train_batch_size=4",
            "training.disable_tqdm=true",
            "training.learning_rate=1e-2",
        ],
    )
    train(config)
    weights = load_file(tmp_path / "out" / "model.safetensors")
    set_seed(config.seed)  # as train() does: the same random initial weights
    initial, _ = build_from_parts(spec)
    before = initial.state_dict()
    key = next(k for k in weights if k.startswith("vision_tower.") and k.endswith("fc1.weight"))
    assert not torch.equal(weights[key], before[key])  # trained
    frozen = [k for k in weights if k.startswith("language_model.")]
    assert frozen and all(torch.equal(weights[k], before[k]) for k in frozen)  # same init


def _write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_model_from_pretrained_parts_keeps_their_weights(tmp_path):
    tiny, processor = build_tiny()
    tiny.vision_tower.save_pretrained(tmp_path / "vision")
    processor.image_processor.save_pretrained(tmp_path / "vision")
    tiny.language_model.save_pretrained(tmp_path / "text")
    processor.tokenizer.save_pretrained(tmp_path / "text")
    spec = ModelInit(
        vision=str(tmp_path / "vision"),
        text=str(tmp_path / "text"),
        connector={"num_queries": 16, "num_heads": 4},
    )
    model, built_processor = build_from_parts(spec)
    for part in ("vision_tower", "language_model"):
        mine, theirs = getattr(model, part).state_dict(), getattr(tiny, part).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    assert all(p.device.type == "cpu" and torch.isfinite(p).all() for p in model.parameters())
    assert built_processor.image_token_id == model.config.image_token_id


def test_connector_init_from_export_and_from_a_release_bin(tmp_path):
    source, _ = build_tiny()
    torch.manual_seed(1)
    source.connector.reset_parameters()
    state = source.connector.state_dict()
    export_connector(state, source.config, tmp_path / "export")
    release = {f"model.query_abstractor.{k}": v for k, v in state.items()}
    torch.save(release, tmp_path / "query_abstractor.bin")
    for path in (tmp_path / "export", tmp_path / "query_abstractor.bin"):
        target, _ = build_tiny()
        assert not torch.equal(target.connector.query, state["query"])
        init_connector(target, path)
        assert all(torch.equal(target.connector.state_dict()[k], v) for k, v in state.items())


def test_connector_init_refuses_another_shape(tmp_path):
    big, _ = build_tiny(num_queries=64)
    export_connector(big.connector.state_dict(), big.config, tmp_path / "big")
    small, _ = build_tiny()
    with pytest.raises(ValueError, match="does not fit"):
        init_connector(small, tmp_path / "big")


def test_lora_trains_adapters_and_the_connector_only():
    model, _ = build_tiny()
    wrapped = set_trainable(model, ["connector"], LoraConfig(r=4, alpha=8))
    trained = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert any("lora_" in n and "language_model" in n for n in trained)
    assert any("connector" in n for n in trained)
    assert not any("vision_tower" in n for n in trained)
    assert all("lora_" in n or "connector" in n for n in trained)


def test_text_only_batch_keeps_connector_in_the_graph_without_changing_the_loss(tmp_path):
    model, processor = build_tiny()
    set_trainable(model, ["connector", "language_model"], None)
    records = [
        {
            "id": "t",
            "conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Yes."}],
        }
    ]
    data = LlavaJsonDataset(records, processor)
    pad = processor.tokenizer.pad_token_id
    batch = LlavaCollator(pad, processor.image_token_id)([data[0], data[0]])
    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", remove_unused_columns=False
    )
    trainer = MQTTrainer(
        model=model,
        args=args,
        budget_sampler=BudgetSampler("fixed:4", 16),
        image_token_id=processor.image_token_id,
        pad_token_id=pad,
    )
    trainer.current_gradient_accumulation_steps = 1
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "num_skipped"}
        want = model(**inputs).loss
    loss = trainer.training_step(model, batch)
    assert loss.item() == pytest.approx(want.item(), abs=1e-6)
    assert all(p.grad is not None for p in model.connector.parameters())
