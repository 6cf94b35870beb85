"""Neighbour mining for SCAN: each image's nearest other images in a feature space.

SCAN trains its clustering heads to give an image and its mined neighbours the same cluster,
so the share of neighbours of the image's own class (:func:`neighbour_accuracy`) bounds how
well it can do; SCAN reports it for its pretext features.
"""

import numpy as np
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

METRICS = ("cosine", "euclidean")


def mine_neighbours(features, n_neighbours=20, *, metric="cosine"):
    """Indices of each image's nearest other images, nearest first.

    The search is scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors`, exact.
    Cosine similarity orders neighbours as Euclidean distance does between L2-normalised
    features, so `"cosine"` normalises and then searches by Euclidean distance (a tree
    search can serve it, where a cosine metric would force brute force).

    Parameters
    ----------
    features : array-like of shape (n_images, n_features)
        Features of the images (a pretext network's, for SCAN).
    n_neighbours : int, default=20
        Neighbours per image (SCAN's setting); fewer than `n_images`.
    metric : {"cosine", "euclidean"}, default="cosine"
        What "near" means.

    Returns
    -------
    indices : numpy.ndarray of shape (n_images, n_neighbours)
        Int64 row indices into `features`; an image is never its own neighbour.

    Examples
    --------
    >>> mine_neighbours([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], n_neighbours=1).ravel().tolist()
    [1, 0, 1]
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    features = np.asarray(features, dtype=np.float64)
    if not 1 <= n_neighbours < len(features):
        raise ValueError(f"n_neighbours must be in [1, {len(features) - 1}] for "
                         f"{len(features)} images, got {n_neighbours}")
    if metric == "cosine":
        features = normalize(features)
    search = NearestNeighbors(n_neighbors=n_neighbours).fit(features)
    # Without a query, kneighbors leaves each indexed image out of its own neighbours,
    # even where a duplicate image ties with it.
    return search.kneighbors(return_distance=False).astype(np.int64)


def neighbour_accuracy(indices, y):
    """Share of mined neighbours that belong to their image's class.

    Parameters
    ----------
    indices : array-like of shape (n_images, n_neighbours)
        Neighbours of each image, from :func:`mine_neighbours`.
    y : array-like of shape (n_images,)
        Class of each image.

    Returns
    -------
    accuracy : float
        Between 0 and 1.

    Examples
    --------
    >>> neighbour_accuracy([[1], [0], [3], [0]], [0, 0, 1, 1])
    0.75
    """
    indices = np.asarray(indices)
    y = np.asarray(y)
    return float(np.mean(y[indices] == y[:, np.newaxis]))
