"""Scikit-learn estimators backed by torch, and the clustering metrics they are judged by.

Names are imported on first use, so that the metrics (and a command that only lists
methods) do not wait for torch to load.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "architectures": ["build_network"],
        "clustering": [
            "BaseNetworkClusterer", "BaseTorchClusterer", "HeldOutScore", "rebalance_clusters",
        ],
        "cnn": ["TorchCNNClassifier"],
        "contrastive": ["TorchContrastiveEncoder"],
        "deepcluster": ["DeepClusterClassifier"],
        "metrics": ["cluster_sizes", "clustering_accuracy", "clustering_scores"],
        "losses": [
            "class_balancing_weights", "confident_targets", "mean_assignment_entropy",
            "nt_xent", "scan_loss", "self_labelling_loss",
        ],
        "neighbours": ["mine_neighbours", "neighbour_accuracy", "weighted_knn_accuracy"],
        "probe": ["LinearProbe"],
        "pseudolabel": ["TorchPseudoLabelClassifier"],
        "scan": ["TorchNeighbourClusterer"],
        "training": ["BaseTorchEstimator", "Callback", "Checkpoint", "History", "resolve_device"],
    },
)
