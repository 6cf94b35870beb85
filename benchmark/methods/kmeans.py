"""k-means on PCA(99%) pixels: clustering that learns no features."""

from .row import N_CLUSTERS, SEED, Method

ROWS = [
    Method(
        "kmeans", "k-means on PCA(99%) pixels, K = number of classes (10 when unlabelled)",
        "sklearn.cluster:KMeans", "clustering",
        {"smoke": {"n_init": 1}, "quick": {"n_init": 3}, "gpu": {"n_init": 3},
         "paper": {"n_init": 10}},
        params={"n_clusters": N_CLUSTERS, "random_state": SEED}, supervised=False,
        pipeline="pixels",
    ),
]
