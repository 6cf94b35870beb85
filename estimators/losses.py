"""Losses of contrastive pretraining and neighbour clustering: SimCLR and SCAN.

- :func:`nt_xent`, SimCLR's loss: two views of an image should be nearer each other than
  any other view of the batch (Chen et al. 2020);
- :func:`scan_loss`, SCAN's clustering loss: an image and its mined neighbours should get the
  same cluster, and the batch should spread over every cluster (Van Gansbeke et al. 2020);
- :func:`self_labelling_loss`, SCAN's last step: confident predictions on a weak view teach a
  strong view, each class weighted against its frequency (:func:`confident_targets`,
  :func:`class_balancing_weights`);
- :class:`BalancedCrossEntropy`, cross-entropy on pseudo-labels minus the entropy of the
  batch's mean assignment, which keeps every cluster in use (IIC, SCAN).

Each works in float32, whatever the dtype of its inputs or an enclosing autocast, since
softmax, logarithms and sums of many small terms lose too much in bfloat16.
"""

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

# Smallest probability a logarithm sees: SCAN's own clamp.
EPS = 1e-8


def _float32(tensor):
    """`tensor` as float32, and a context in which autocast leaves float32 alone."""
    no_autocast = (
        torch.autocast(device_type=tensor.device.type, enabled=False)
        if tensor.device.type in ("cpu", "cuda")
        else contextlib.nullcontext()
    )
    return tensor.float(), no_autocast


def nt_xent(z1, z2, temperature=0.5):
    """SimCLR's normalized temperature-scaled cross-entropy (NT-Xent).

    The 2N embeddings are L2-normalised; each view's positive is the other view of its
    image and the other 2N - 2 views are its negatives. The loss of a view is the
    cross-entropy of its cosine similarities divided by `temperature`, with its positive as
    the target; the result is the mean over the 2N views.

    Parameters
    ----------
    z1, z2 : torch.Tensor of shape (n_pairs, n_dims)
        Embeddings (projection-head outputs) of the first and second view of each image.
    temperature : float, default=0.5
        Divides the cosine similarities; smaller values weigh the hardest negatives more.

    Returns
    -------
    loss : torch.Tensor
        Float32 scalar.

    Examples
    --------
    >>> import torch
    >>> z = torch.eye(4)
    >>> bool(nt_xent(z, z) < nt_xent(z, z.roll(1, dims=0)))
    True
    """
    n_pairs = z1.shape[0]
    z, no_autocast = _float32(torch.cat([z1, z2]))
    with no_autocast:
        z = F.normalize(z, dim=1)
        logits = z @ z.T / temperature
        # A view is neither its own positive nor its own negative.
        logits = logits.masked_fill(torch.eye(2 * n_pairs, dtype=torch.bool,
                                              device=z.device), float("-inf"))
        positives = torch.arange(2 * n_pairs, device=z.device).roll(n_pairs)
        return F.cross_entropy(logits, positives)


def mean_assignment_entropy(probabilities):
    """Entropy of the mean cluster assignment of a batch, in nats.

    Parameters
    ----------
    probabilities : torch.Tensor of shape (n_images, n_clusters)
        Each image's cluster probabilities.

    Returns
    -------
    entropy : torch.Tensor
        Scalar, between 0 (every image in one cluster) and ``log(n_clusters)`` (a uniform
        mean assignment).

    Examples
    --------
    >>> import math, torch
    >>> round(float(mean_assignment_entropy(torch.eye(3))) - math.log(3), 6)
    0.0
    """
    mean = probabilities.mean(dim=0).clamp(min=EPS)
    return -(mean * mean.log()).sum()


def scan_loss(anchor_logits, neighbour_logits, entropy_weight=5.0):
    """SCAN's clustering loss, as its public code (``SCANLoss``) defines it.

    Parameters
    ----------
    anchor_logits : torch.Tensor of shape (n_images, n_clusters)
        Cluster logits of the images.
    neighbour_logits : torch.Tensor of shape (n_images, n_clusters)
        Cluster logits of one mined neighbour of each image.
    entropy_weight : float, default=5.0
        Weight of the entropy of the mean assignment (SCAN's CIFAR-10 setting).

    Returns
    -------
    total : torch.Tensor
        ``consistency - entropy_weight * entropy``, the scalar to minimise.
    consistency : torch.Tensor
        Mean over the images of ``-log <p_image, p_neighbour>``, the dot product clamped to at
        least 1e-8.
    entropy : torch.Tensor
        :func:`mean_assignment_entropy` of the images' probabilities; maximising it keeps
        every cluster in use.

    Examples
    --------
    >>> import torch
    >>> logits = torch.tensor([[9.0, 0.0], [0.0, 9.0]])
    >>> total, consistency, entropy = scan_loss(logits, logits)
    >>> round(float(consistency), 3), round(float(entropy), 3)
    (0.0, 0.693)
    """
    anchor_logits, no_autocast = _float32(anchor_logits)
    with no_autocast:
        anchor_probabilities = anchor_logits.softmax(dim=1)
        neighbour_probabilities = neighbour_logits.float().softmax(dim=1)
        similarity = (anchor_probabilities * neighbour_probabilities).sum(dim=1)
        consistency = -similarity.clamp(min=EPS).log().mean()
        entropy = mean_assignment_entropy(anchor_probabilities)
        return consistency - entropy_weight * entropy, consistency, entropy


def confident_targets(weak_logits, threshold=0.99):
    """Self-labelling targets: each image's most probable cluster, and whether it is sure.

    Parameters
    ----------
    weak_logits : torch.Tensor of shape (n_images, n_clusters)
        Cluster logits of a weakly augmented view of each image.
    threshold : float, default=0.99
        A prediction is confident where its largest probability is above `threshold`.

    Returns
    -------
    targets : torch.Tensor of shape (n_images,)
        Int64 argmax of each row, with no gradient.
    confident : torch.Tensor of shape (n_images,)
        Bool, true where the largest probability is strictly above `threshold`.

    Examples
    --------
    >>> import torch
    >>> targets, confident = confident_targets(torch.tensor([[0.0, 9.0], [1.0, 0.0]]))
    >>> targets.tolist(), confident.tolist()
    ([1, 0], [True, False])
    """
    with torch.no_grad():
        weak_logits, no_autocast = _float32(weak_logits)
        with no_autocast:
            largest_probability, targets = weak_logits.softmax(dim=1).max(dim=1)
    return targets, largest_probability > threshold


def class_balancing_weights(targets, n_classes):
    """Inverse frequency of each class among `targets`, 1 for a class absent from them.

    Parameters
    ----------
    targets : torch.Tensor of shape (n_targets,)
        Int64 class of each target; at least one.
    n_classes : int
        Number of classes.

    Returns
    -------
    weights : torch.Tensor of shape (n_classes,)
        Float32 ``n_targets / count`` of each present class (SCAN's ``ConfidenceBasedCE`` with
        ``apply_class_balancing=True``).

    Examples
    --------
    >>> import torch
    >>> class_balancing_weights(torch.tensor([0, 1, 1, 1, 1]), 3).tolist()
    [5.0, 1.25, 1.0]
    """
    classes, counts = torch.unique(targets, return_counts=True)
    weights = torch.ones(n_classes, device=targets.device)
    weights[classes] = len(targets) / counts.float()
    return weights


def self_labelling_loss(weak_logits, strong_logits, threshold=0.99):
    """SCAN's self-labelling loss: confident weak-view predictions are strong-view targets.

    The cross-entropy of the strong view's logits against :func:`confident_targets`, over the
    confident images only, weighted by :func:`class_balancing_weights` of those targets
    (a weighted mean, as ``torch.nn.functional.cross_entropy`` takes it).

    Parameters
    ----------
    weak_logits : torch.Tensor of shape (n_images, n_clusters)
        Cluster logits of a weakly augmented view; they give targets, not gradients.
    strong_logits : torch.Tensor of shape (n_images, n_clusters)
        Cluster logits of a strongly augmented view of the same images.
    threshold : float, default=0.99
        Confidence above which a weak-view prediction becomes a target.

    Returns
    -------
    loss : torch.Tensor
        Float32 scalar; 0, still attached to `strong_logits`' graph, where no prediction is
        confident (SCAN's code raises instead).
    confident : torch.Tensor of shape (n_images,)
        Bool, true for the images whose weak view gave a target.

    Examples
    --------
    >>> import torch
    >>> weak = torch.tensor([[9.0, 0.0], [0.0, 0.0]])
    >>> loss, confident = self_labelling_loss(weak, torch.zeros(2, 2))
    >>> round(float(loss), 6), confident.tolist()
    (0.693147, [True, False])
    """
    targets, confident = confident_targets(weak_logits, threshold)
    strong_logits, no_autocast = _float32(strong_logits)
    if not confident.any():
        return strong_logits.sum() * 0.0, confident
    targets = targets[confident]
    with no_autocast:
        weights = class_balancing_weights(targets, strong_logits.shape[1])
        loss = F.cross_entropy(strong_logits[confident], targets, weight=weights)
    return loss, confident


class BalancedCrossEntropy(nn.Module):
    """Cross-entropy on pseudo-labels minus `entropy_weight` times the batch's assignment entropy.

    A network trained on its own pseudo-labels can put every image in a few clusters and
    still fit them; subtracting the entropy of the batch's mean cluster probabilities
    (:func:`mean_assignment_entropy`, maximal when every cluster is equally used) pushes
    it to use them all: IIC's marginal entropy term (Ji et al. 2019) and SCAN's (Van
    Gansbeke et al. 2020), here beside the pseudo-label method's cross-entropy.

    Parameters
    ----------
    entropy_weight : float, default=1.0
        Weight of the entropy term; 0 leaves plain cross-entropy.
    label_smoothing : float, default=0.0
        As :class:`torch.nn.CrossEntropyLoss` takes it.

    Examples
    --------
    >>> import torch
    >>> loss = BalancedCrossEntropy(entropy_weight=1.0)
    >>> one_cluster = torch.tensor([[9.0, 0.0], [9.0, 0.0]])
    >>> both = torch.tensor([[9.0, 0.0], [0.0, 9.0]])
    >>> bool(loss(one_cluster, torch.tensor([0, 0])) > loss(both, torch.tensor([0, 1])))
    True
    """

    def __init__(self, entropy_weight=1.0, label_smoothing=0.0):
        super().__init__()
        self.entropy_weight = entropy_weight
        self.label_smoothing = label_smoothing

    def forward(self, logits, targets):
        """The batch's loss, in float32.

        Parameters
        ----------
        logits : torch.Tensor of shape (n_images, n_clusters)
            Cluster scores.
        targets : torch.Tensor of shape (n_images,)
            Pseudo-label of each image.

        Returns
        -------
        loss : torch.Tensor
            Scalar.
        """
        logits, no_autocast = _float32(logits)
        with no_autocast:
            loss = F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
            if not self.entropy_weight:
                return loss
            entropy = mean_assignment_entropy(logits.softmax(dim=1))
            return loss - self.entropy_weight * entropy
