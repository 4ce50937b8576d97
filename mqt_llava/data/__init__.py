"""Datasets: LLaVA-JSON records and the ShapesVQA generator (:mod:`mqt_llava.data.shapes`)."""
