"""ShapesVQA questions: one builder per question type, each derived from the scene description.

Every builder lists the questions it could ask about a scene, keyed by their answer, and
picks the answer used least so far in the split (ties broken by the caller's ``rng``), so
yes/no, count and attribute answers stay balanced. A builder returns ``None`` when the scene
supports no unambiguous question of its type.

Unambiguity rules:
    * A referring expression ("the small red circle") must match exactly one object.
    * Left/right and top/bottom answers need the centre at least ``margin`` pixels from the
      image's centre line (absolute position) or from the other object's centre (relation).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from mqt_llava.data.shapes_scene import COLOURS, PLURALS, SHAPES, Scene, SceneObject

QUESTION_TYPES: tuple[str, ...] = (
    "existence",
    "colour",
    "shape",
    "count",
    "position",
    "relation",
    "fine_detail",
)


@dataclass(frozen=True)
class Question:
    """A question about a scene and its single-word answer."""

    question_type: str
    text: str
    answer: str


def position_margin(image_size: int) -> float:
    """Minimum centre offset in pixels for a left/right or top/bottom answer (10 % of the side)."""
    return image_size / 10


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _count(scene: Scene, **attributes: str) -> int:
    return sum(all(getattr(o, k) == v for k, v in attributes.items()) for o in scene.objects)


def refer(scene: Scene, obj: SceneObject) -> str | None:
    """Shortest unique noun phrase for ``obj``: "red circle", else "small red circle".

    Returns:
        The phrase without its article, or ``None`` when even size, colour and shape together
        match several objects.
    """
    if _count(scene, colour=obj.colour, shape=obj.shape) == 1:
        return f"{obj.colour} {obj.shape}"
    if _count(scene, size=obj.size, colour=obj.colour, shape=obj.shape) == 1:
        return f"{obj.size} {obj.colour} {obj.shape}"
    return None


Candidates = dict[str, list[str]]  # answer -> question texts with that answer


def _add(candidates: Candidates, answer: str, text: str) -> None:
    candidates.setdefault(answer, []).append(text)


def _pick(
    rng: random.Random, question_type: str, candidates: Candidates, used: Counter[str]
) -> Question | None:
    if not candidates:
        return None
    answers = sorted(candidates)
    fewest = min(used[a] for a in answers)
    answer = rng.choice([a for a in answers if used[a] == fewest])
    return Question(question_type, rng.choice(candidates[answer]), answer)


def _existence(rng: random.Random, scene: Scene, margin: float) -> Candidates:
    present = {(o.colour, o.shape) for o in scene.objects}
    absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
    # Hard negatives share a colour or a shape with some object, so "no" needs binding the two.
    hard = [(c, s) for c, s in absent if any(c == pc or s == ps for pc, ps in present)]
    candidates: Candidates = {}
    for answer, pairs in (("yes", sorted(present)), ("no", hard or absent)):
        for colour, shape in pairs:
            _add(candidates, answer, f"Is there {_article(colour)} {colour} {shape}?")
    return candidates


def _colour(rng: random.Random, scene: Scene, margin: float) -> Candidates:
    candidates: Candidates = {}
    for o in scene.objects:
        if o.size == "large" and _count(scene, shape=o.shape) == 1:
            _add(candidates, o.colour, f"What colour is the {o.shape}?")
    return candidates


def _shape(rng: random.Random, scene: Scene, margin: float) -> Candidates:
    candidates: Candidates = {}
    for o in scene.objects:
        if o.size == "large" and _count(scene, colour=o.colour) == 1:
            _add(candidates, o.shape, f"What shape is the {o.colour} object?")
    return candidates


def _count_question(rng: random.Random, scene: Scene, margin: float) -> Candidates:
    candidates: Candidates = {}
    _add(candidates, str(len(scene.objects)), "How many objects are there?")
    for shape in SHAPES:
        _add(candidates, str(_count(scene, shape=shape)), f"How many {PLURALS[shape]} are there?")
    for colour in COLOURS:
        _add(
            candidates,
            str(_count(scene, colour=colour)),
            f"How many {colour} objects are there?",
        )
    return candidates


def _position(rng: random.Random, scene: Scene, margin: float) -> Candidates:
    centre = (scene.image_size - 1) / 2
    candidates: Candidates = {}
    for o in scene.objects:
        ref = refer(scene, o)
        if ref is None:
            continue
        # Both option orders are asked so the answer is never "the first option".
        axes = ((o.x - centre, "left", "right", "on"), (o.y - centre, "top", "bottom", "at"))
        for offset, low, high, prep in axes:
            if abs(offset) < margin:
                continue
            first, second = (low, high) if rng.random() < 0.5 else (high, low)
            answer = low if offset < 0 else high
            _add(candidates, answer, f"Is the {ref} {prep} the {first} or the {second}?")
    return candidates


def _relation(rng: random.Random, scene: Scene, margin: float) -> Candidates:
    refs = [(o, refer(scene, o)) for o in scene.objects]
    refs = [(o, r) for o, r in refs if r is not None]
    candidates: Candidates = {}
    for a, ref_a in refs:
        for b, ref_b in refs:
            if a is b:
                continue
            axes = ((b.x - a.x, "to the left of", "to the right of"), (b.y - a.y, "above", "below"))
            for delta, before, after in axes:
                if abs(delta) < margin:
                    continue
                true, false = (before, after) if delta > 0 else (after, before)
                _add(candidates, "yes", f"Is the {ref_a} {true} the {ref_b}?")
                _add(candidates, "no", f"Is the {ref_a} {false} the {ref_b}?")
    return candidates


def _fine_detail(rng: random.Random, scene: Scene, margin: float) -> Candidates:
    candidates: Candidates = {}
    for o in scene.objects:
        if o.size != "small":
            continue
        if _count(scene, size="small", shape=o.shape) == 1:
            _add(candidates, o.colour, f"What colour is the small {o.shape}?")
        if _count(scene, size="small", colour=o.colour) == 1:
            _add(candidates, o.shape, f"What shape is the small {o.colour} object?")
    return candidates


_BUILDERS: dict[str, Callable[[random.Random, Scene, float], Candidates]] = {
    "existence": _existence,
    "colour": _colour,
    "shape": _shape,
    "count": _count_question,
    "position": _position,
    "relation": _relation,
    "fine_detail": _fine_detail,
}


def ask(
    question_type: str, rng: random.Random, scene: Scene, used_answers: Counter[str]
) -> Question | None:
    """Builds one question of a type about a scene, balancing answers.

    Args:
        question_type: One of :data:`QUESTION_TYPES`.
        rng: Source of randomness for tie-breaking and phrasing.
        scene: The scene the question is about.
        used_answers: How often each answer of this type was already used in the split; the
            least-used answer the scene supports is chosen.

    Returns:
        The question, or ``None`` when the scene supports no unambiguous one of this type.
    """
    if question_type not in _BUILDERS:
        raise ValueError(f"unknown question type {question_type!r}; expected {QUESTION_TYPES}")
    candidates = _BUILDERS[question_type](rng, scene, position_margin(scene.image_size))
    return _pick(rng, question_type, candidates, used_answers)
