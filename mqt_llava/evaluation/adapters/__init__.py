"""Adapters for the standard evaluation harnesses: an lmms-eval model plugin
(`mqt_llava.evaluation.adapters.lmms_eval`) and a VLMEvalKit model class
(`mqt_llava.evaluation.adapters.vlmevalkit`). Each takes the visual-token budget as a model
argument and imports its harness only when used."""
