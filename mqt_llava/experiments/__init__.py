"""Experiments built on the library: the ShapesVQA default model and its budget study."""
