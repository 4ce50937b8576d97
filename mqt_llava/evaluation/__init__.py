"""Evaluation: benchmark scorers (pure functions, no model import) and the `score` entry point."""

from mqt_llava.evaluation.score import SCORERS, score
from mqt_llava.evaluation.scorers import AnnotationFormatError

__all__ = ["SCORERS", "AnnotationFormatError", "score"]
