"""Inference on top of the model layer: load a folder, ask, stream."""

from .pipeline import Answer, MQTLlava, default_model_dir, load

__all__ = ["Answer", "MQTLlava", "default_model_dir", "load"]
