"""Scikit-learn estimators backed by torch, and the clustering metrics they are judged by."""

from .architectures import build_network
from .clustering import BaseTorchClusterer, rebalance_clusters
from .cnn import TorchCNNClassifier
from .deepcluster import DeepClusterClassifier
from .metrics import cluster_sizes, clustering_accuracy, clustering_scores
from .probe import LinearProbe
from .pseudolabel import TorchPseudoLabelClassifier
from .training import BaseTorchEstimator, Callback, Checkpoint, History, resolve_device

__all__ = [
    "BaseTorchClusterer",
    "BaseTorchEstimator",
    "Callback",
    "Checkpoint",
    "DeepClusterClassifier",
    "History",
    "LinearProbe",
    "TorchCNNClassifier",
    "TorchPseudoLabelClassifier",
    "build_network",
    "cluster_sizes",
    "clustering_accuracy",
    "clustering_scores",
    "rebalance_clusters",
    "resolve_device",
]
