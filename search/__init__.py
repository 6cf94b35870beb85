"""Hyper-parameter search: the study's search spaces, a genetic tuner, shared-work
estimators that make exhaustive grids affordable, and joblib backends (local or Dask)."""

from .backends import BACKENDS, parallel_backend
from .genetic import FloatRange, GASearchCV, IntRange
from .grids import SEARCH_SPACES, search_space
from .splits import SubsetKFold
from .structured import (
    FitStats,
    SharedForestClassifier,
    SharedLogisticRegression,
    SharedNeighborsClassifier,
    SharedSVC,
    clear_cache,
    count_fits,
    set_cache_limit,
    structured,
)

__all__ = [
    "BACKENDS",
    "SEARCH_SPACES",
    "FitStats",
    "FloatRange",
    "GASearchCV",
    "IntRange",
    "SharedForestClassifier",
    "SharedLogisticRegression",
    "SharedNeighborsClassifier",
    "SharedSVC",
    "SubsetKFold",
    "clear_cache",
    "count_fits",
    "parallel_backend",
    "search_space",
    "set_cache_limit",
    "structured",
]
