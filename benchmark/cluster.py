"""Cluster a folder or archive of images that may have no labels, and show the clusters."""

import csv
from pathlib import Path

import numpy as np
from scipy.special import softmax
from sklearn.base import is_clusterer

from results import atomic_write
from results.plots import contact_sheet, plot_sizes

from .errors import DataError
from .harness import cluster_scores, timed_fit, training_part

SHEET_IMAGES = 64


def cluster_images(method, dataset, *, out_dir, profile="quick", seed=0, n_clusters=None):
    """Fit a clustering method, label every image, and write what it found.

    The method learns from at most its profile's ``train_limit`` images (a seeded draw,
    stratified where the images have classes), as it does in a run, then labels them all;
    the harness (:mod:`benchmark.harness`) draws, times and scores, as in a run.

    Writes ``assignments.csv`` (file, cluster, confidence), one contact sheet per cluster
    (``cluster-NN.png``: its most confident images first) and ``cluster-sizes.png``.

    Parameters
    ----------
    method : benchmark.registry.Method
        An unsupervised method.
    dataset : benchmark.datasets.Dataset
        All images in ``X_train``, their names in ``files``, classes in ``y_train`` if any.
    out_dir : path
        Folder for the outputs; created if missing.
    profile : str, default="quick"
        Settings profile of the method.
    seed : int, default=0
        Seed of the method.
    n_clusters : int, default=None
        Number of clusters; defaults to the number of classes, or 10 without labels.

    Returns
    -------
    summary : dict
        ``n_images``, ``n_fitted`` (how many the method learned from), ``n_clusters``,
        ``fit_time`` (seconds), ``sizes``, ``empty_clusters`` and, where the images have
        classes, ``nmi``, ``ari`` and ``acc`` of the clusters of every image.
    """
    if method.supervised:
        raise DataError(f"{method.name} is supervised; the cluster command needs a clustering "
                        "method (python -m benchmark list shows them).")
    if n_clusters is None:
        n_clusters = dataset.n_classes or 10
    train = training_part(dataset, method.train_limit(profile), seed)
    n_fitted = len(train.X_train)
    if not 1 <= n_clusters <= n_fitted:
        raise DataError(f"Cannot make {n_clusters} clusters of {n_fitted} images; ask for "
                        f"1 to {n_fitted} clusters.")
    estimator = method.estimator(profile, seed=seed, n_classes=n_clusters, n_train=n_fitted)
    if not is_clusterer(estimator):
        raise DataError(f"{method.name} learns features and makes no clusters; the cluster "
                        "command needs a clustering method (python -m benchmark list shows "
                        "them), such as one that reads its features.")
    fit_time, _ = timed_fit(estimator, train.X_train)
    X = dataset.X_train
    labels = estimator.predict(X)
    confidence = membership_confidence(estimator, X, labels)
    scores = cluster_scores(labels, dataset.y_train, n_clusters)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_assignments(out_dir / "assignments.csv", dataset.files, labels, confidence)
    sizes = np.asarray(scores["cluster_sizes"])
    plot_sizes(sizes, out_dir / "cluster-sizes.png", title=f"{method.name} on {dataset.name}")
    for cluster in np.flatnonzero(sizes):
        members = np.flatnonzero(labels == cluster)
        best = members[np.argsort(-confidence[members], kind="stable")[:SHEET_IMAGES]]
        contact_sheet(X[best], out_dir / f"cluster-{cluster:02d}.png")
    return {"n_images": len(X), "n_fitted": n_fitted, "n_clusters": n_clusters,
            "fit_time": fit_time, "sizes": scores.pop("cluster_sizes"), **scores}


def membership_confidence(estimator, X, labels):
    """How sure the estimator is of each image's cluster, in [0, 1].

    The probability of the assigned cluster where the estimator has ``predict_proba``;
    for k-means, the softmax of the negative distances to the centres; else 1.
    """
    rows = np.arange(len(labels))
    if hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(X)[rows, labels]
    if hasattr(estimator, "transform"):
        return softmax(-estimator.transform(X), axis=1)[rows, labels]
    return np.ones(len(labels))


def _write_assignments(path, files, labels, confidence):
    with atomic_write(path, newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["file", "cluster", "confidence"])
        for name, cluster, sure in zip(files, labels, confidence):
            writer.writerow([name, int(cluster), f"{sure:.4f}"])
