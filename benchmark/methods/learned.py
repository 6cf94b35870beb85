"""The deep-feature plug-in: classical models on features learned without labels.

Each row borrows the best self-supervised encoder measured and reads its representation,
reduced by PCA(99%); k-means on the same features is the encoder's own row
(``simclr-fast-kmeans``).
"""

from search.grids import SEARCH_SPACES

from .classical import GRID_SEARCH, MODELS
from .row import Method

# SimCLR's encoder on the fast network: on the CIFAR-10 copy (quick) its linear probe and
# its k-means beat those of the best pseudo-label network, uic-fast-sobel at stage2
# (results/cifar10-jpeg-quick/).
NETWORK = "simclr-fast"
LAYER = None
SOURCE = f"the features of {NETWORK} (learned without labels)"

# The images each model trains on: every labelled training image, over a network that learns
# from as many of them as its own row does (max_samples, where that row has a limit). An
# SVM, whose fit grows with the square of its training set, trains on at most 10,000, and
# the network learns from those.
SETTINGS = {
    "rf": {"smoke": {}, "quick": {}, "gpu": {}, "paper": {}},
    "knn": {"smoke": {}, "quick": {}, "gpu": {}, "paper": {}},
    "logreg": {"smoke": {}, "quick": {}, "gpu": {}, "paper": {}},
    "svm": {"smoke": {"train_limit": 256}, "quick": {"train_limit": 10_000},
            "gpu": {"train_limit": 10_000}, "paper": {}},
}

CLASSIFIER_ROWS = [
    row
    for name, model in MODELS.items()
    for row in (
        Method(
            f"learned-{name}", f"{model.title}, default parameters, on {SOURCE}",
            model.estimator_class, "learned", SETTINGS[name], params=model.params,
            pipeline="learned-features", borrows=NETWORK, layer=LAYER,
        ),
        Method(
            f"learned-{name}-grid", f"{model.title} tuned by exhaustive grid search, on {SOURCE}",
            model.estimator_class, "learned", SETTINGS[name], params=model.params,
            pipeline="learned-features", borrows=NETWORK, layer=LAYER,
            search_space=SEARCH_SPACES[name], tuner=GRID_SEARCH,
        ),
    )
]
ROWS = CLASSIFIER_ROWS
