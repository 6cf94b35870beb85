"""Hyper-parameter search: the study's search spaces, a genetic tuner, shared-work
estimators that make exhaustive grids affordable, and joblib backends (local or Dask)."""

import lazy_loader

# Names are imported on first use: choosing a backend does not load scikit-learn.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "backends": ["BACKENDS", "SchedulerError", "parallel_backend"],
        "genetic": ["FloatRange", "GASearchCV", "IntRange"],
        "grids": ["SEARCH_SPACES", "search_space"],
        "splits": ["SubsetKFold"],
        "structured": [
            "FitStats", "SharedForestClassifier", "SharedLogisticRegression",
            "SharedNeighborsClassifier", "SharedSVC", "clear_cache", "count_fits",
            "set_cache_limit", "structured",
        ],
    },
)
