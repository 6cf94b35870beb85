"""Samplers: which images an epoch trains on, in which batches.

A sampler turns an epoch's targets into batches of image indices; the training loop then
trains on them in order. Every sampler gives the same number of batches,
:func:`n_batches`, so that a learning-rate schedule knows its steps before training.

- :class:`ShuffleSampler` shuffles every image (the supervised CNN, and the pseudo-label
  method as the study ran it);
- :class:`ClusterWeightedSampler` draws images independently, each cluster equally likely
  (the pseudo-label method's ``balanced_sampler``);
- :class:`ClusterQuotaSampler` gives every cluster an exact share of the epoch
  (DeepCluster's sampler, :func:`balanced_sample`);
- :class:`RepeatedViews` wraps any of them to put several augmented views of each image
  in one batch (the study's proposal for its pseudo-labels).

A sampler draws on the estimator's random generators only, passed to it each epoch, so
that a checkpoint (which saves them) resumes the same draws.
"""

import numpy as np
import torch

from .metrics import cluster_sizes


def n_batches(n_images, batch_size):
    """Number of batches of an epoch: whole batches only, but at least one.

    Parameters
    ----------
    n_images : int
        Images trained on.
    batch_size : int
        Images per batch.

    Returns
    -------
    n_batches : int
        ``n_images // batch_size``, or 1 where that is 0.

    Examples
    --------
    >>> n_batches(300, 64), n_batches(10, 64)
    (4, 1)
    """
    return max(n_images // batch_size, 1)


class Sampler:
    """Base class of samplers: subclasses write :meth:`batches`."""

    def batches(self, targets, batch_size, *, rng, generator):
        """Batches of image indices for one epoch.

        Parameters
        ----------
        targets : array-like of shape (n_images,)
            The epoch's target of each image (class or cluster).
        batch_size : int
            Images per batch.
        rng : numpy.random.Generator
            The estimator's numpy generator.
        generator : torch.Generator
            The estimator's torch CPU generator.

        Returns
        -------
        batches : sequence of torch.Tensor
            :func:`n_batches` int64 tensors of indices into `targets`.
        """
        raise NotImplementedError


class ShuffleSampler(Sampler):
    """Every image once, in a random order.

    The last, incomplete batch is dropped (a batch of one image would break batch norm),
    unless it is the only one.

    Examples
    --------
    >>> import torch
    >>> batches = ShuffleSampler().batches(range(10), 4, rng=None,
    ...                                    generator=torch.Generator().manual_seed(0))
    >>> [len(batch) for batch in batches]
    [4, 4]
    """

    def batches(self, targets, batch_size, *, rng, generator):
        n_images = len(targets)
        order = torch.randperm(n_images, generator=generator)
        if n_images >= batch_size:
            order = order[: n_batches(n_images, batch_size) * batch_size]
        return order.split(batch_size)


class ClusterWeightedSampler(Sampler):
    """Images drawn independently with replacement, each cluster equally likely.

    Every draw picks a cluster uniformly, then an image of it: an image's weight is one
    over its cluster's size. Clusters are balanced in expectation only, and an image may
    come up more than once in an epoch. The pseudo-label method's ``balanced_sampler``;
    :class:`ClusterQuotaSampler` balances exactly.

    Examples
    --------
    >>> import torch
    >>> targets = [0] * 8 + [1] * 2
    >>> batches = ClusterWeightedSampler().batches(
    ...     targets, 5, rng=None, generator=torch.Generator().manual_seed(0))
    >>> [len(batch) for batch in batches]
    [5, 5]
    """

    def batches(self, targets, batch_size, *, rng, generator):
        targets = np.asarray(targets)
        weights = torch.from_numpy(1.0 / cluster_sizes(targets)[targets])
        n_draws = min(len(targets), n_batches(len(targets), batch_size) * batch_size)
        order = torch.multinomial(weights, n_draws, replacement=True, generator=generator)
        return order.split(batch_size)


class ClusterQuotaSampler(Sampler):
    """An epoch to which every cluster contributes equally, exactly, shuffled.

    DeepCluster's sampler: :func:`balanced_sample` draws as many images as there are
    images, an equal quota from each cluster, and :class:`ShuffleSampler` orders and
    batches them.
    """

    def batches(self, targets, batch_size, *, rng, generator):
        sample = torch.from_numpy(balanced_sample(targets, len(targets), rng))
        order = ShuffleSampler().batches(targets, batch_size, rng=rng, generator=generator)
        return [sample[index] for index in order]


def balanced_sample(labels, n_samples, rng):
    """Indices of `n_samples` samples to which every non-empty cluster contributes equally.

    DeepCluster's sampler: each cluster gets ``n_samples / n_non_empty`` draws (the
    remainder going, one each, to clusters drawn at random), without replacement from a
    cluster large enough and with replacement from a smaller one. The quotas are exact,
    as the paper's sampler had them; :class:`ClusterWeightedSampler` instead draws every
    image independently.

    Parameters
    ----------
    labels : array-like of shape (n_labelled,)
        Cluster of each sample.
    n_samples : int
        Number of indices to draw.
    rng : numpy.random.Generator
        Draws the samples.

    Returns
    -------
    indices : ndarray of shape (n_samples,)
        Indices into `labels`, grouped by cluster (shuffle them before batching).

    Examples
    --------
    >>> import numpy as np
    >>> sample = balanced_sample([0] * 8 + [1] * 2, 6, np.random.default_rng(0))
    >>> np.bincount(np.array([0] * 8 + [1] * 2)[sample]).tolist()
    [3, 3]
    """
    labels = np.asarray(labels)
    _, sizes = np.unique(labels, return_counts=True)
    members = np.split(np.argsort(labels, kind="stable"), np.cumsum(sizes)[:-1])
    quotas = np.full(len(sizes), n_samples // len(sizes))
    quotas[rng.permutation(len(sizes))[: n_samples % len(sizes)]] += 1
    draws = [
        rng.choice(indices, size=quota, replace=quota > len(indices))
        for indices, quota in zip(members, quotas)
    ]
    return np.concatenate(draws)


class RepeatedViews(Sampler):
    """Another sampler's batches, each image repeated to fill a batch with `n_views` views.

    Each batch of the wrapped sampler keeps its first ``ceil(len / n_views)`` images, each
    `n_views` times in a row, cut to the batch's length: a batch holds as many images as
    before, so an epoch costs the same and shows ``1 / n_views`` as many distinct images.
    The augmentation draws every view apart, and every view of an image trains on the
    image's one target: the study's proposal (Chen et al. 2020, discussion) to supervise
    K augmented views of an image with its pseudo-label.

    Parameters
    ----------
    sampler : Sampler
        Draws the images.
    n_views : int
        Views of each image per batch.

    Examples
    --------
    >>> import torch
    >>> sampler = RepeatedViews(ShuffleSampler(), 2)
    >>> [batch.tolist() for batch in sampler.batches(range(4), 4, rng=None,
    ...                                              generator=torch.Generator().manual_seed(0))]
    [[0, 0, 1, 1]]
    """

    def __init__(self, sampler, n_views):
        self.sampler = sampler
        self.n_views = n_views

    def batches(self, targets, batch_size, *, rng, generator):
        batches = self.sampler.batches(targets, batch_size, rng=rng, generator=generator)
        return [self._repeated(batch) for batch in batches]

    def _repeated(self, batch):
        kept = batch[: -(-len(batch) // self.n_views)]
        return kept.repeat_interleave(self.n_views)[: len(batch)]
