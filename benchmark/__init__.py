"""Benchmark ways to label images, with and without their labels.

The face of the toolkit: datasets, the method registry, the fit/score harness and the
command line (``python -m benchmark``).
"""

from .datasets import DataError, Dataset, load_dataset
from .harness import run_method
from .registry import METHODS, PROFILES, Method, get_methods, register

__all__ = [
    "METHODS", "PROFILES", "DataError", "Dataset", "Method", "get_methods", "load_dataset",
    "register", "run_method",
]
