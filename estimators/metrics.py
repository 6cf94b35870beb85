"""Clustering metrics: NMI, ARI, and accuracy under the best cluster-to-class matching."""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix


def clustering_accuracy(y_true, y_pred):
    """Accuracy of a clustering under the best one-to-one mapping of clusters to classes.

    The mapping maximises the number of images whose cluster maps to their class; it is
    found with the Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`).
    With more clusters than classes, the unmatched clusters count as errors.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True class labels.
    y_pred : array-like of shape (n_samples,)
        Cluster ids.

    Returns
    -------
    accuracy : float
        Share of samples correctly labelled under the best mapping, in [0, 1].

    Examples
    --------
    >>> clustering_accuracy([0, 0, 1, 1, 2], [2, 2, 0, 0, 1])
    1.0
    """
    contingency = contingency_matrix(y_true, y_pred)
    rows, cols = linear_sum_assignment(contingency, maximize=True)
    return float(contingency[rows, cols].sum() / contingency.sum())


def cluster_sizes(labels, n_clusters=None):
    """Number of samples in each cluster, empty clusters included.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Cluster ids, non-negative integers.
    n_clusters : int, default=None
        Number of clusters the method was asked for; defaults to ``max(labels) + 1``.

    Returns
    -------
    sizes : ndarray of shape (n_clusters,)
        Samples per cluster.
    """
    labels = np.asarray(labels, dtype=np.int64)
    return np.bincount(labels, minlength=n_clusters or 0)


def clustering_scores(y_true, y_pred, *, n_clusters=None):
    """NMI, ARI, Hungarian accuracy and the empty-cluster count of a clustering.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True class labels.
    y_pred : array-like of shape (n_samples,)
        Cluster ids.
    n_clusters : int, default=None
        Number of clusters asked for, to count the empty ones.

    Returns
    -------
    scores : dict
        ``nmi``, ``ari``, ``acc`` (floats) and ``empty_clusters`` (int).
    """
    sizes = cluster_sizes(y_pred, n_clusters)
    return {
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
        "acc": clustering_accuracy(y_true, y_pred),
        "empty_clusters": int((sizes == 0).sum()),
    }
