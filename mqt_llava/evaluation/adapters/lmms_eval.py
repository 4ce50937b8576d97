"""An lmms-eval model plugin: run lmms-eval's tasks on MQT-LLaVA at a chosen budget.

lmms-eval is imported only when the model class is first used, so ``mqt_llava`` works without
it. Three ways to make lmms-eval find the model (name ``mqt_llava``):

- Python entry point (lmms-eval >= 0.7): in the installing project's ``pyproject.toml``,
  ``[project.entry-points."lmms_eval.models"] mqt_llava =
  "mqt_llava.evaluation.adapters.lmms_eval:manifest"``;
- at run time, before `lmms_eval.evaluator.simple_evaluate`: `register()`;
- then ``python -m lmms_eval --model mqt_llava --model_args
  pretrained=DIR,num_visual_tokens=16 --tasks mme,pope --batch_size 8``.

The model implements the "simple" interface: each request's ``args`` is ``(context,
generation_kwargs, doc_to_visual, doc_id, task, split)`` for ``generate_until`` and ``(context,
continuation or doc_to_target, doc_to_visual, doc_id, task, split)`` for ``loglikelihood``; the
images come from ``doc_to_visual(self.task_dict[task][split][doc_id])``.
"""

from __future__ import annotations

from typing import Any

MODEL_NAME = "mqt_llava"
CLASS_PATH = f"{__name__}.MQTLlavaLmms"
_DEFAULT_MAX_NEW_TOKENS = 128


class MQTLlavaLmmsCore:
    """The model side of the lmms-eval plugin, free of lmms-eval imports.

    `MQTLlavaLmms` (built lazily) combines it with lmms-eval's ``lmms`` base class.

    Args:
        pretrained: Model folder (None: the bundled default model).
        num_visual_tokens: The budget m for every image (default: the model's default budget).
        device: cpu, cuda, ... (default: cuda if available).
        batch_size: Requests answered together by ``generate_until``.
        template: Chat template wrapping each context ("llava_v1", the release's).
    """

    is_simple = True

    def __init__(
        self,
        pretrained: str | None = None,
        num_visual_tokens: int | str | None = None,
        device: str | None = None,
        batch_size: int | str = 1,
        template: str = "llava_v1",
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if kwargs:
            raise ValueError(
                f"unknown mqt_llava model_args {sorted(kwargs)}; accepted: pretrained, "
                "num_visual_tokens, device, batch_size, template"
            )
        from mqt_llava.inference import load
        from mqt_llava.model import check_num_visual_tokens

        vlm = load(pretrained, device=device)
        self.model, self.processor, self.template = vlm.model, vlm.processor, template
        budget = num_visual_tokens
        if budget is None:
            budget = vlm.model.config.num_visual_tokens
        if isinstance(budget, str) and budget.strip().isdigit():
            budget = int(budget)
        self.num_visual_tokens = check_num_visual_tokens(budget, vlm.model.config.num_queries)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.task_dict: dict = getattr(self, "task_dict", {})

    # -- request plumbing ------------------------------------------------------------------------
    def _doc(self, task: str, split: str, doc_id: int) -> Any:
        return self.task_dict[task][split][doc_id]

    def _visuals(self, doc_to_visual, task: str, split: str, doc_id: int) -> list:
        if doc_to_visual is None:
            return []
        visuals = doc_to_visual(self._doc(task, split, doc_id)) or []
        flat = []
        for visual in visuals if isinstance(visuals, (list, tuple)) else [visuals]:
            flat.extend(visual if isinstance(visual, (list, tuple)) else [visual])
        if any(isinstance(v, str) for v in flat):
            raise ValueError("mqt_llava answers about images; video tasks are not supported")
        return [v for v in flat if v is not None]

    def _prompt(self, context: str, num_images: int) -> str:
        # The release places each image before the question: "<image>\n{question}".
        text = context.replace(self.processor.image_token, "").strip()
        return self.processor.build_prompt(text, num_images=num_images, template=self.template)

    # -- lmms interface --------------------------------------------------------------------------
    def generate_until(self, requests) -> list[str]:
        """Greedy (or sampled, if asked) answers, cut at the first ``until`` string."""
        from mqt_llava.inference.generation import encode_images, generate_answers

        answers: list[str] = [""] * len(requests)
        order = list(range(len(requests)))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            # One batch per generation setting: split the chunk where the kwargs change.
            groups: list[list[int]] = []
            for i in chunk:
                if groups and requests[groups[-1][0]].args[1] == requests[i].args[1]:
                    groups[-1].append(i)
                else:
                    groups.append([i])
            for group in groups:
                prompts, images = [], []
                for i in group:
                    context, _, doc_to_visual, doc_id, task, split = requests[i].args
                    visuals = self._visuals(doc_to_visual, task, split, doc_id)
                    images.extend(visuals)
                    prompts.append(self._prompt(context, len(visuals)))
                kwargs = dict(requests[group[0]].args[1] or {})
                until = kwargs.get("until") or []
                until = [until] if isinstance(until, str) else list(until)
                features = (
                    encode_images(self.model, self.processor, images, self.num_visual_tokens)
                    if images
                    else None
                )
                texts = generate_answers(
                    self.model,
                    self.processor,
                    prompts,
                    features,
                    self.num_visual_tokens,
                    int(kwargs.get("max_new_tokens") or _DEFAULT_MAX_NEW_TOKENS),
                    # As LLaVA's own lmms-eval model: sampling iff temperature > 0.
                    temperature=float(kwargs.get("temperature") or 0.0),
                    top_p=kwargs.get("top_p"),
                )
                for i, text in zip(group, texts, strict=True):
                    for stop in until:
                        if stop:
                            text = text.split(stop)[0]
                    answers[i] = text.strip()
        return answers

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        """Log-probability of each continuation after the templated context, and whether
        greedy decoding would produce it."""
        import torch

        from mqt_llava.inference.generation import encode_images

        results = []
        for request in requests:
            context, target, doc_to_visual, doc_id, task, split = request.args
            if callable(target):
                target = target(self._doc(task, split, doc_id))
            visuals = self._visuals(doc_to_visual, task, split, doc_id)
            prompt = self._prompt(context, len(visuals))
            budgets = [self.num_visual_tokens] * len(visuals)
            prompt_ids = self.processor.tokenize_prompt(prompt, budgets)
            full_ids = self.processor.tokenize_prompt(prompt + str(target), budgets)
            n_target = len(full_ids) - len(prompt_ids)
            if n_target < 1:
                raise ValueError(f"the continuation {target!r} adds no token to the context")
            kwargs = {"input_ids": torch.tensor([full_ids], device=self.model.device)}
            if visuals:
                tokens = encode_images(self.model, self.processor, visuals, self.num_visual_tokens)
                kwargs["visual_tokens"] = tokens.reshape(-1, tokens.shape[-1])
            with torch.inference_mode():
                logits = self.model(**kwargs).logits[0, -n_target - 1 : -1].float()  # (T, V)
            wanted = kwargs["input_ids"][0, -n_target:]  # (T,)
            logprobs = torch.log_softmax(logits, dim=-1)
            total = float(logprobs.gather(-1, wanted[:, None]).sum())
            results.append((total, bool((logits.argmax(-1) == wanted).all())))
        return results

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("mqt_llava answers single-turn requests only")


def manifest():
    """The lmms-eval model manifest (target of the ``lmms_eval.models`` entry point)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_NAME, simple_class_path=CLASS_PATH)


def register() -> None:
    """Registers ``mqt_llava`` with an installed lmms-eval, for runs started from Python."""
    from lmms_eval.models import MODEL_REGISTRY_V2

    MODEL_REGISTRY_V2.register_manifest(manifest(), overwrite=True)


_CLASS: type | None = None


def __getattr__(name: str) -> Any:
    # The class derives from lmms-eval's `lmms`, so it is built on first access only.
    global _CLASS
    if name != "MQTLlavaLmms":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _CLASS is None:
        from lmms_eval.api.model import lmms

        class MQTLlavaLmms(MQTLlavaLmmsCore, lmms):
            __doc__ = MQTLlavaLmmsCore.__doc__

        MQTLlavaLmms.__qualname__ = "MQTLlavaLmms"
        _CLASS = MQTLlavaLmms
    return _CLASS
