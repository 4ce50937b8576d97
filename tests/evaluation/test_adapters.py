"""The harness adapters: lmms-eval (its real classes when installed, else a copy of its request
object) and VLMEvalKit (a copy of its BaseModel contract; VLMEvalKit is not on PyPI)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import benchmark_fixtures as fx
import pytest
import torch
from PIL import Image

import mqt_llava
from mqt_llava.evaluation.adapters import lmms_eval as lmms_adapter
from mqt_llava.evaluation.adapters import vlmevalkit as vlm_adapter

HAS_LMMS_EVAL = importlib.util.find_spec("lmms_eval") is not None
needs_lmms_eval = pytest.mark.skipif(not HAS_LMMS_EVAL, reason="lmms-eval is not installed")


@dataclass
class CopiedInstance:
    """lmms-eval's `Instance` (lmms_eval/api/instance.py, 0.7.3): what a model reads of it."""

    request_type: str
    arguments: tuple
    idx: int
    metadata: dict = field(default_factory=lambda: {"task": None, "doc_id": None, "repeats": 1})

    @property
    def args(self):
        return self.arguments if isinstance(self.arguments, tuple) else (self.arguments,)


def docs(tmp_path):
    """A toy lmms-eval task split: docs with a PIL image and a question."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    return [{"image": Image.new("RGB", (12, 9), c), "question": f"Is it colour {i}?"}
            for i, c in enumerate(colours)]  # fmt: skip


def doc_to_visual(doc):
    return [doc["image"]]


def requests(instance_class, n, gen_kwargs, request_type="generate_until", target=None):
    made = []
    for i in range(n):
        second = gen_kwargs if request_type == "generate_until" else target
        context = f"Is it colour {i}?\nAnswer the question using a single word or phrase."
        arguments = (context, second, doc_to_visual, i, "toy", "test")
        metadata = {"task": "toy", "doc_id": i, "repeats": 1}
        made.append(instance_class(request_type=request_type, arguments=arguments, idx=0,
                                   metadata=metadata))  # fmt: skip
    return made


def direct_answer(vlm, image, context, m, max_new_tokens):
    return vlm.ask(image, context, num_visual_tokens=m, max_new_tokens=max_new_tokens)


def check_generate_until(model, instance_class, tiny_model_dir, tmp_path):
    model.task_dict = {"toy": {"test": docs(tmp_path)}}
    gen = {"max_new_tokens": 5, "temperature": 0, "do_sample": False, "until": ["\n\n"]}
    got = model.generate_until(requests(instance_class, 3, gen))
    vlm = mqt_llava.load(tiny_model_dir, device="cpu")
    contexts = [r.args[0] for r in requests(instance_class, 3, gen)]
    expected = [
        direct_answer(vlm, d["image"], c, model.num_visual_tokens, 5)
        for d, c in zip(model.task_dict["toy"]["test"], contexts, strict=True)
    ]
    assert got == expected
    return expected


@needs_lmms_eval
def test_lmms_eval_registry_builds_our_model_from_model_args(tiny_model_dir, tmp_path):
    from lmms_eval.api.instance import Instance
    from lmms_eval.api.model import lmms
    from lmms_eval.models import get_model
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    lmms_adapter.register()
    cls = get_model("mqt_llava")
    assert cls is lmms_adapter.MQTLlavaLmms and issubclass(cls, lmms) and cls.is_simple
    # the entry-point route: lmms-eval calls the `manifest` payload and registers its result
    fresh = ModelRegistryV2()
    for manifest in fresh._coerce_payload_to_manifests(lmms_adapter.manifest):
        fresh.register_manifest(manifest)
    assert fresh.get_model_class("mqt_llava") is cls
    model = cls.create_from_arg_string(f"pretrained={tiny_model_dir},num_visual_tokens=4")
    assert model.num_visual_tokens == 4 and model.rank == 0 and model.world_size == 1
    expected = check_generate_until(model, Instance, tiny_model_dir, tmp_path)

    # batched, and cut at an `until` string taken from inside the first answer
    batched = cls.create_from_arg_string(
        f"pretrained={tiny_model_dir},num_visual_tokens=4,batch_size=2"
    )
    batched.task_dict = model.task_dict
    stop = expected[0][2:4]
    gen = {"max_new_tokens": 5, "temperature": 0, "until": [stop]}
    got = batched.generate_until(requests(Instance, 3, gen))
    assert len(got) == 3 and got[0] == expected[0].split(stop)[0].strip()


@needs_lmms_eval
def test_lmms_eval_loglikelihood_with_real_instances(tiny_model_dir, tmp_path):
    from lmms_eval.api.instance import Instance

    model = lmms_adapter.MQTLlavaLmms(pretrained=str(tiny_model_dir), num_visual_tokens=2)
    model.task_dict = {"toy": {"test": docs(tmp_path)}}
    request = requests(Instance, 1, None, "loglikelihood", target=" yes")[0]
    [(logprob, greedy)] = model.loglikelihood([request])
    # independently: the processor's inputs for prompt + continuation, scored by one forward
    prompt = model.processor.build_prompt(request.args[0])
    image = model.task_dict["toy"]["test"][0]["image"]
    n = len(model.processor.tokenize_prompt(prompt + " yes", [2])) - len(
        model.processor.tokenize_prompt(prompt, [2])
    )
    inputs = model.processor(images=[image], text=prompt + " yes", num_visual_tokens=2)
    with torch.no_grad():
        logits = model.model(**inputs).logits[0, -n - 1 : -1]
    target = inputs["input_ids"][0, -n:]
    expected = torch.log_softmax(logits, -1).gather(-1, target[:, None]).sum()
    assert logprob == pytest.approx(float(expected), abs=1e-4) and logprob < 0
    assert greedy == bool((logits.argmax(-1) == target).all())


def test_lmms_core_with_a_copy_of_the_request_object(tiny_model_dir, tmp_path):
    # Runs without lmms-eval: the plugin's logic against lmms-eval's documented request shape.
    model = lmms_adapter.MQTLlavaLmmsCore(pretrained=str(tiny_model_dir), num_visual_tokens="8")
    assert model.num_visual_tokens == 8  # model_args arrive as strings when not parsed
    check_generate_until(model, CopiedInstance, tiny_model_dir, tmp_path)
    model.task_dict = {"toy": {"test": [{"video": "clip.mp4"}]}}
    video = [
        CopiedInstance("generate_until", ("Q", {}, lambda d: [d["video"]], 0, "toy", "test"), 0)
    ]
    with pytest.raises(ValueError, match="video tasks are not supported"):
        model.generate_until(video)
    with pytest.raises(NotImplementedError):
        model.generate_until_multi_round([])


def test_lmms_core_rejects_bad_model_args(tiny_model_dir):
    with pytest.raises(ValueError, match="between 1 and 16"):
        lmms_adapter.MQTLlavaLmmsCore(pretrained=str(tiny_model_dir), num_visual_tokens=64)
    with pytest.raises(ValueError, match=r"unknown mqt_llava model_args \['conv_mode'\]"):
        lmms_adapter.MQTLlavaLmmsCore(pretrained=str(tiny_model_dir), conv_mode="vicuna_v1")


def test_vlmevalkit_model_answers_messages(tiny_model_dir, tmp_path):
    cls = vlm_adapter.MQTLlavaVLM
    if importlib.util.find_spec("vlmeval") is None:
        assert issubclass(cls, vlm_adapter.BaseModelShim)
    model = cls(model_path=str(tiny_model_dir), num_visual_tokens=4, max_new_tokens=5)
    image = fx.image(tmp_path / "red.png", 0)
    question = "What colour is it?\nAnswer the question using a single word or phrase."
    message = [{"type": "image", "value": str(image)}, {"type": "text", "value": question}]
    vlm = mqt_llava.load(tiny_model_dir, device="cpu")
    assert model.generate(message, dataset="MME") == direct_answer(vlm, image, question, 4, 5)
    assert model.generate(question) == model.generate([question])  # text-only forms
    with pytest.raises(ValueError, match="Invalid input type: video"):
        model.generate([{"type": "video", "value": "clip.mp4"}])
    with pytest.raises(ValueError, match="between 1 and 16"):
        cls(model_path=str(tiny_model_dir), num_visual_tokens=0)


def test_vlmevalkit_multiple_choice_prompt_is_llavas(tiny_model_dir, tmp_path):
    model = vlm_adapter.MQTLlavaVLM(model_path=str(tiny_model_dir), num_visual_tokens=2)
    row = {"question": "Which colour?", "hint": "Look closely.", "A": "red", "B": "blue",
           "C": float("nan"), "image_path": str(tmp_path / "x.jpg")}  # fmt: skip
    text = (
        "Look closely.\nWhich colour?\nA. red\nB. blue\n"
        "Answer with the option's letter from the given choices directly."
    )
    assert model.build_prompt(row, "MMBench_DEV_EN") == [
        {"type": "image", "value": str(tmp_path / "x.jpg")},
        {"type": "text", "value": text},
    ]
