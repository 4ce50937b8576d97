"""Grad-CAM of single visual tokens on a tiny random model (8x8 patch grid, M = 16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mqt_llava.data.shapes import write_example_images
from mqt_llava.visualization import gradcam, parse_target
from mqt_llava.visualization.grad_cam import Target, resolve_tokens, to_grid, token_cam

QUESTION = "What colour is the circle?"
BUDGETS = [4, 16]
TOKENS = [0, 1, 2]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    out = tmp_path_factory.mktemp("examples")
    write_example_images(out)
    return out / "example_single_small.png"


@pytest.fixture(scope="module")
def result(tiny, image):
    model, processor = tiny
    return gradcam(model, processor, image, QUESTION, BUDGETS, TOKENS, max_new_tokens=4)


def test_maps_have_the_patch_grid_shape_and_are_finite_normalised_and_not_constant(result):
    assert sorted(result.maps) == BUDGETS
    for m in BUDGETS:
        assert sorted(result[m]) == TOKENS
        for cam in result[m].values():
            assert cam.shape == (8, 8) and cam.dtype == np.float32
            assert np.isfinite(cam).all()
            assert cam.min() >= 0 and cam.max() == pytest.approx(1.0)
            assert cam.std() > 0.05  # not constant


def test_maps_differ_between_tokens_and_between_budgets(result):
    for m in BUDGETS:
        for a, b in [(0, 1), (0, 2), (1, 2)]:
            assert np.abs(result[m][a] - result[m][b]).max() > 1e-3, (m, a, b)
    for k in TOKENS:
        assert np.abs(result[4][k] - result[16][k]).max() > 1e-3, k


def test_answer_target_explains_each_budgets_greedy_answer(tiny, result, image):
    model, processor = tiny
    vlm_prompt = processor.build_prompt(QUESTION)
    for m in BUDGETS:
        inputs = processor(images=[image], text=vlm_prompt, num_visual_tokens=m)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
        expected = processor.decode(
            out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        )
        assert result.answers[m] == expected.strip()
    assert result.target == "answer" and result.method == "gradcam"


def test_answer_target_is_the_answer_tokens_logit_not_its_log_probability(tiny, image):
    # A one-token answer: `answer` must explain exactly what `logit:ID` of that token explains
    # (Grad-CAM's pre-softmax score; a log-probability would add -d logsumexp and differ).
    model, processor = tiny
    res = gradcam(model, processor, image, QUESTION, [16], [0, 5], "answer", max_new_tokens=1)
    inputs = processor(images=[image], text=processor.build_prompt(QUESTION), num_visual_tokens=16)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=1, do_sample=False)
    token_id = int(out[0, -1])
    assert token_id != processor.tokenizer.eos_token_id
    ref = gradcam(model, processor, image, QUESTION, [16], [0, 5], f"logit:{token_id}")
    for k in (0, 5):
        np.testing.assert_allclose(res.raw[16][k], ref.raw[16][k], rtol=1e-5, atol=1e-8)
        assert res.raw[16][k].max() > 0


def _reference_raw(model, processor, image, m, k, token_id, method):
    """Grad-CAM through token k by detaching every other visual token (independent of gradcam)."""
    pixels = processor.preprocess_images([image])
    ids = torch.tensor([processor.tokenize_prompt(processor.build_prompt(QUESTION), [m])])
    features = model.get_vision_features(pixels)  # (1, N, C)
    features.retain_grad()
    visual = model.connector(features, m)[0]  # (m, D)
    keep = torch.zeros(m, 1)
    keep[k] = 1
    only_k = visual.detach() + keep * (visual - visual.detach())  # gradient through row k only
    logits = model(input_ids=ids, visual_tokens=only_k).logits
    logits[0, -1, token_id].backward()
    cam = token_cam(features[0].detach(), features.grad[0], method)
    model.zero_grad(set_to_none=True)
    return to_grid(cam, (8, 8)).numpy()


@pytest.mark.parametrize("method", ["gradcam", "gradxact"])
def test_maps_equal_the_detach_all_other_tokens_definition(tiny, image, method):
    model, processor = tiny
    res = gradcam(model, processor, image, QUESTION, [16], [3, 9], "logit:42", method)
    assert res.target == "logit:42" and res.answers == {}
    for k in (3, 9):
        ref = _reference_raw(model, processor, image, 16, k, 42, method)
        np.testing.assert_allclose(res.raw[16][k], ref, rtol=1e-4, atol=1e-7)
        assert res.relevance[16][k] == pytest.approx(float(ref.sum()), rel=1e-4)


def test_the_encoder_runs_with_gradients_and_frozen_weights_are_fine(tiny, image, monkeypatch):
    model, processor = tiny
    seen = []
    original = model.get_vision_features

    def spy(pixel_values):
        features = original(pixel_values)
        seen.append((torch.is_grad_enabled(), pixel_values.requires_grad, features.requires_grad))
        return features

    monkeypatch.setattr(model, "get_vision_features", spy)
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(False)  # a frozen model still has a graph through the encoder
        res = gradcam(model, processor, image, QUESTION, [8], [0], "logit:7")
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    assert seen and all(all(s) for s in seen)
    assert res[8][0].max() == pytest.approx(1.0)
    assert all(p.grad is None for p in model.parameters())  # no gradients left on the weights


def test_gradcam_works_inside_no_grad(tiny, image):
    model, processor = tiny
    with torch.no_grad():
        res = gradcam(model, processor, image, QUESTION, 4, 0, "logit:7")
    assert res[4][0].std() > 0


def test_most_relevant_token_has_the_largest_relevance(result):
    for m in BUDGETS:
        best = result.most_relevant_token(m)
        assert result.relevance[m][best] == max(result.relevance[m].values())
        assert all(v >= 0 for v in result.relevance[m].values())


def test_all_tokens_of_each_budget(tiny, image):
    model, processor = tiny
    res = gradcam(model, processor, image, QUESTION, [2, 5], "all", "logit:3")
    assert {m: sorted(res[m]) for m in res.maps} == {2: [0, 1], 5: [0, 1, 2, 3, 4]}


def test_model_view_is_the_padded_resized_image(result):
    assert result.image.size == (32, 32) and result.image.mode == "RGB"
    array = np.asarray(result.image).astype(int)
    assert np.abs(array[2, 2] - [190, 190, 190]).max() <= 2  # the plain background
    assert array[..., 0].max() > 200 and array[..., 1].min() < 60  # the red circle is visible


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"budgets": [0]}, "between 1 and 16"),
        ({"budgets": [17]}, "between 1 and 16"),
        ({"budgets": []}, "budgets is empty"),
        ({"tokens": 4}, "does not exist at a budget of 4"),
        ({"tokens": -1}, "integers >= 0"),
        ({"tokens": "some"}, "'all'"),
        ({"target": "logit:1000"}, "outside the vocabulary"),
        ({"target": "loss"}, "'answer' or 'logit:ID'"),
        ({"method": "cam"}, "method must be one of"),
        ({"baseline": "median"}, "baseline must be one of"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
    ],
)
def test_bad_arguments_raise_clear_value_errors(tiny, image, kwargs, message):
    model, processor = tiny
    args = {"budgets": [4, 8], "tokens": 0, "target": "answer", **kwargs}
    with pytest.raises(ValueError, match=message):
        gradcam(model, processor, image, QUESTION, **args)


def test_parse_target_and_resolve_tokens():
    assert parse_target("answer") == Target("answer")
    assert parse_target("logit:319") == Target("logit", 319)
    assert str(parse_target("logit:5")) == "logit:5"
    for bad in ("logit:", "logit:-1", "logit:x", "Answer", ""):
        with pytest.raises(ValueError):
            parse_target(bad)
    assert resolve_tokens([2, 0, 2], 3) == [2, 0]
    assert resolve_tokens("all", 3) == [0, 1, 2]
    with pytest.raises(ValueError, match="empty"):
        resolve_tokens([], 3)


def test_to_grid_is_row_major_and_drops_a_cls_entry():
    values = torch.arange(7.0)
    np.testing.assert_array_equal(to_grid(values[1:], (2, 3)), [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(to_grid(values, (2, 3)), [[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match="patch grid"):
        to_grid(torch.arange(5.0), (2, 3))


def test_token_cam_definitions():
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # (N=3, C=2)
    grad = torch.tensor([[2.0, 0.0], [0.0, -4.0], [1.0, 1.0]])
    # zero baseline. Grad-CAM: w = mean grad = (1, -1); A @ w = (1, -1, 0) -> ReLU
    np.testing.assert_allclose(token_cam(features, grad, "gradcam", "zero"), [1.0, 0.0, 0.0])
    # grad x activation per patch: (2, -4, 2) -> ReLU
    np.testing.assert_allclose(token_cam(features, grad, "gradxact", "zero"), [2.0, 0.0, 2.0])
    # mean baseline (the default): A - mean A = [[1/3, -2/3], [-2/3, 1/3], [1/3, 1/3]]
    # Grad-CAM: (A - mean) @ (1, -1) = (1, -1, 0) -> ReLU (here mean A . w = 0)
    np.testing.assert_allclose(token_cam(features, grad, "gradcam"), [1.0, 0.0, 0.0], atol=1e-6)
    # grad x activation: (2/3, -4/3, 2/3) -> ReLU
    np.testing.assert_allclose(token_cam(features, grad, "gradxact"), [2 / 3, 0.0, 2 / 3])
    shifted = features + 10.0  # the mean baseline ignores a shift shared by every patch
    for method in ("gradcam", "gradxact"):
        np.testing.assert_allclose(
            token_cam(shifted, grad, method), token_cam(features, grad, method), atol=1e-5
        )
    assert not torch.allclose(
        token_cam(shifted, grad, "gradxact", "zero"), token_cam(features, grad, "gradxact", "zero")
    )
