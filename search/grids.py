"""Search spaces of the classical models, one per profile.

Each space maps the parameter names of the bare scikit-learn estimator to the
values to try. A list is categorical; :class:`~search.genetic.IntRange` and
:class:`~search.genetic.FloatRange` values are searchable by
:class:`~search.genetic.GASearchCV` only.

Profiles
--------
paper
    The study's grids, value for value, translated only where scikit-learn
    renamed an option.
quick
    The decisive axes of each model, small enough to tune on the full CIFAR-10
    features (50,000 x ~540 after PCA) on a 2-core CPU. Lists only, so that
    GridSearchCV and GASearchCV search the same space and can be compared.
gpu
    The quick spaces: the classical models run on the CPU whatever the profile.
smoke
    Two to four candidates, for tests.

To tune a pipeline's step, prefix each name with the step's: ``{"svc__C": [1, 10]}``.
"""

import math

__all__ = ["SEARCH_SPACES", "search_space"]

SEARCH_SPACES = {
    "rf": {
        "paper": {
            "n_estimators": [10, 100, 200, 500, 1000, 5000],
            # Floats are fractions of the training set, ints are counts.
            "min_samples_split": [0.1, 0.3, 0.5, 2],
            "min_samples_leaf": [0.1, 0.3, 0.5, 2],
            "criterion": ["entropy", "gini"],
        },
        "quick": {
            "n_estimators": [100, 300],
            "min_samples_leaf": [1, 2],
            "max_features": ["sqrt"],
            "criterion": ["gini", "entropy"],
        },
        "smoke": {
            "n_estimators": [10, 30],
            "min_samples_leaf": [1, 2],
        },
    },
    "knn": {
        "paper": {
            "n_neighbors": [2, 4, 5, 7, 10],
            "weights": ["uniform", "distance"],
            "algorithm": ["auto", "ball_tree", "kd_tree", "brute"],
            "p": [1, 2, 3],
        },
        "quick": {
            "n_neighbors": [1, 3, 5, 7, 10, 15],
            "weights": ["uniform", "distance"],
            "p": [1, 2],
        },
        "smoke": {
            "n_neighbors": [1, 5],
            "weights": ["uniform", "distance"],
        },
    },
    "logreg": {
        "paper": {
            # The study's penalty ["l2", "none"] x C: scikit-learn 1.8 deprecated
            # `penalty` in favour of `l1_ratio` (0 is l2, the default) and
            # C=inf for no penalty. penalty="none" ignored C, so its five C
            # values were one model: C=inf stands for all of them.
            "C": [0.5, 1, 10, 100, 1000, math.inf],
            "tol": [1e-2, 1e-3, 1e-4, 1e-5],
            "max_iter": [10, 25, 50, 100, 150, 200, 500, 1000, 10000],
        },
        "quick": {
            "C": [1e-3, 1e-2, 1e-1, 1, 10],
            "max_iter": [100, 300],
        },
        "smoke": {
            "C": [0.1, 1],
        },
    },
    "svm": {
        "paper": {
            "kernel": ["linear", "sigmoid", "rbf"],
            "gamma": [1e-3, 1e-4],
            "C": [100, 1000],
        },
        "quick": {
            "kernel": ["rbf"],
            "gamma": [1e-3, 3e-3, 1e-2],
            "C": [1, 10, 100],
        },
        "smoke": {
            "C": [1, 10],
        },
    },
}


for _spaces in SEARCH_SPACES.values():
    _spaces["gpu"] = _spaces["quick"]


def search_space(model, profile):
    """Return a copy of the search space of `model` under `profile`.

    Parameters
    ----------
    model : {"rf", "knn", "logreg", "svm"}
        The classical model.

    profile : {"paper", "quick", "gpu", "smoke"}
        How large a search to run.

    Returns
    -------
    space : dict
        Parameter name of the bare estimator -> list of values (or range).
        The lists are copies: changing them leaves :data:`SEARCH_SPACES` intact.

    Raises
    ------
    ValueError
        If `model` or `profile` is unknown; the message names the valid ones.
    """
    if model not in SEARCH_SPACES:
        raise ValueError(
            f"Unknown model {model!r}; valid models are {sorted(SEARCH_SPACES)}."
        )
    profiles = SEARCH_SPACES[model]
    if profile not in profiles:
        raise ValueError(
            f"Unknown profile {profile!r} for model {model!r}; valid profiles "
            f"are {sorted(profiles)}."
        )
    return {
        name: list(values) if isinstance(values, list) else values
        for name, values in profiles[profile].items()
    }
