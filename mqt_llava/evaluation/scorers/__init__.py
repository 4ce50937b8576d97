"""Benchmark scorers: pure functions over loaded answers and annotations (no model, no torch),
each reproducing the official evaluation code, plus readers for the official files."""

from mqt_llava.evaluation.scorers._io import AnnotationFormatError, Answer, read_answers
from mqt_llava.evaluation.scorers.answer_normalization import (
    normalize_evalai_answer,
    normalize_vqa_answer,
)
from mqt_llava.evaluation.scorers.gqa import GQAQuestion, score_gqa
from mqt_llava.evaluation.scorers.mmbench import MMBenchRow, mmbench_choice, score_mmbench
from mqt_llava.evaluation.scorers.mme import MMERecord, mme_label, score_mme
from mqt_llava.evaluation.scorers.multiple_choice import (
    MMMUQuestion,
    SeedQuestion,
    parse_mmmu_choice,
    parse_mmmu_open,
    score_mmmu,
    score_seed,
)
from mqt_llava.evaluation.scorers.pope import pope_label, score_pope
from mqt_llava.evaluation.scorers.scienceqa import (
    ScienceQAProblem,
    parse_scienceqa_answer,
    score_scienceqa,
)
from mqt_llava.evaluation.scorers.vqa import (
    VQAAnnotation,
    score_textvqa,
    score_vizwiz,
    score_vqav2,
    vqa_accuracy,
)

__all__ = [
    "AnnotationFormatError",
    "Answer",
    "GQAQuestion",
    "MMBenchRow",
    "MMERecord",
    "MMMUQuestion",
    "ScienceQAProblem",
    "SeedQuestion",
    "VQAAnnotation",
    "mmbench_choice",
    "mme_label",
    "normalize_evalai_answer",
    "normalize_vqa_answer",
    "parse_mmmu_choice",
    "parse_mmmu_open",
    "parse_scienceqa_answer",
    "pope_label",
    "read_answers",
    "score_gqa",
    "score_mmbench",
    "score_mme",
    "score_mmmu",
    "score_pope",
    "score_scienceqa",
    "score_seed",
    "score_textvqa",
    "score_vizwiz",
    "score_vqav2",
    "vqa_accuracy",
]
