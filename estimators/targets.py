"""Target sources: where a self-labelling clusterer's epoch targets come from.

An epoch of :class:`~estimators.clustering.BaseTorchClusterer` runs

    targets from a target source -> rebalance -> batches from a sampler -> train
    -> record sizes

and the target source is the part in which the methods differ:

- :class:`SeparateLabelPass`: the network's own argmax under one augmentation, from a
  label pass of its own every epoch (the pseudo-label method as the study ran it);
- :class:`ReusedLabelPass`: the argmax the previous epoch's training pass computed (the
  pseudo-label method as its authors' code runs it);
- :class:`TeacherLabelPass`: a label pass of a slowly moving average of the network (an EMA
  teacher, as in DINO and TEMI);
- :class:`KMeansReclustering`: k-means clusters of the network's penultimate features,
  every few epochs (DeepCluster).

A label pass turns the network's logits into targets by their argmax
(:func:`argmax_labels`) or by an equal-size assignment (:func:`sinkhorn_labels`, SeLa's and
SwAV's Sinkhorn-Knopp), one column per head where the network has an over-clustering head
(:func:`assign_heads`). A source gives each epoch's targets (:meth:`TargetSource.targets`);
it may keep the targets the epoch trains on (:meth:`TargetSource.accept`), watch the
training pass (:meth:`TargetSource.watch_training`), and save its state in the estimator's
checkpoint (:meth:`TargetSource.state_dict`). It keeps that state in attributes ending in
``_``; the estimator builds a fresh source for every fit.
"""

import contextlib
import copy
import math

import numpy as np
import torch
from sklearn.metrics import normalized_mutual_info_score

from .kmeans import kmeans_labels, pca_whiten

# Images :func:`estimate_norm_statistics` averages over: all 1,437 training digits, a fifth of
# the 10,000 CIFAR-10 images of the quick profile.
PRECISE_BN_IMAGES = 2048


class TargetSource:
    """Base class of target sources: subclasses write :meth:`targets`; the rest is optional.

    Every method receives the clusterer being trained (its network, device and random
    generators) or what it has made of the epoch.
    """

    def targets(self, estimator, data, epoch):
        """The epoch's proposed target of each training image, before rebalancing.

        Parameters
        ----------
        estimator : BaseTorchClusterer
            The clusterer being trained.
        data : torch.Tensor of shape (n_images, height, width, channels)
            Training images, on the CPU.
        epoch : int
            Index of the epoch, from 0.

        Returns
        -------
        targets : ndarray of shape (n_images,) or (n_images, n_heads)
            Cluster of each image, in ``range(estimator.n_clusters)``; a column per head
            where the network has several (the K-way head first).
        """
        raise NotImplementedError

    def accept(self, targets, epoch):
        """Take note of the targets the epoch trains on (after rebalancing).

        Parameters
        ----------
        targets : ndarray of shape (n_images,) or (n_images, n_heads)
            The epoch's targets.
        epoch : int
            Index of the epoch, from 0.

        Returns
        -------
        record : dict
            Entries the source adds to the epoch's history record; none here.
        """
        return {}

    def watch_training(self, estimator, targets, batches):
        """A context manager open while the epoch trains; here, one that does nothing.

        Parameters
        ----------
        estimator : BaseTorchClusterer
            The clusterer being trained.
        targets : ndarray of shape (n_images,) or (n_images, n_heads)
            The epoch's targets.
        batches : sequence of torch.Tensor
            Indices of each batch's images, in the order trained on.

        Returns
        -------
        context : context manager
        """
        return contextlib.nullcontext()

    def state_dict(self):
        """What a checkpoint saves of the source: entries of the checkpoint's dict.

        Returns
        -------
        state : dict
            Tensors (or None) by checkpoint key; none here.
        """
        return {}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` saved.

        Parameters
        ----------
        state : dict
            The whole checkpoint.
        """


def argmax_labels(logits):
    """Each row's most probable cluster.

    Parameters
    ----------
    logits : torch.Tensor of shape (n_images, n_clusters)
        Cluster scores.

    Returns
    -------
    labels : ndarray of shape (n_images,)
        Int64 argmax of each row.
    """
    return logits.argmax(dim=1).numpy()


def standardised_argmax_labels(logits):
    """Each row's cluster of highest score relative to that cluster's scores over the rows.

    Each column is centred and scaled to unit variance over the images before the argmax:
    a network that gives every image nearly the same scores (a fresh network without batch
    norm, whose activations shrink layer by layer) still labels each image by what sets it
    apart, where the plain argmax puts them all in one cluster. DINO (Caron et al. 2021)
    centres its teacher's outputs against the same collapse. On digits, uic on AlexNet put
    every image in one cluster at each of its first label passes and ended with 8 of 10
    clusters empty (test NMI 0.01); with this, none empty (0.38; quick profile, seed 0,
    without dropout).

    Parameters
    ----------
    logits : torch.Tensor of shape (n_images, n_clusters)
        Cluster scores of the images of one label pass, which set each column's scale.

    Returns
    -------
    labels : ndarray of shape (n_images,)
        Int64 labels, :func:`argmax_labels` of the standardised scores.
    """
    centred = logits - logits.mean(dim=0)
    return argmax_labels(centred / centred.std(dim=0).clamp_min(1e-12))


def sinkhorn_labels(logits, *, epsilon=0.1, n_iterations=50):
    """Labels of clusters of equal size, as close to the network's scores as that allows.

    SeLa's and SwAV's assignment (Asano et al. 2020, Caron et al. 2020): the Sinkhorn-Knopp
    algorithm scales ``softmax(logits / epsilon)`` until every cluster holds the same total
    probability and every image one; each image then goes, most probable pairs first, to its
    most probable cluster that is not full, so that the sizes differ by one at most (SeLa
    takes the argmax, which is equal in sizes only in the limit).

    Parameters
    ----------
    logits : torch.Tensor of shape (n_images, n_clusters)
        Cluster scores.
    epsilon : float, default=0.1
        Temperature of the scores; smaller follows them more closely.
    n_iterations : int, default=50
        Scalings of rows and columns.

    Returns
    -------
    labels : ndarray of shape (n_images,)
        Int64 cluster of each image; each cluster holds ``n_images // n_clusters`` or one
        more.

    Examples
    --------
    >>> import numpy as np, torch
    >>> logits = torch.tensor([[5.0, 0.0], [4.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    >>> sinkhorn_labels(logits).tolist(), argmax_labels(logits).tolist()
    ([0, 0, 1, 1], [0, 0, 0, 1])
    """
    n_images, n_clusters = logits.shape
    log_q = logits.double() / epsilon
    for _ in range(n_iterations):
        log_q = log_q - log_q.logsumexp(dim=0, keepdim=True) - math.log(n_clusters)
        log_q = log_q - log_q.logsumexp(dim=1, keepdim=True) - math.log(n_images)
    capacity = np.full(n_clusters, n_images // n_clusters)
    capacity[: n_images % n_clusters] += 1
    labels = np.full(n_images, -1)
    for flat in torch.argsort(log_q.flatten(), descending=True).numpy():
        image, cluster = divmod(int(flat), n_clusters)
        if labels[image] < 0 and capacity[cluster] > 0:
            labels[image] = cluster
            capacity[cluster] -= 1
            if not capacity.any():
                break
    return labels


ASSIGNMENTS = {"argmax": argmax_labels, "standardised": standardised_argmax_labels,
               "sinkhorn": sinkhorn_labels}


@contextlib.contextmanager
def _overclustering_recorder(network):
    """Collect the over-clustering head's logits, on the CPU, of every forward pass of
    `network` (an :class:`~estimators.architectures.OverClusteringNetwork`) while open."""
    logits = []
    handle = network.final_linear().register_forward_pre_hook(
        lambda linear, args: logits.append(network.overclustering(args[0]).float().cpu())
    )
    try:
        yield logits
    finally:
        handle.remove()


@torch.no_grad()
def estimate_norm_statistics(estimator, data, *, module=None, n_images=PRECISE_BN_IMAGES):
    """Set the batch norms' running statistics to their averages over training batches.

    PreciseBN (Wu and Johnson, "Rethinking 'Batch' in BatchNorm", 2021): the running
    averages that training keeps mix statistics of weights since changed, and a network
    whose weights move fast (or were just drawn) predicts in eval mode from statistics
    that no longer describe its activations. Here each batch norm's mean and variance
    become the means, over batches of up to `n_images` training images drawn at random
    and augmented as in training, of the batches' own statistics (a last, smaller batch
    left out). See ``TorchPseudoLabelClassifier.precise_bn`` for what it changed on
    digits.

    Parameters
    ----------
    estimator : BaseTorchClusterer
        The clusterer being trained: its device, batch size, augmentation and generator.
    data : torch.Tensor of shape (n_images, height, width, channels)
        Training images, on the CPU.
    module : torch.nn.Module, default=None
        The network whose statistics to estimate; None: ``estimator.module_``.
    n_images : int, default=PRECISE_BN_IMAGES
        Images to estimate from, at most.
    """
    module = estimator.module_ if module is None else module
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [norm.momentum for norm in norms]
    was_training = module.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # torch's cumulative average over the batches seen
    module.train()
    try:
        drawn = torch.randperm(len(data), generator=estimator._generator)[:n_images]
        batches = drawn.split(estimator.batch_size)
        # Batches of one size, so that each weighs as its images do (and none holds one
        # image, of which a batch norm on 1x1 maps can take no variance).
        if len(batches) > 1 and len(batches[-1]) < estimator.batch_size:
            batches = batches[:-1]
        for batch in batches:
            with estimator._autocast():
                module(estimator._inputs(data[batch], train=True))
    finally:
        module.train(was_training)
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum


def _label_pass(estimator, data, module=None):
    """Logits of each head of the network (or `module`), each image under one random
    augmentation, in eval mode: the network's own head, then any over-clustering head."""
    module = estimator.module_ if module is None else module
    if not hasattr(module, "overclustering"):
        return [estimator.forward_batches(data.numpy(), augment=True, module=module)]
    with _overclustering_recorder(module) as overclustering:
        logits = estimator.forward_batches(data.numpy(), augment=True, module=module)
    return [logits, torch.cat(overclustering)]


def head_columns(targets):
    """Each head's targets, from a vector of them (one head) or a column per head."""
    return targets.reshape(len(targets), -1).T


def stack_heads(columns):
    """Targets of every head in one array: a vector for one head, a column per head for
    several (the layout :func:`head_columns` reads)."""
    return columns[0] if len(columns) == 1 else np.column_stack(columns)


def assign_heads(assign, head_logits):
    """Labels of every head by `assign`: one column per head, or a vector for one head.

    Parameters
    ----------
    assign : callable
        Logits of shape (n_images, n_clusters) -> labels (:func:`argmax_labels`,
        :func:`sinkhorn_labels`).
    head_logits : list of torch.Tensor of shape (n_images, n_clusters_of_head)
        Logits of each head.

    Returns
    -------
    labels : ndarray of shape (n_images,) or (n_images, n_heads)
        Each head's labels.

    Examples
    --------
    >>> import torch
    >>> assign_heads(argmax_labels, [torch.eye(2), torch.eye(2).flip(1)]).tolist()
    [[0, 1], [1, 0]]
    """
    return stack_heads([assign(logits) for logits in head_logits])


class SeparateLabelPass(TargetSource):
    """Pseudo-labels from a label pass of their own every epoch (``label_pass="separate"``).

    Each training image, under one random augmentation, goes through the network in eval
    mode; `assign` turns the head's logits into targets. With `precise_bn`, the network's
    batch-norm statistics are first estimated anew (:func:`estimate_norm_statistics`). A
    network with an over-clustering head
    (:class:`~estimators.architectures.OverClusteringNetwork`) gets targets for both heads
    from the same pass, as two columns (:func:`assign_heads`). Nothing carries over
    from one epoch to the next, but the checkpoint holds the entry ``next_labels`` (None)
    that :class:`ReusedLabelPass` fills, so that both write checkpoints of one layout.

    Parameters
    ----------
    assign : callable, default=argmax_labels
        Logits of shape (n_images, n_clusters) -> labels: one of `ASSIGNMENTS`.
    precise_bn : bool, default=False
        Estimate the batch norms' statistics on the training images before each label
        pass, in place of the running averages that training kept.
    """

    def __init__(self, assign=argmax_labels, *, precise_bn=False):
        self.assign = assign
        self.precise_bn = precise_bn

    def targets(self, estimator, data, epoch):
        return assign_heads(self.assign, self._label_pass(estimator, data))

    def _label_pass(self, estimator, data, module=None):
        if self.precise_bn:
            estimate_norm_statistics(estimator, data, module=module)
        return _label_pass(estimator, data, module=module)

    def state_dict(self):
        return {"next_labels": None}


class TeacherLabelPass(SeparateLabelPass):
    """Pseudo-labels from a label pass of an exponential moving average of the network.

    The teacher starts as a copy of the network; after each epoch's training its weights
    move towards the network's, ``teacher = momentum * teacher + (1 - momentum) *
    network``, and it takes the network's batch-norm statistics. Labels that follow the
    network slowly do not chase its latest mistakes: the mean teacher of DINO (Caron et al.
    2021) and TEMI (Adaloglou et al. 2023), updated here once per epoch rather than per
    step, as the labels are made once per epoch.

    Parameters
    ----------
    momentum : float
        Share of the teacher's weights kept at each update, in [0, 1).
    assign : callable, default=argmax_labels
        As :class:`SeparateLabelPass` takes it.
    precise_bn : bool, default=False
        As :class:`SeparateLabelPass` takes it; the teacher's statistics are estimated.

    Attributes
    ----------
    teacher_ : torch.nn.Module or None
        The teacher network; None before the first epoch.
    """

    def __init__(self, momentum, assign=argmax_labels, *, precise_bn=False):
        super().__init__(assign, precise_bn=precise_bn)
        self.momentum = momentum
        self.teacher_ = None
        self._saved = None

    def targets(self, estimator, data, epoch):
        if self.teacher_ is None:
            self.teacher_ = copy.deepcopy(estimator.module_)
            if self._saved is not None:
                self.teacher_.load_state_dict(self._saved)
        return assign_heads(self.assign, self._label_pass(estimator, data, module=self.teacher_))

    @contextlib.contextmanager
    def watch_training(self, estimator, targets, batches):
        yield
        self.update(estimator.module_)

    @torch.no_grad()
    def update(self, network):
        """Move the teacher's weights towards `network`'s; take its batch-norm statistics.

        Parameters
        ----------
        network : torch.nn.Module
            The network being trained, of the teacher's architecture.
        """
        for teacher, student in zip(self.teacher_.parameters(), network.parameters()):
            teacher.mul_(self.momentum).add_(student.detach(), alpha=1 - self.momentum)
        for teacher, student in zip(self.teacher_.buffers(), network.buffers()):
            teacher.copy_(student)

    def state_dict(self):
        return {**super().state_dict(), "teacher": self.teacher_.state_dict()}

    def load_state_dict(self, state):
        self._saved = state["teacher"]


@contextlib.contextmanager
def _argmax_recorder(module):
    """Collect the argmax of every output of `module`, on its device, while the context is open."""
    argmaxes = []
    handle = module.register_forward_hook(
        lambda module, inputs, output: argmaxes.append(output.detach().argmax(dim=1))
    )
    try:
        yield argmaxes
    finally:
        handle.remove()


class ReusedLabelPass(SeparateLabelPass):
    """Pseudo-labels from the previous epoch's training pass (``label_pass="reuse"``).

    The first epoch (and only it) runs a label pass, as :class:`SeparateLabelPass` does.
    Then each epoch's targets are the argmax of the logits the previous epoch's training
    pass computed for each image: an image trained on more than once takes the argmax
    of one of its draws, and an image not trained on keeps its target.

    Attributes
    ----------
    next_labels_ : ndarray of shape (n_images,) or None
        Targets of the next epoch; None before the first epoch has trained.
    """

    def __init__(self):
        super().__init__()
        self.next_labels_ = None

    def targets(self, estimator, data, epoch):
        if self.next_labels_ is None:
            return super().targets(estimator, data, epoch)
        return self.next_labels_

    @contextlib.contextmanager
    def watch_training(self, estimator, targets, batches):
        with _argmax_recorder(estimator.module_) as argmaxes:
            yield
        next_labels = targets.copy()
        next_labels[torch.cat(batches).numpy()] = torch.cat(argmaxes).cpu().numpy()
        self.next_labels_ = next_labels

    def state_dict(self):
        next_labels = self.next_labels_
        return {"next_labels": None if next_labels is None else torch.from_numpy(next_labels)}

    def load_state_dict(self, state):
        next_labels = state["next_labels"]
        self.next_labels_ = None if next_labels is None else next_labels.numpy()


def reset_head(network, optimizer):
    """Re-initialise a network's final linear layer and restart its optimiser state.

    The layer's state (momentum, moment estimates) is dropped, as a fresh optimiser would
    have none; fused SGD updates the momentum of all its parameters or of none, so there the
    layer's momentum is zeroed instead, which gives the same next step without dampening
    (with dampening d, (1 - d) times it: SGD's first step takes the whole gradient).

    Parameters
    ----------
    network : estimators.architectures.LayeredNetwork
        The network; its ``final_linear()`` is reset.
    optimizer : torch.optim.Optimizer
        The optimiser training it.
    """
    linear = network.final_linear()
    linear.reset_parameters()
    fused_sgd = isinstance(optimizer, torch.optim.SGD) and optimizer.defaults.get("fused")
    for parameter in linear.parameters():
        if not fused_sgd:
            optimizer.state.pop(parameter, None)
        elif parameter in optimizer.state:
            optimizer.state[parameter]["momentum_buffer"].zero_()


class KMeansReclustering(TargetSource):
    """DeepCluster's targets: k-means clusters of the network's own features.

    Every `reassign_every` epochs: the penultimate features of every training image
    (without augmentation), PCA-whitened to `pca_dim` components and L2-normalised
    (:func:`~estimators.kmeans.pca_whiten`), clustered by k-means
    (:func:`~estimators.kmeans.kmeans_labels`); the head's final linear layer is then
    re-initialised (:func:`reset_head`), since cluster ids carry no meaning from one
    clustering to the next. The epochs between two clusterings keep the last targets
    (rebalanced already: rebalancing them again moves nothing and draws nothing).

    Parameters
    ----------
    n_clusters : int
        Number of clusters.
    pca_dim : int
        Number of whitened principal components clustered, at most.
    kmeans : {"auto", "torch", "sklearn"}
        k-means implementation (see :func:`~estimators.kmeans.kmeans_labels`).
    reassign_every : int
        Epochs between two clusterings.

    Attributes
    ----------
    assignments_ : ndarray of shape (n_images,) or None
        The targets the last epoch trained on; None before the first.
    """

    def __init__(self, n_clusters, *, pca_dim, kmeans, reassign_every):
        self.n_clusters = n_clusters
        self.pca_dim = pca_dim
        self.kmeans = kmeans
        self.reassign_every = reassign_every
        self.assignments_ = None

    def reclusters(self, epoch):
        """Whether epoch `epoch` (from 0) clusters afresh."""
        return epoch % self.reassign_every == 0

    def targets(self, estimator, data, epoch):
        if not self.reclusters(epoch):
            return self.assignments_
        features = estimator.penultimate_features(data.numpy()).to(estimator.device_)
        whitened = pca_whiten(features, min(self.pca_dim, *features.shape))
        seed = int(estimator._rng.integers(np.iinfo(np.int32).max))
        clusters = kmeans_labels(whitened, self.n_clusters, backend=self.kmeans, seed=seed)
        reset_head(estimator.module_, estimator.optimizer_)
        return clusters

    def accept(self, targets, epoch):
        """Keep the targets; record ``nmi_previous``, their NMI with the last epoch's.

        It is NaN at the first epoch and 1 between two clusterings.
        """
        previous, self.assignments_ = self.assignments_, targets
        if not self.reclusters(epoch):
            return {"nmi_previous": 1.0}
        if previous is None:
            return {"nmi_previous": math.nan}
        return {"nmi_previous": float(normalized_mutual_info_score(previous, targets))}

    def state_dict(self):
        return {"assignments": torch.from_numpy(self.assignments_)}

    def load_state_dict(self, state):
        self.assignments_ = state["assignments"].numpy()
