"""What the self-labelling clusterers share: the epoch built from parts, and a base estimator.

DeepCluster (k-means targets) and the pseudo-label method (argmax targets) differ only in
where an epoch's targets come from. Every epoch of both is

    targets from a target source -> rebalance -> batches from a sampler -> train
    -> record sizes

:class:`BaseTorchClusterer` runs it (``run_epoch``, one layer of the shared loop of
:mod:`estimators.training`); a subclass picks its parts: the target source
(:mod:`estimators.targets`, ``initialize_target_source``), the sampler
(:mod:`estimators.samplers`, ``initialize_sampler``) and the loss
(``initialize_criterion``). The steps all share live here: :func:`rebalance_clusters`,
which hands half of the largest cluster to each empty one, :func:`cluster_size_record`,
and :class:`HeldOutScore`, which scores a held-out set after every epoch. Both predict
with the argmax of the network's head.
"""

from numbers import Integral

import numpy as np
import torch
from sklearn.base import ClusterMixin
from sklearn.metrics import normalized_mutual_info_score
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from .metrics import cluster_sizes, clustering_scores
from .targets import head_columns, stack_heads
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


def cluster_size_record(proposed, targets, n_clusters):
    """An epoch's history entries on cluster sizes, before and after rebalancing.

    Parameters
    ----------
    proposed : array-like of shape (n_images,)
        The targets the target source gave.
    targets : array-like of shape (n_images,)
        The targets trained on, after rebalancing.
    n_clusters : int
        Number of clusters.

    Returns
    -------
    record : dict
        ``sizes_before`` and ``sizes_after`` (images per cluster, as lists) and
        ``n_empty_before`` (clusters the source left empty).

    Examples
    --------
    >>> cluster_size_record([0, 0, 0, 0], [0, 0, 1, 1], 2)
    {'sizes_before': [4, 0], 'sizes_after': [2, 2], 'n_empty_before': 1}
    """
    sizes_before = cluster_sizes(proposed, n_clusters)
    return {
        "sizes_before": sizes_before.tolist(),
        "sizes_after": cluster_sizes(targets, n_clusters).tolist(),
        "n_empty_before": int((sizes_before == 0).sum()),
    }


class HeldOutScore(Callback):
    """After each epoch, cluster a held-out set and add its scores to the epoch's record.

    The record gains ``eval_nmi``, ``eval_ari``, ``eval_acc`` and
    ``eval_empty_clusters`` (:func:`~estimators.metrics.clustering_scores`). The held-out
    images go through the network in eval mode, without augmentation; they are never
    trained on.

    Parameters
    ----------
    images : ndarray of shape (n_images, height, width, channels)
        Held-out images, validated as the clusterer's ``fit`` validates its own.
    y_true : array-like of shape (n_images,)
        Their classes.

    See Also
    --------
    BaseNetworkClusterer : Its `eval_set` adds this callback.

    Notes
    -----
    For `eval_set`, the clusterer runs it right after the epoch timer, so that scoring
    is not timed, and before the checkpoint, so that the scores are saved with the
    history. Passed through ``callbacks``, it runs after both.
    """

    def __init__(self, images, y_true):
        self.images = images
        self.y_true = y_true

    def on_epoch_end(self, estimator):
        clusters = estimator.forward_batches(self.images).argmax(dim=1).numpy()
        scores = clustering_scores(self.y_true, clusters, n_clusters=estimator.n_clusters)
        estimator.history_[-1].update({f"eval_{name}": value for name, value in scores.items()})


class BaseNetworkClusterer(ClusterMixin, BaseTorchEstimator):
    """Base of the clusterers that are a network with one output per cluster.

    It validates the data, trains with one output per cluster, scores `eval_set` after
    every epoch (:class:`HeldOutScore`), and clusters with the argmax of the network's
    head. A subclass lists its parameters in ``__init__`` (with at least `n_clusters` and
    `eval_set`) and writes how an epoch trains.

    Attributes
    ----------
    labels_ : ndarray of shape (n_images,)
        Cluster of each training image under the trained network: what :meth:`predict`
        gives for the training images.

    See Also
    --------
    BaseTorchClusterer : Networks trained on targets they make themselves each epoch.
    estimators.scan.TorchNeighbourClusterer : A network trained to agree with each
        image's neighbours.
    """

    _parameter_constraints = {
        **BaseTorchEstimator._parameter_constraints,
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "eval_set": [tuple, None],
    }
    # Scoring a held-out set does not change training.
    _resumable_params = (*BaseTorchEstimator._resumable_params, "eval_set")

    def fit(self, X, y=None):
        """Train the network to cluster the images, without their labels.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels) or (n_images, n_features)
            Training images: uint8 in [0, 255] or floats in [0, 1] (grey images may
            omit the channel axis); or rows of features.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : BaseNetworkClusterer
            The trained clusterer.
        """
        self._check_params()
        images = self._validate_images(X, reset=True)
        if len(images) < self.n_clusters:
            raise ValueError(
                f"n_samples={len(images)} should be >= n_clusters={self.n_clusters}."
            )
        self._fit(images, None, n_outputs=self.n_clusters)
        self.labels_ = self._clusters(images)
        return self

    def _training_data(self, images, targets):
        """The base's training data, once `eval_set` is validated for :class:`HeldOutScore`."""
        self._eval_data = None if self.eval_set is None else self._validate_eval_set()
        return super()._training_data(images, targets)

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

    # ---------------------------------------------------------------- the loop

    def initialize_callbacks(self):
        """Build the base callbacks, with the `eval_set` scorer right after the timer."""
        super().initialize_callbacks()
        if self._eval_data is not None:
            self.callbacks_.insert(1, HeldOutScore(*self._eval_data))


def _first_head(targets):
    """The K-way head's targets, from a vector of them or a column per head."""
    return head_columns(targets)[0]


class BaseTorchClusterer(BaseNetworkClusterer):
    """Base of the clusterers that train a network on targets it makes itself.

    Every epoch takes its targets from a target source, rebalances them
    (:func:`rebalance_clusters`), trains on the batches a sampler draws, and records the
    cluster sizes (:func:`cluster_size_record`). A subclass lists its parameters in
    ``__init__`` (with at least `n_clusters` and `eval_set`) and picks its parts:
    ``initialize_target_source`` sets the target source (:mod:`estimators.targets`),
    ``initialize_sampler`` the sampler (:mod:`estimators.samplers`; by default a
    shuffle) and ``initialize_criterion`` the loss (by default cross-entropy). This
    class saves the target source's state in checkpoints; :class:`BaseNetworkClusterer`
    does the rest.

    See Also
    --------
    estimators.deepcluster.DeepClusterClassifier : Targets from k-means on the
        network's features.
    estimators.pseudolabel.TorchPseudoLabelClassifier : Targets from the network's own
        argmax.
    rebalance_clusters : The step both use to fill empty clusters.
    """

    def initialize(self, data, n_outputs):
        """Build every component of training, then a fresh target source.

        Nothing of an earlier fit's targets carries over.
        """
        super().initialize(data, n_outputs)
        self.initialize_target_source()

    def initialize_target_source(self):
        """Pick ``_target_source``, the source of every epoch's targets; subclasses write it."""
        raise NotImplementedError

    def run_epoch(self, data, targets, epoch):
        """Targets from the target source, rebalanced, then one epoch of training on them.

        Parameters
        ----------
        data : torch.Tensor of shape (n_images, height, width, channels)
            Training images, on the CPU.
        targets : None
            Unused: the target source makes the epoch's targets.
        epoch : int
            Index of the epoch, from 0.

        Returns
        -------
        record : dict
            Training ``loss`` and ``accuracy`` against the targets, the K-way head's
            cluster sizes (:func:`cluster_size_record`), and what the target source adds.
        """
        source = self._target_source
        proposed = source.targets(self, data, epoch)
        epoch_targets = self._rebalanced(proposed)
        source_record = source.accept(epoch_targets, epoch)
        batches = self._draw_batches(_first_head(epoch_targets))
        with source.watch_training(self, epoch_targets, batches):
            record = self.train_batches(data, torch.from_numpy(epoch_targets), batches)
        sizes = cluster_size_record(
            _first_head(proposed), _first_head(epoch_targets), self.n_clusters
        )
        return {**record, **sizes, **source_record}

    @property
    def _head_widths(self):
        """Clusters of each head the targets are made for: here the one K-way head."""
        return (self.n_clusters,)

    def _rebalanced(self, proposed):
        """Every head's targets rebalanced (:func:`rebalance_clusters`), in the same layout:
        a vector for one head, a column per head for several."""
        return stack_heads([
            rebalance_clusters(column, width, self._rng)
            for column, width in zip(head_columns(proposed), self._head_widths, strict=True)
        ])

    # ---------------------------------------------------------------- checkpoints

    def checkpoint_state(self):
        """The base state, plus the target source's (its ``state_dict()``)."""
        return {**super().checkpoint_state(), **self._target_source.state_dict()}

    def load_checkpoint_state(self, state):
        """Restore what :meth:`checkpoint_state` saved."""
        super().load_checkpoint_state(state)
        self._target_source.load_state_dict(state)
