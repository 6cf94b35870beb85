"""k-means for DeepCluster's targets: PCA whitening, then k-means in torch or scikit-learn.

:func:`pca_whiten` is DeepCluster's preprocessing of the network's features;
:func:`kmeans_torch` is Lloyd's k-means on any torch device, seeded by k-means++ and
re-seeding empty clusters by faiss's rule (DeepCluster clustered with faiss);
:func:`kmeans_labels` runs it, or :class:`sklearn.cluster.KMeans` on the CPU.
"""

import math

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch.nn import functional as F

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


def kmeans_labels(x, n_clusters, *, backend="auto", seed):
    """k-means clusters of points, by :func:`kmeans_torch` or scikit-learn's KMeans.

    Parameters
    ----------
    x : torch.Tensor of shape (n_samples, n_features)
        Float points, on any device.
    n_clusters : int
        Number of clusters.
    backend : {"auto", "torch", "sklearn"}, default="auto"
        "torch" clusters on the device of `x`, "sklearn" on the CPU; "auto" picks
        "sklearn" for points on the CPU and "torch" for points on an accelerator.
    seed : int
        Seeds the clustering.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        Cluster of each point (int64), as the backend numbers them.

    Examples
    --------
    >>> import torch
    >>> points = torch.tensor([[0.0], [0.1], [5.0], [5.2]])
    >>> labels = kmeans_labels(points, 2, seed=0)
    >>> bool(labels[0] == labels[1] != labels[2] == labels[3])
    True
    """
    if backend == "auto":
        backend = "sklearn" if x.device.type == "cpu" else "torch"
    if backend == "torch":
        return kmeans_torch(x, n_clusters, generator=torch.Generator().manual_seed(seed))
    kmeans = KMeans(n_clusters, random_state=seed)
    return kmeans.fit_predict(x.cpu().numpy()).astype(np.int64)
