"""Classical models on PCA(99%) pixels: default parameters, and tuned on the study's grids.

Each model is tuned two ways: by exhaustive grid search and by the genetic tuner, over the
search spaces of :mod:`search.grids` (the study's grids under ``paper``, smaller ones under
``quick`` and ``smoke``).
"""

from dataclasses import dataclass

# plain data: imports neither scikit-learn nor torch
from search.grids import SEARCH_SPACES

from .row import N_JOBS, SEED, Method, Tuner, instantiate, runtime_values


@dataclass(frozen=True)
class Model:
    """A classical model: its title, class, fixed parameters and settings per profile."""

    title: str
    estimator_class: str
    params: dict
    profiles: dict

    def make(self, seed, n_jobs):
        """A new, unfitted model seeded with `seed` that runs `n_jobs` jobs, if it takes them."""
        return instantiate(self.estimator_class, self.params,
                           runtime_values(seed=seed, n_jobs=n_jobs))


MODELS = {
    "rf": Model("Random forest", "sklearn.ensemble:RandomForestClassifier",
                {"random_state": SEED, "n_jobs": N_JOBS},
                {"smoke": {}, "quick": {}, "gpu": {}, "paper": {}}),
    "knn": Model("k-nearest neighbours", "sklearn.neighbors:KNeighborsClassifier",
                 {"n_jobs": N_JOBS},
                 {"smoke": {}, "quick": {}, "gpu": {}, "paper": {}}),
    "logreg": Model("Logistic regression (lbfgs)", "sklearn.linear_model:LogisticRegression",
                    {"random_state": SEED},
                    {"smoke": {}, "quick": {}, "gpu": {}, "paper": {}}),
    # An RBF SVM's fit grows with the square of the training set.
    "svm": Model("RBF support vector machine", "sklearn.svm:SVC",
                 {"random_state": SEED},
                 {"smoke": {"train_limit": 500}, "quick": {"train_limit": 10_000},
                  "gpu": {"train_limit": 10_000}, "paper": {}}),
}

GRID_SEARCH = Tuner(
    "sklearn.model_selection:GridSearchCV",
    params={"n_jobs": N_JOBS},
    profiles={
        "smoke": {"cv": 2, "search_limit": None},
        "quick": {"cv": 3, "search_limit": 10_000},
        "gpu": {"cv": 3, "search_limit": 10_000},
        "paper": {"cv": 5, "search_limit": None},
    },
)
GENETIC_SEARCH = Tuner(
    "search:GASearchCV",
    params={"n_jobs": N_JOBS, "random_state": SEED},
    profiles={
        "smoke": {"cv": 2, "search_limit": None, "population_size": 4, "generations": 3},
        "quick": {"cv": 3, "search_limit": 10_000, "population_size": 8, "generations": 10},
        "gpu": {"cv": 3, "search_limit": 10_000, "population_size": 8, "generations": 10},
        "paper": {"cv": 5, "search_limit": None, "population_size": 20, "generations": 30},
    },
)
TUNERS = {
    "grid": ("exhaustive grid search", GRID_SEARCH),
    "ga": ("genetic search (DEAP)", GENETIC_SEARCH),
}

DEFAULT_ROWS = [
    Method(
        name, f"{model.title}, default parameters, on PCA(99%) pixels",
        model.estimator_class, "classical", model.profiles, params=model.params,
        pipeline="pixels",
    )
    for name, model in MODELS.items()
]
# The study's pipeline: PCA is fitted once, on every training image, and the search tunes
# the model on its output. The validation folds took part in that PCA, so cv_score is a
# little optimistic; the test images never did.
TUNED_ROWS = [
    Method(
        f"{name}-{tuner}", f"{model.title} tuned by {how} on the study's grid",
        model.estimator_class, "classical", model.profiles, params=model.params,
        reference=name, pipeline="pixels", search_space=SEARCH_SPACES[name], tuner=search,
    )
    for tuner, (how, search) in TUNERS.items()
    for name, model in MODELS.items()
]
ROWS = [*DEFAULT_ROWS, *TUNED_ROWS]
