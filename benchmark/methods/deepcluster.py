"""DeepCluster (Caron et al. 2018): a network trained on k-means pseudo-labels of its features."""

from .networks import (
    ARCHITECTURES,
    GPU_BATCH,
    LIGHT_AUGMENTATION,
    QUICK_NETWORK,
    SMOKE,
    STUDY_NETWORKS,
    network_params,
)
from .row import N_CLUSTERS, Method

INPUTS = ("rgb", "sobel")

# DeepCluster's own published settings; the study's lr of 1e-4 cannot train a head that is
# re-initialised every epoch.
PAPER = {
    "optimizer": "sgd", "momentum": 0.9, "batch_size": 256, "weight_decay": 1e-5, "lr": 0.05,
    "lr_schedule": "constant", "epochs": 200, "module__dropout": 0.5, "pca_dim": 256,
    "label_smoothing": 0.0,
}
SETTINGS = {
    "fast": {
        "smoke": SMOKE["fast"],
        # cnn-fast's recipe: airbench's light augmentation, on every training image
        "quick": {"epochs": 10, "optimizer__nesterov": True, **LIGHT_AUGMENTATION},
        "gpu": {"epochs": 20, "optimizer__nesterov": True, **LIGHT_AUGMENTATION},
        "paper": PAPER,
    },
    **{name: {
        "smoke": SMOKE[name],
        "quick": {"epochs": 4, "train_limit": 10_000, "lr": 0.05, **QUICK_NETWORK.get(name, {})},
        "gpu": {"epochs": 15, "lr": 0.05, **GPU_BATCH},
        "paper": PAPER,
    } for name in STUDY_NETWORKS},
}
# The study's one DeepCluster figure: DeeperCluster's public code on VGG-16, which it ran for
# 3 of 100 epochs (results/reference.py).
REFERENCES = {"vgg16bn": "deepercluster"}

ROWS = [
    Method(
        f"deepcluster-{name}-{input}",
        f"DeepCluster (k-means pseudo-labels) on {title}, {input} input",
        "estimators:DeepClusterClassifier", "deepcluster", SETTINGS[name],
        params=network_params(name, n_clusters=N_CLUSTERS, input=input),
        reference=REFERENCES.get(name), supervised=False,
    )
    for name, (_, title, _) in ARCHITECTURES.items()
    for input in INPUTS
]
