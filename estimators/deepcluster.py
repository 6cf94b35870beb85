"""DeepCluster (Caron et al., 2018): a network trained on k-means clusters of its own features.

Every epoch extracts the network's penultimate features of the training images, PCA-
whitens and L2-normalises them, clusters them with k-means, re-seeds empty clusters, and
trains the network, under a freshly initialised final layer, on the cluster ids, drawing
images uniformly over clusters. The estimator overrides one layer of the shared loop
(``run_epoch``, and the batches it draws) and reuses the rest.
"""

import math
from numbers import Integral

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from sklearn.utils._param_validation import Interval, StrOptions
from torch.nn import functional as F

from features.deep import final_linear, penultimate_features

from .clustering import BaseTorchClusterer, rebalance_clusters
from .metrics import cluster_sizes

# faiss's k-means splits a cluster by scaling its centroid by 1 +/- this, alternating
# the sign over dimensions; DeepCluster clustered with it.
_SPLIT_EPS = 1 / 1024

# Rows of the (n_samples, n_clusters) distance matrix computed at once, in cells.
_DISTANCE_CELLS = 2**25

# Whitening divides by the root of each kept variance; these floors (relative to the
# largest, and absolute for constant features) keep a dead direction at zero instead of
# dividing zero by zero.
_MIN_RELATIVE_VARIANCE = 1e-8
_MIN_VARIANCE = 1e-12


# ---------------------------------------------------------------- clustering steps


def pca_whiten(features, n_components):
    """Project features on their top principal axes, whiten, then L2-normalise each row.

    DeepCluster's preprocessing before k-means (256 components in the paper).
    Constant features (dead units) carry nothing and are dropped first.

    Parameters
    ----------
    features : torch.Tensor of shape (n_samples, n_features)
        Float features, on any device.
    n_components : int
        Number of principal axes kept, at most ``n_features``; fewer where fewer
        features vary.

    Returns
    -------
    whitened : torch.Tensor of shape (n_samples, min(n_components, n_varying_features))
        Unit-norm rows, on the device of `features`.

    Raises
    ------
    ValueError
        If a feature is NaN or infinite, or if no feature varies across the samples.

    Examples
    --------
    >>> import torch
    >>> whitened = pca_whiten(torch.randn(100, 8), 3)
    >>> whitened.shape, bool(torch.allclose(whitened.norm(dim=1), torch.ones(100)))
    (torch.Size([100, 3]), True)
    """
    if not torch.isfinite(features).all():
        raise ValueError("Features contain NaN or infinite values: the network diverged.")
    # Each dead unit adds a zero eigenvalue; hundreds of them repeated make LAPACK's eigh
    # fail to converge (seen on VGG16_bn after a few epochs of DeepCluster).
    varying = features.amax(dim=0) > features.amin(dim=0)
    if not varying.any():
        raise ValueError(
            "Every feature is constant across the images: the network collapsed. "
            "Lower the learning rate."
        )
    features = features[:, varying]
    n_components = min(n_components, features.shape[1])
    # Whitening ignores a global scale; dividing by the largest value first keeps the mean
    # and the float32 covariance of large activations from overflowing.
    features = features / features.abs().max()
    centered = features - features.mean(dim=0)
    # The n_features x n_features eigenproblem is small: solve it on the CPU in float64
    # (float64 is not on every accelerator), and project on the device.
    covariance = (centered.T @ centered).double().cpu() / len(features)
    variances, axes = torch.linalg.eigh(covariance)
    variances, axes = variances.flip(0)[:n_components], axes.flip(1)[:, :n_components]
    floor = max(_MIN_RELATIVE_VARIANCE * variances[0].item(), _MIN_VARIANCE)
    projection = (axes / variances.clamp(min=floor).sqrt()).to(features.device, features.dtype)
    return F.normalize(centered @ projection, dim=1)


def _nearest_centroid(x, centroids):
    """Index of each row's nearest centroid (squared Euclidean), in chunks of rows."""
    norms = centroids.square().sum(dim=1)
    rows = max(1, _DISTANCE_CELLS // len(centroids))
    # ||x||^2 is the same for every centroid, so it is left out of the argmin.
    return torch.cat([(norms - 2 * chunk @ centroids.T).argmin(dim=1) for chunk in x.split(rows)])


def _kmeans_plusplus(x, n_clusters, generator):
    """Greedy k-means++ seeding, as scikit-learn's: best of 2 + log(k) candidates per seed."""
    n_trials = 2 + int(math.log(n_clusters))
    first = torch.randint(len(x), (1,), generator=generator).to(x.device)
    centroids = x[first]
    closest = torch.cdist(x, centroids).square().view(-1)
    for _ in range(1, n_clusters):
        # The tiny floor draws uniformly once every point is a centroid (duplicates).
        weights = closest.double().cpu() + torch.finfo(torch.float64).tiny
        candidates = torch.multinomial(weights, n_trials, replacement=True, generator=generator)
        candidates = candidates.to(x.device)
        distances = torch.minimum(closest[:, None], torch.cdist(x, x[candidates]).square())
        best = distances.sum(dim=0).argmin()
        closest = distances[:, best]
        centroids = torch.cat((centroids, x[candidates[best]][None]))
    return centroids


def _split_empty_clusters(centroids, counts, generator):
    """Re-seed each empty cluster by splitting a large one in two, as faiss does (in place).

    The cluster split is drawn with probability proportional to its size minus one; its
    centroid and the empty one's become two slightly perturbed copies of it, and the
    next assignment step shares its points between them.
    """
    sign = torch.ones(centroids.shape[1], device=centroids.device)
    sign[1::2] = -1
    for empty in (counts == 0).nonzero().view(-1).tolist():
        weights = (counts - 1).clamp(min=0).double().cpu()
        donor = torch.multinomial(weights, 1, generator=generator).item()
        centroids[empty] = centroids[donor] * (1 + _SPLIT_EPS * sign)
        centroids[donor] = centroids[donor] * (1 - _SPLIT_EPS * sign)
        counts[empty] = counts[donor] // 2
        counts[donor] -= counts[empty]


def kmeans_torch(x, n_clusters, *, generator, max_iter=300):
    """Lloyd's k-means in torch on the device of `x`, seeded by k-means++.

    Empty clusters are re-seeded at each iteration by splitting a large cluster
    (faiss's rule, which DeepCluster relied on); iterations stop when no point changes
    cluster.

    Parameters
    ----------
    x : torch.Tensor of shape (n_samples, n_features)
        Float points, on any device; at least `n_clusters` of them.
    n_clusters : int
        Number of clusters.
    generator : torch.Generator
        CPU generator that draws the seeds and the splits.
    max_iter : int, default=300
        Most assignment steps after the seeding.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        Cluster of each point, int64.

    Examples
    --------
    >>> import torch
    >>> x = torch.cat((torch.zeros(5, 2), torch.ones(5, 2)))
    >>> kmeans_torch(x, 2, generator=torch.Generator().manual_seed(0))
    array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    """
    centroids = _kmeans_plusplus(x, n_clusters, generator)
    labels = _nearest_centroid(x, centroids)
    for _ in range(max_iter):
        counts = torch.bincount(labels, minlength=n_clusters)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
        _split_empty_clusters(centroids, counts, generator)
        previous, labels = labels, _nearest_centroid(x, centroids)
        if torch.equal(labels, previous):
            break
    return labels.cpu().numpy()


def balanced_sample(labels, n_samples, rng):
    """Indices of `n_samples` samples to which every non-empty cluster contributes equally.

    DeepCluster's sampler: each cluster gets ``n_samples / n_non_empty`` draws (the
    remainder going, one each, to clusters drawn at random), without replacement from a
    cluster large enough and with replacement from a smaller one. The quotas are exact,
    as the paper's sampler had them; the pseudo-label method's ``balanced_sampler``
    instead draws every image independently (see
    :meth:`~estimators.pseudolabel.TorchPseudoLabelClassifier._balanced_batches`).

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


# ---------------------------------------------------------------- the estimator


class DeepClusterClassifier(BaseTorchClusterer):
    """Cluster images by training a network on k-means clusters of its own features.

    The method of "Deep Clustering for Unsupervised Learning of Visual Features" (Caron
    et al., 2018). Every `reassign_every` epochs:

    1. features: the network's penultimate features (the input of its head's final
       linear layer) of every training image, without augmentation;
    2. clustering: PCA to `pca_dim` whitened components, L2 normalisation, k-means
       with `n_clusters` clusters; a cluster left empty gets half of the largest one
       (:func:`~estimators.clustering.rebalance_clusters`);
    3. the head's final linear layer is re-initialised (and its optimiser state
       dropped), since cluster ids carry no meaning from one clustering to the next.

    and every epoch trains the network with cross-entropy on the cluster ids, under
    augmentation, on images drawn so that every cluster contributes equally
    (:func:`balanced_sample`). Labels are never used: ``fit(X, y)`` and ``fit(X)`` train
    the same network.

    Parameters
    ----------
    arch : {"fast", "alexnet", "vgg16_bn", "resnet18"}, default="fast"
        Network architecture (see :mod:`estimators.architectures`).
    n_clusters : int, default=10
        Number of k-means clusters K, the width of the network's head.
    input : {"rgb", "sobel"}, default="rgb"
        Feed the images' own channels, or the 2 Sobel gradients of their grey levels
        (DeepCluster's choice).
    pca_dim : int, default=256
        Number of whitened principal components clustered; at most the number of
        features and of images.
    kmeans : {"auto", "torch", "sklearn"}, default="auto"
        k-means implementation: "torch" runs :func:`kmeans_torch` on the training
        device, "sklearn" runs :class:`sklearn.cluster.KMeans` on the CPU, "auto" picks
        "torch" on an accelerator and "sklearn" on the CPU.
    reassign_every : int, default=1
        Epochs between two clusterings (DeepCluster: 1).
    eval_set : (X, y) tuple, default=None
        Held-out images and their labels, clustered after every epoch to record
        ``eval_nmi``, ``eval_ari``, ``eval_acc`` and ``eval_empty_clusters`` in
        `history_`. Never trained on.
    upsample : float, default=None
        Enlarge images by this factor (bilinear) before the network; the study enlarges
        32x32 images to 64x64 for AlexNet (``upsample=2``).
    epochs : int, default=30
        Number of epochs.
    max_samples : int, default=None
        Train on at most this many of the images, drawn at random, as
        :class:`~estimators.TorchPseudoLabelClassifier` does; None trains on all.
    batch_size : int, default=128
        Images per optimiser step (and per forward pass when extracting features).
    lr : float, default=0.2
        Peak learning rate.
    momentum : float, default=0.9
        SGD momentum (other optimisers take theirs through ``optimizer__``).
    weight_decay : float, default=5e-4
        L2 penalty on every parameter.
    optimizer : {"sgd", "adam", "adamw"}, default="sgd"
        Optimiser; more of its arguments go through ``optimizer__``.
    lr_schedule : {"triangle", "cosine", "step", "constant"}, default="constant"
        Learning rate over training, updated after every batch (see
        :class:`~estimators.cnn.TorchCNNClassifier`). A decaying rate starves the late
        epochs' freshly initialised heads, and with them the head that predicts.
    lr_milestones : list of int, default=None
        Epochs (counted from 0) at which the "step" schedule decays the learning rate.
    lr_gamma : float, default=0.1
        Factor of each "step" decay.
    label_smoothing : float, default=0.0
        Share of each cluster id's probability spread evenly over the clusters.
    augment : bool, default=True
        Augment training images (tuned through ``augment__``); features for k-means are
        always extracted without augmentation.
    device : str or torch.device, default="auto"
        Device to train on; "auto" picks CUDA, then MPS, then the CPU.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Arithmetic of training and inference. "auto" uses bfloat16 autocast (with
        channels-last tensors) where the device computes bfloat16 natively (CUDA from
        Ampere on; CPUs with AMX or AVX512_BF16) and the network's input is at least 32x32,
        below which casting costs more than it saves; float32 elsewhere.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout, k-means, sampling and augmentation.
    checkpoint_dir : str or path-like, default=None
        Folder to save a checkpoint to after every epoch; a fit finding one of the same
        parameters and data there resumes it.
    callbacks : list of Callback, default=None
        Extra callbacks (:class:`estimators.training.Callback`).
    verbose : int, default=1
        Show a progress bar over epochs (on a terminal only); 0 hides it.
    **routed : dict
        Parameters of the network (``module__``), optimiser (``optimizer__``), loss
        (``criterion__``) and augmentation (``augment__``), routed by prefix.

    Attributes
    ----------
    labels_ : ndarray of shape (n_images,)
        Cluster of each training image under the trained network and head: what
        :meth:`predict` gives for the training images.
    n_features_in_ : int
        Number of values per image (height x width x channels).
    image_shape_ : tuple of int
        Shape (height, width, channels) of the training images.
    module_ : estimators.architectures.LayeredNetwork
        The trained network.
    history_ : estimators.training.History
        One record per epoch: ``epoch``, ``loss`` and ``accuracy`` (agreement with the
        cluster ids, on augmented images), ``sizes_before`` and ``sizes_after`` (images
        per k-means cluster before and after re-seeding), ``n_empty_before`` (clusters
        k-means left empty), ``nmi_previous`` (NMI between this epoch's clusters and
        the previous epoch's: NaN at the first epoch, 1 between reclusterings), ``lr``,
        ``seconds``, and the ``eval_*`` scores when `eval_set` is given.
    stop_reason_ : str
        Why training stopped: "max_epochs", or the reason a callback gave.
    device_ : torch.device
        The device trained on.

    See Also
    --------
    estimators.pseudolabel.TorchPseudoLabelClassifier : Pseudo-labels from the network's
        own argmax instead of k-means.
    features.DeepFeatures : The trained network's activations, for classical models.

    Notes
    -----
    :meth:`predict` takes the argmax of the trained head. The head was trained (for
    `reassign_every` epochs) on the last k-means clusters, so it gives their ids, and
    it needs no PCA or centroids kept from training; the last k-means clusters are the
    targets of the last epoch, not an output of the trained network.

    DeepCluster's settings (the ``paper`` profile) are ``optimizer="sgd",
    momentum=0.9, batch_size=256, weight_decay=1e-5, lr=0.05,
    lr_schedule="constant", input="sobel", pca_dim=256``, with AlexNet and K = 10 x the
    number of classes; the defaults are tuned for the ``fast`` network on small images.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> digits = load_digits()
    >>> X = np.rint(digits.images * 255 / 16).astype(np.uint8)[..., None]
    >>> deepcluster = DeepClusterClassifier(epochs=2, module__widths=(16, 32, 32),
    ...                                     verbose=0, random_state=0).fit(X[:200])
    >>> deepcluster.labels_.shape, deepcluster.predict(X[:3]).shape
    ((200,), (3,))
    """

    _parameter_constraints = {
        **BaseTorchClusterer._parameter_constraints,
        "pca_dim": [Interval(Integral, 1, None, closed="left")],
        "kmeans": [StrOptions({"auto", "torch", "sklearn"})],
        "reassign_every": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        arch="fast",
        n_clusters=10,
        *,
        input="rgb",
        pca_dim=256,
        kmeans="auto",
        reassign_every=1,
        eval_set=None,
        upsample=None,
        epochs=30,
        max_samples=None,
        batch_size=128,
        lr=0.2,
        momentum=0.9,
        weight_decay=5e-4,
        optimizer="sgd",
        lr_schedule="constant",
        lr_milestones=None,
        lr_gamma=0.1,
        label_smoothing=0.0,
        augment=True,
        device="auto",
        precision="auto",
        random_state=None,
        checkpoint_dir=None,
        callbacks=None,
        verbose=1,
        **routed,
    ):
        super().__init__(
            arch,
            input=input,
            upsample=upsample,
            epochs=epochs,
            max_samples=max_samples,
            batch_size=batch_size,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            optimizer=optimizer,
            lr_schedule=lr_schedule,
            lr_milestones=lr_milestones,
            lr_gamma=lr_gamma,
            label_smoothing=label_smoothing,
            augment=augment,
            device=device,
            precision=precision,
            random_state=random_state,
            checkpoint_dir=checkpoint_dir,
            callbacks=callbacks,
            verbose=verbose,
            **routed,
        )
        self.n_clusters = n_clusters
        self.pca_dim = pca_dim
        self.kmeans = kmeans
        self.reassign_every = reassign_every
        self.eval_set = eval_set

    # ---------------------------------------------------------------- the loop

    def initialize(self, data, n_outputs):
        """Build every component of training, then forget any clusters of an earlier fit."""
        super().initialize(data, n_outputs)
        self._assignments = None

    def run_epoch(self, data, targets, epoch):
        """Recluster (every `reassign_every` epochs), then train for one epoch on the clusters.

        Parameters
        ----------
        data : torch.Tensor of shape (n_images, height, width, channels)
            Training images, on the CPU.
        targets : None
            Unused: the cluster ids are made here.
        epoch : int
            Index of the epoch, from 0.

        Returns
        -------
        record : dict
            Training ``loss`` and ``accuracy`` against the cluster ids, and the
            clustering's ``sizes_before``, ``sizes_after``, ``n_empty_before`` and
            ``nmi_previous``.
        """
        if epoch % self.reassign_every == 0:
            clustering = self._recluster(data)
        else:
            sizes = cluster_sizes(self._assignments, self.n_clusters).tolist()
            clustering = {
                "sizes_before": sizes,
                "sizes_after": sizes,
                "n_empty_before": 0,
                "nmi_previous": 1.0,
            }
        record = super().run_epoch(data, torch.from_numpy(self._assignments), epoch)
        return {**record, **clustering}

    def _recluster(self, data):
        """Cluster the training images' features, re-seed, and reset the head."""
        features = penultimate_features(self, data.numpy()).to(self.device_)
        n_components = min(self.pca_dim, *features.shape)
        raw = self._kmeans(pca_whiten(features, n_components))
        labels = rebalance_clusters(raw, self.n_clusters, self._rng)
        previous, self._assignments = self._assignments, labels
        self._reset_head()
        sizes_before = cluster_sizes(raw, self.n_clusters)
        return {
            "sizes_before": sizes_before.tolist(),
            "sizes_after": cluster_sizes(labels, self.n_clusters).tolist(),
            "n_empty_before": int((sizes_before == 0).sum()),
            "nmi_previous": (
                math.nan
                if previous is None
                else float(normalized_mutual_info_score(previous, labels))
            ),
        }

    def _kmeans(self, features):
        seed = int(self._rng.integers(np.iinfo(np.int32).max))
        backend = self.kmeans
        if backend == "auto":
            backend = "sklearn" if self.device_.type == "cpu" else "torch"
        if backend == "torch":
            generator = torch.Generator().manual_seed(seed)
            return kmeans_torch(features, self.n_clusters, generator=generator)
        kmeans = KMeans(self.n_clusters, random_state=seed)
        return kmeans.fit_predict(features.cpu().numpy()).astype(np.int64)

    def _reset_head(self):
        """Re-initialise the final linear layer and drop its optimiser state (momentum)."""
        linear = final_linear(self.module_)
        linear.reset_parameters()
        for parameter in linear.parameters():
            self.optimizer_.state.pop(parameter, None)

    def _batches(self, n_images):
        """The epoch's batches: a cluster-balanced sample of images, shuffled."""
        sample = torch.from_numpy(balanced_sample(self._assignments, n_images, self._rng))
        return [sample[index] for index in super()._batches(n_images)]

    # ---------------------------------------------------------------- checkpoints

    def checkpoint_state(self):
        """The base state, plus the clusters being trained on."""
        return {**super().checkpoint_state(), "assignments": torch.from_numpy(self._assignments)}

    def load_checkpoint_state(self, state):
        """Restore what :meth:`checkpoint_state` saved."""
        super().load_checkpoint_state(state)
        self._assignments = state["assignments"].numpy()
