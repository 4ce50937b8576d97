"""ShapesVQA recipe parts: per-patch targets, multi-turn records, the connector's local start."""

from __future__ import annotations

import json

import pytest
import torch

from mqt_llava.data.conversation import tokenize_record
from mqt_llava.data.shapes_scene import Scene, SceneObject, render_scene
from mqt_llava.experiments.shapes_train import (
    STAGE_RECIPES,
    StageConfig,
    drop_suffixes,
    merge_by_scene,
    stage_overrides,
    write_stage_records,
)
from mqt_llava.experiments.shapes_vision import ATTRIBUTES, patch_loss, patch_targets
from mqt_llava.model.query_transformer import MatryoshkaQueryTransformer
from mqt_llava.training.config import load_recipe
from mqt_llava.training.local_attention import (
    init_local_attention,
    local_attention_targets,
    nested_order,
)


def _pixels(scene: Scene) -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.array(render_scene(scene))).permute(2, 0, 1).contiguous()


def test_patch_targets_follow_the_scene() -> None:
    # A 13-px red square centred at (20, 36) and a 7-px blue circle centred at (50, 9).
    square = SceneObject("square", "red", "large", 20, 36, 13)
    circle = SceneObject("circle", "blue", "small", 50, 9, 7)
    scene = Scene("t", 64, (square, circle))
    targets = patch_targets(scene.to_dict(), _pixels(scene), patch_size=4)  # (256, 6)
    assert targets.shape == (256, len(ATTRIBUTES))
    grid = targets.reshape(16, 16, -1)
    # The square covers pixels 14..26 x 30..42: patch (row 9, col 5) = pixels 36..39 x 20..23.
    assert grid[9, 5].tolist()[:3] == [1, 2, 1]  # red (1), square (2), large (1)
    assert grid[2, 12].tolist()[:3] == [6, 1, 2]  # blue (6), circle (1), small (2)
    assert grid[0, 0].tolist()[:3] == [0, 0, 0]  # background
    assert grid[..., 3].sum() == 2  # one centre patch per object
    assert grid[9, 5, 3] == 1 and grid[2, 12, 3] == 1
    assert grid[7, 3, 4:6].tolist() == [7, 3]  # row and column of the patch
    # The joint class: one per (colour, shape, size), 0 on background.
    assert grid[9, 5, 6] == 3 and grid[2, 12, 6] == 42 and grid[0, 0, 6] == 0
    # Object patches: the square's 13 x 13 = 169 px over whole or partial patches.
    on_square = (targets[:, 0] == 1).sum()
    assert 9 <= on_square <= 16


def test_patch_loss_ignores_shape_on_background() -> None:
    targets = torch.zeros(1, 4, len(ATTRIBUTES), dtype=torch.long)  # all background
    sizes = [9, 5, 3, 2, 16, 16, 57]
    logits = [torch.zeros(1, 4, n, requires_grad=True) for n in sizes]
    patch_loss(logits, targets).backward()
    assert logits[1].grad is None  # shape: object patches only, and there are none
    assert logits[0].grad.abs().sum() > 0  # colour: every patch (background is a class)


def test_merge_by_scene_makes_one_conversation_per_image(tiny) -> None:
    _, processor = tiny

    def record(scene: str, k: int, answer: str) -> dict:
        human = {"from": "human", "value": f"<image>\nQuestion {k}?"}
        return {
            "id": f"{scene}_q{k}",
            "image": f"images/{scene}.png",
            "scene_id": scene,
            "conversations": [human, {"from": "gpt", "value": answer}],
        }

    records = [record("a", 0, "red"), record("b", 0, "yes"), record("a", 1, "square")]
    merged = merge_by_scene(records)
    assert [m["id"] for m in merged] == ["a", "b"]
    turns = merged[0]["conversations"]
    assert len(turns) == 4 and "<image>" in turns[0]["value"] and "<image>" not in turns[2]["value"]
    first = tokenize_record(merged[0], processor, "llava_v1")
    assert first.input_ids.count(processor.image_token_id) == 1
    learned = processor.tokenizer.decode([t for t in first.labels if t >= 0])
    assert "red" in learned and "square" in learned and "Question" not in learned


def test_local_attention_init_attends_near_each_query() -> None:
    torch.manual_seed(0)
    connector = MatryoshkaQueryTransformer(16, (4, 4), (8, 8), 32, 24, num_heads=2)
    connector.reset_parameters()
    features = torch.randn(1, 64, 32)

    def attention() -> torch.Tensor:
        with torch.no_grad():
            return connector(features, 16, need_weights=True)[1][0]  # (heads, 16, 64)

    def entropy(weights: torch.Tensor) -> torch.Tensor:
        return -(weights * weights.clamp_min(1e-12).log()).sum(-1).mean(-1)  # (heads,)

    before = attention()
    init_local_attention(connector, steps=200)
    after = attention()
    targets = local_attention_targets((4, 4), (8, 8), [1.0, 2.0])
    assert entropy(after)[0] < entropy(before)[0] - 1.0  # head 0: local (uniform: ln 64)
    assert torch.allclose(entropy(after), entropy(targets), atol=0.25)
    peak = after[0].argmax(-1)  # the most attended patch of each query (head 0)
    rows, cols = peak // 8, peak % 8
    query_rows, query_cols = torch.arange(16) // 4, torch.arange(16) % 4
    assert torch.equal(rows // 2, query_rows) and torch.equal(cols // 2, query_cols)


def test_drop_suffixes_is_seeded_and_keeps_answers() -> None:
    suffix = "Answer the question using a single word or phrase."
    records = [
        {
            "id": str(i),
            "conversations": [
                {"from": "human", "value": f"<image>\nQ{i}? {suffix}"},
                {"from": "gpt", "value": "red"},
            ],
        }
        for i in range(200)
    ]
    dropped = drop_suffixes(records, 0.5, seed=3)
    kept = [r["conversations"][0]["value"].endswith(suffix) for r in dropped]
    assert 60 < sum(kept) < 140
    assert all(r["conversations"][0]["value"].startswith("<image>\nQ") for r in dropped)
    assert all(r["conversations"][1]["value"] == "red" for r in dropped)
    assert records[0]["conversations"][0]["value"].endswith(suffix)  # inputs untouched
    assert dropped == drop_suffixes(records, 0.5, seed=3)
    assert dropped != drop_suffixes(records, 0.5, seed=4)


def test_nested_order_spreads_every_prefix_over_the_grid() -> None:
    order = nested_order(8, 8)
    assert sorted(order) == list(range(64))
    quadrants = {(c // 8 >= 4, c % 8 >= 4) for c in order[:4]}
    assert len(quadrants) == 4  # the first four queries: one per quadrant
    blocks = {(c // 8 // 2, c % 8 // 2) for c in order[:16]}
    assert len(blocks) == 16  # the first sixteen: one per 2 x 2 block of cells


def test_nested_targets_narrow_with_query_rank() -> None:
    targets = local_attention_targets((8, 8), (16, 16), [1.0], nested=True)[0]  # (M, N)
    effective = 1 / (targets**2).sum(-1)  # patches each query effectively averages
    assert effective[0] > 90 and effective[-1] < 15
    coarse, middle, fine = effective[:4].mean(), effective[4:16].mean(), effective[16:].mean()
    assert coarse > middle > fine  # wider first, finer later (cells at the border: truncated)
    flat = local_attention_targets((8, 8), (16, 16), [1.0])[0]
    assert torch.allclose(targets[-1], flat[nested_order(8, 8)[-1]])  # the last: one cell


def _question(scene: str, kind: str) -> dict:
    return {
        "id": f"{scene}_{kind}",
        "image": f"images/{scene}.png",
        "scene_id": scene,
        "question_type": kind,
        "conversations": [
            {"from": "human", "value": f"<image>\nWhich {kind}?"},
            {"from": "gpt", "value": "red"},
        ],
    }


def test_stage_records_and_overrides_make_the_training_recipe(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    questions = [_question(s, k) for s in ("a", "b") for k in ("colour", "count", "shape")]
    (data / "train.json").write_text(json.dumps(questions))
    stage = StageConfig(
        steps=40,
        batch_size=3,
        budget="uniform-even",
        first_types=["colour", "shape"],
        first_steps=10,
        first_budget="fixed:M",
        first_multi_turn=False,
        train_language_model=False,
        seed=5,
    )
    records = write_stage_records(stage, data, tmp_path / "records")
    merged = json.loads(records["train"].read_text())
    first = json.loads(records["first"].read_text())
    assert [r["id"] for r in merged] == ["a", "b"] and len(merged[0]["conversations"]) == 6
    assert [r["question_type"] for r in first] == ["colour", "shape"] * 2  # single-turn
    overrides = stage_overrides(stage, tmp_path / "model dir", data, records, tmp_path / "out")
    config = load_recipe(STAGE_RECIPES["stage2"], overrides)
    assert config.model == str(tmp_path / "model dir") and config.connector_init is None
    assert config.train_modules == ["connector"] and config.seed == 5
    assert config.budget.policy == "uniform-even" and config.data.template == "llava_v1"
    phase = config.curriculum[0]
    assert (phase.until_step, phase.budget) == (10, "fixed:M")
    assert phase.train_json == str(records["first"])
    assert config.training["max_steps"] == 40
    assert config.training["per_device_train_batch_size"] == 3
    assert config.feature_cache == "float16" and config.shared_prefix_loss
    assert config.data.sampling == "per-step"
    assert config.lr_schedule == "warmup-first-step-cosine"


def test_a_second_curriculum_phase_follows_the_first(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    kinds = ("colour", "count", "shape", "position", "existence")
    (data / "train.json").write_text(json.dumps([_question(s, k) for s in "ab" for k in kinds]))
    stage = StageConfig(
        steps=40,
        first_types=["colour", "shape"],
        first_steps=10,
        first_budget="fixed:M",
        first_multi_turn=False,
        then_types=["colour", "shape", "position", "existence"],
        then_steps=5,
    )
    records = write_stage_records(stage, data, tmp_path / "records")
    then = json.loads(records["then"].read_text())
    assert [r["question_type"] for r in then] == ["colour", "shape", "position", "existence"] * 2
    overrides = stage_overrides(stage, tmp_path, data, records, tmp_path / "out")
    phases = load_recipe(STAGE_RECIPES["stage2"], overrides).curriculum
    assert [(p.until_step, p.budget, p.train_json) for p in phases] == [
        (10, "fixed:M", str(records["first"])),
        (15, "fixed:M", str(records["then"])),
    ]


def test_caption_stage_has_no_curriculum(tmp_path) -> None:
    captions = [{"id": "a", "image": "images/a.png", "conversations": []}]
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    stage = StageConfig(data="captions", template="plain", budget="fixed:M")
    records = write_stage_records(stage, tmp_path, tmp_path / "records")
    assert set(records) == {"train"}
    overrides = stage_overrides(stage, tmp_path, tmp_path, records, tmp_path / "out")
    config = load_recipe(STAGE_RECIPES["stage1"], overrides)
    assert config.curriculum is None and config.data.template == "plain"
    assert config.train_modules == ["connector", "language_model"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first_steps": 5, "steps": 4, "first_types": ["colour"]}, "at most steps"),
        ({"first_steps": 2, "first_types": ["colr"]}, "unknown question type"),
        ({"first_steps": 2}, "non-empty first_types"),
        ({"then_steps": 2, "then_types": ["colour"]}, "needs a first phase"),
        ({"first_steps": 2, "first_types": ["colour"], "then_steps": 2}, "and then_types"),
        ({"first_steps": 2, "first_types": ["colour"], "then_types": ["where"]}, "then_types"),
        ({"first_steps": 3, "first_types": ["colour"], "then_steps": 2, "steps": 4}, "at most"),
        ({"first_steps": -1, "first_types": ["colour"]}, ">= 0"),
        ({"first_steps": 2, "first_types": ["colour"], "data": "captions"}, "data: questions"),
        ({"reset_language_model": True, "train_language_model": False}, "stays random"),
    ],
)
def test_bad_stage_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StageConfig(**kwargs)
