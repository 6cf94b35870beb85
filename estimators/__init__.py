"""Scikit-learn estimators backed by torch, and the clustering metrics they are judged by."""

from .metrics import cluster_sizes, clustering_accuracy, clustering_scores

__all__ = ["cluster_sizes", "clustering_accuracy", "clustering_scores"]
