"""The deep-feature plug-in: classical models and k-means on features learned without labels.

Each row borrows the network of a uic row, trained end to end on its own pseudo-labels, and
reads the activations of its probed layer, reduced by PCA(99%).
"""

from search.grids import SEARCH_SPACES

from .classical import GRID_SEARCH, MODELS
from .row import N_CLUSTERS, SEED, Method

# Sobel input: the fast network clusters better and its linear probe scores higher from it
# than from colour (results/cifar10-jpeg-quick/).
NETWORK = "uic-fast-sobel"
LAYER = "stage2"
SOURCE = f"{LAYER} features of {NETWORK} (learned without labels)"

# The images each model trains on: every labelled training image, over a network that draws
# as many of them as its uic row trains on (max_samples). An SVM, whose fit grows with the
# square of its training set, keeps its uic row's images (its limit on pixels is no
# smaller), and so borrows that row's network as it is.
SETTINGS = {
    "rf": {"smoke": {}, "quick": {}, "paper": {}},
    "knn": {"smoke": {}, "quick": {}, "paper": {}},
    "logreg": {"smoke": {}, "quick": {}, "paper": {}},
    "svm": {"smoke": {"train_limit": 256}, "quick": {"train_limit": 10_000}, "paper": {}},
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
KMEANS_ROW = Method(
    "learned-kmeans", f"k-means on {SOURCE}, K = number of classes",
    "sklearn.cluster:KMeans", "clustering", {"smoke": {}, "quick": {}, "paper": {}},
    params={"n_clusters": N_CLUSTERS, "n_init": 3, "random_state": SEED}, supervised=False,
    pipeline="learned-features", borrows=NETWORK, layer=LAYER,
)
ROWS = [*CLASSIFIER_ROWS, KMEANS_ROW]
