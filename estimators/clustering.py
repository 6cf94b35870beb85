"""What the self-labelling clusterers share: the rebalancing step and a base estimator.

DeepCluster (k-means targets) and the pseudo-label method (argmax targets) differ only in
where an epoch's targets come from. Both validate the same way, hand half of the largest
cluster to each empty one, score a held-out set after every epoch, and predict with the
argmax of the network's head; that part lives here, and each estimator overrides one
layer of the shared loop (``run_epoch``) to make its targets.
"""

from numbers import Integral

import numpy as np
import torch
from sklearn.base import ClusterMixin
from sklearn.metrics import normalized_mutual_info_score
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from .metrics import cluster_sizes, clustering_scores
from .training import BaseTorchEstimator, Callback


def rebalance_clusters(labels, n_clusters, rng):
    """Give every empty cluster half of the largest one's members, drawn at random.

    While some cluster is empty, the cluster with the most members hands half of them
    (rounded down) to it. With at least as many samples as clusters, no cluster is empty
    afterwards, and none that had members before is emptied. The pseudo-label method's
    rebalancing step, and DeepCluster's guard after k-means (which may leave a cluster
    empty).

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Cluster of each sample, in ``range(n_clusters)``.
    n_clusters : int
        Number of clusters.
    rng : numpy.random.Generator
        Draws which members move.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        The rebalanced clusters (a new int64 array).

    Examples
    --------
    >>> import numpy as np
    >>> rebalance_clusters([0, 0, 0, 0, 1, 1], 3, np.random.default_rng(0))
    array([0, 0, 2, 2, 1, 1])
    """
    labels = np.array(labels, dtype=np.int64)
    sizes = cluster_sizes(labels, n_clusters)
    for empty in np.flatnonzero(sizes == 0):
        largest = np.argmax(sizes)
        members = np.flatnonzero(labels == largest)
        moved = rng.choice(members, size=len(members) // 2, replace=False)
        labels[moved] = empty
        sizes[largest] -= len(moved)
        sizes[empty] = len(moved)
    return labels


class _EvalSetScores(Callback):
    """After each epoch, add the clustering scores of the held-out set to its record.

    Runs after the epoch timer, so that scoring is not timed, and before the checkpoint,
    so that the scores are saved with the history.
    """

    def __init__(self, images, y_true):
        self.images = images
        self.y_true = y_true

    def on_epoch_end(self, estimator):
        clusters = estimator._clusters(self.images)
        scores = clustering_scores(self.y_true, clusters, n_clusters=estimator.n_clusters)
        estimator.history_[-1].update({f"eval_{name}": value for name, value in scores.items()})


class BaseTorchClusterer(ClusterMixin, BaseTorchEstimator):
    """Base of the clusterers that train a network on targets it makes itself.

    A subclass lists its parameters in ``__init__`` (with at least `n_clusters` and
    `eval_set`) and overrides ``run_epoch`` to make each epoch's targets; this class
    validates the data, trains with one output per cluster, scores `eval_set` after
    every epoch, and clusters with the argmax of the network's head.

    Attributes
    ----------
    labels_ : ndarray of shape (n_images,)
        Cluster of each training image under the trained network: what :meth:`predict`
        gives for the training images.

    See Also
    --------
    estimators.deepcluster.DeepClusterClassifier : Targets from k-means on the
        network's features.
    estimators.pseudolabel.TorchPseudoLabelClassifier : Targets from the network's own
        argmax.
    rebalance_clusters : The step both use to fill empty clusters.
    """

    _parameter_constraints = {
        **BaseTorchEstimator._parameter_constraints,
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "eval_set": [tuple, None],
    }
    # Scoring a held-out set does not change training.
    _resumable_params = (*BaseTorchEstimator._resumable_params, "eval_set")

    def fit(self, X, y=None):
        """Train the network on the cluster targets it makes of the images each epoch.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels) or (n_images, n_features)
            Training images: uint8 in [0, 255] or floats in [0, 1] (grey images may
            omit the channel axis); or rows of features.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : BaseTorchClusterer
            The trained clusterer.
        """
        self._check_params()
        images = self._validate_images(X, reset=True)
        if len(images) < self.n_clusters:
            raise ValueError(
                f"n_samples={len(images)} should be >= n_clusters={self.n_clusters}."
            )
        self._eval_data = None if self.eval_set is None else self._validate_eval_set()
        self._fit(images, None, n_outputs=self.n_clusters)
        self.labels_ = self._clusters(images)
        return self

    def _validate_eval_set(self):
        X, y = self.eval_set
        images = self._validate_images(X, reset=False)
        y = column_or_1d(y)
        check_consistent_length(images, y)
        return images, y

    def predict(self, X):
        """Cluster of each image: the argmax of the network's head.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels) or (n_images, n_features)
            Images of the shape seen in `fit`.

        Returns
        -------
        labels : ndarray of shape (n_images,)
            Cluster ids, in ``range(n_clusters)``.
        """
        check_is_fitted(self)
        return self._clusters(self._validate_images(X, reset=False))

    def predict_proba(self, X):
        """How strongly each image belongs to each cluster: the softmax of the head.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels) or (n_images, n_features)
            Images of the shape seen in `fit`.

        Returns
        -------
        proba : ndarray of shape (n_images, n_clusters)
            Rows sum to 1; the argmax is :meth:`predict`.
        """
        check_is_fitted(self)
        logits = self.forward_batches(self._validate_images(X, reset=False))
        return torch.softmax(logits.double(), dim=1).numpy()

    def score(self, X, y):
        """Normalised mutual information between the predicted clusters and `y`.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels) or (n_images, n_features)
            Images of the shape seen in `fit`.
        y : array-like of shape (n_images,)
            True classes.

        Returns
        -------
        score : float
            NMI (:func:`sklearn.metrics.normalized_mutual_info_score`), in [0, 1].
        """
        return float(normalized_mutual_info_score(y, self.predict(X)))

    def _clusters(self, images, augment=False):
        return self.forward_batches(images, augment=augment).argmax(dim=1).numpy()

    def initialize_callbacks(self):
        """Build the base callbacks, with the `eval_set` scorer right after the timer."""
        super().initialize_callbacks()
        if self._eval_data is not None:
            self.callbacks_.insert(1, _EvalSetScores(*self._eval_data))
