"""Hyper-parameter search: the study's search spaces and a genetic tuner."""

from .backends import BACKENDS, parallel_backend
from .genetic import FloatRange, GASearchCV, IntRange
from .grids import SEARCH_SPACES, prefixed, search_space

__all__ = [
    "BACKENDS",
    "SEARCH_SPACES",
    "FloatRange",
    "GASearchCV",
    "IntRange",
    "parallel_backend",
    "prefixed",
    "search_space",
]
