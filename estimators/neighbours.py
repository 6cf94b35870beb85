"""Neighbours in a feature space: SCAN's mining, and the kNN accuracy of learned features.

SCAN trains its clustering heads to give an image and its mined neighbours the same cluster,
so the share of neighbours of the image's own class (:func:`neighbour_accuracy`) bounds how
well it can do; SCAN reports it for its pretext features.
"""

import numpy as np
import torch
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


def weighted_knn_accuracy(train_features, train_labels, test_features, test_labels, *,
                          n_neighbours=200, temperature=0.1, chunk_size=1024):
    """Accuracy of a weighted k-nearest-neighbour vote on features, by cosine similarity.

    The standard measure of self-supervised features (Wu et al. 2018, used by SimCLR's and
    SCAN's code bases): each test image's `n_neighbours` most similar training images vote
    for their classes with weights ``exp(similarity / temperature)``; the prediction is the
    class of largest total weight. No parameter is fitted.

    Parameters
    ----------
    train_features : array-like of shape (n_train, n_features)
        Features of the labelled reference images.
    train_labels : array-like of shape (n_train,)
        Their classes.
    test_features : array-like of shape (n_test, n_features)
        Features of the images to classify.
    test_labels : array-like of shape (n_test,)
        Their true classes.
    n_neighbours : int, default=200
        Voters per image; all training images where there are fewer.
    temperature : float, default=0.1
        Sharpness of the vote's weights.
    chunk_size : int, default=1024
        Test images compared at once (bounds memory).

    Returns
    -------
    accuracy : float
        Share of test images classed right.

    Examples
    --------
    >>> weighted_knn_accuracy([[1, 0], [0.9, 0.1], [0, 1]], [0, 0, 1], [[1, 0.2], [0.1, 1]],
    ...                       [0, 1], n_neighbours=1)
    1.0
    """
    classes, train_codes = np.unique(np.asarray(train_labels), return_inverse=True)
    train = torch.nn.functional.normalize(torch.as_tensor(np.asarray(train_features),
                                                          dtype=torch.float32), dim=1)
    test = torch.nn.functional.normalize(torch.as_tensor(np.asarray(test_features),
                                                         dtype=torch.float32), dim=1)
    train_codes = torch.as_tensor(train_codes)
    k = min(n_neighbours, len(train))
    predictions = []
    for chunk in test.split(chunk_size):
        similarity, index = (chunk @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(chunk), len(classes))
        votes.scatter_add_(1, train_codes[index], (similarity / temperature).exp())
        predictions.append(votes.argmax(dim=1))
    predicted = classes[torch.cat(predictions).numpy()]
    return float(np.mean(predicted == np.asarray(test_labels)))
