"""Contrastive self-supervised pretraining (SimCLR) as a scikit-learn transformer.

Every training step draws two random augmentations of each image of a batch, maps both
through the network and a projection head, and trains with NT-Xent
(:func:`~estimators.losses.nt_xent`): each view must find its twin among all the batch's
views. The estimator is one layer of the shared training loop
(:mod:`estimators.training`): it overrides the module (a
:class:`~estimators.architectures.ContrastiveNetwork`) and the training step, and keeps the
loop's checkpoints, resuming, progress bar, bfloat16 and seeding.
"""

import functools
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted
from torch.nn import functional as F

from .architectures import ContrastiveNetwork
from .losses import nt_xent
from .training import BaseTorchEstimator

# SimCLR's augmentation for CIFAR-10 (Chen et al. 2020, appendix B.9, as SCAN's pretext code
# runs it): a crop of 20% to 100% of the image resized back, a flip, colour jitter of
# strength 0.4 (hue 0.1) four times in five, grey one time in five.
SIMCLR_AUGMENTATION = {
    "brightness": (0.6, 1.4), "contrast": (0.6, 1.4), "saturation": (0.6, 1.4),
    "hue": (-0.1, 0.1), "jitter_p": 0.8, "grey_p": 0.2, "flip_p": 0.5, "crop_p": 1.0,
    "crop_scale": (0.2, 1.0),
}


class TorchContrastiveEncoder(TransformerMixin, BaseTorchEstimator):
    """Learn image features without labels by contrasting augmented views (SimCLR).

    The method of "A Simple Framework for Contrastive Learning of Visual Representations"
    (Chen et al., 2020). Each step augments every image of a batch twice (random resized
    crop, flip, colour jitter, grey; drawn per image, on the training device), passes the
    2N views through the network and a two-layer projection head, and minimises NT-Xent:
    the cross-entropy of each view's cosine similarities to the other 2N - 1 views, divided
    by `temperature`, with its twin as the target. :meth:`transform` returns the L2-normalised
    representation (the projection head's input): the features SimCLR's kNN evaluation and
    SCAN's neighbour mining compare by cosine. The deep-feature plug-in
    (:class:`features.DeepFeatures` with ``layer=None``) and linear probes read the same
    representation unnormalised (``penultimate_features``), then reduce or standardise it.

    Labels are never used: ``fit(X, y)`` and ``fit(X)`` train the same network.

    Parameters
    ----------
    arch : {"fast", "alexnet", "vgg16_bn", "resnet18"}, default="fast"
        Network architecture (see :mod:`estimators.architectures`); its classifier's final
        linear layer is replaced by the projection head.
    input : {"rgb", "sobel"}, default="rgb"
        Feed the images' own channels, or the 2 Sobel gradients of their grey levels.
    projection_dim : int, default=128
        Width of the projection head's output, where views are compared.
    projection_hidden : int, default=None
        Width of the projection head's hidden layer; None: the representation's width.
    temperature : float, default=0.2
        Temperature of NT-Xent.
    upsample : float, default=None
        Enlarge images by this factor (bilinear) before the network.
    epochs : int, default=100
        Number of epochs.
    max_samples : int, default=None
        Train on at most this many of the images given to `fit`, drawn at random (seeded
        by `random_state`); None trains on all.
    batch_size : int, default=256
        Images per optimiser step (each seen twice), and per forward pass in
        :meth:`transform`.
    lr : float, default=0.4
        Peak learning rate.
    momentum : float, default=0.9
        SGD momentum (other optimisers take theirs through ``optimizer__``).
    weight_decay : float, default=5e-4
        L2 penalty on every parameter.
    optimizer : {"sgd", "adam", "adamw"}, default="sgd"
        Optimiser; more of its arguments go through ``optimizer__``.
    lr_schedule : {"triangle", "cosine", "step", "constant"}, default="cosine"
        Learning rate over training, updated after every batch (see
        :class:`~estimators.cnn.TorchCNNClassifier`).
    lr_milestones : list of int, default=None
        Epochs (counted from 0) at which the "step" schedule decays the learning rate.
    lr_gamma : float, default=0.1
        Factor of each "step" decay.
    augment : bool, default=True
        Augment the views; SimCLR's policy (:data:`SIMCLR_AUGMENTATION`), tuned through
        ``augment__``. Without augmentation the two views are the same image.
    device : str or torch.device, default="auto"
        Device to train on; "auto" picks CUDA, then MPS, then the CPU.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Arithmetic of training and inference (see
        :class:`~estimators.TorchPseudoLabelClassifier`); the loss is always float32.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling and augmentation.
    checkpoint_dir : str or path-like, default=None
        Folder to save a checkpoint to after every epoch; a fit finding one of the same
        parameters and data there resumes it.
    callbacks : list of Callback, default=None
        Extra callbacks (:class:`estimators.training.Callback`).
    verbose : int, default=1
        Show a progress bar over epochs (on a terminal only); 0 hides it.
    **routed : dict
        Parameters of the network (``module__``), optimiser (``optimizer__``) and
        augmentation (``augment__``), routed by prefix.

    Attributes
    ----------
    module_ : estimators.architectures.ContrastiveNetwork
        The trained network and projection head.
    history_ : estimators.training.History
        One record per epoch: ``epoch``, ``loss`` (NT-Xent), ``accuracy`` (share of images
        whose first view's most similar other view is their second), ``lr``, ``seconds``.
    n_features_in_ : int
        Number of values per image (height x width x channels).
    image_shape_ : tuple of int
        Shape (height, width, channels) of the training images.
    stop_reason_ : str
        Why training stopped: "max_epochs", or the reason a callback gave.
    device_ : torch.device
        The device trained on.

    See Also
    --------
    estimators.scan.TorchNeighbourClusterer : Clusters images by their neighbours in this
        encoder's feature space.
    estimators.neighbours.weighted_knn_accuracy : The usual measure of such features.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> digits = load_digits()
    >>> X = np.rint(digits.images * 255 / 16).astype(np.uint8)[..., None]
    >>> encoder = TorchContrastiveEncoder(epochs=1, batch_size=64, module__widths=(8, 16, 16),
    ...                                   verbose=0, random_state=0).fit(X[:128])
    >>> features = encoder.transform(X[:5])
    >>> features.shape, bool(np.allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5))
    ((5, 16), True)
    """

    _parameter_constraints = {
        **BaseTorchEstimator._parameter_constraints,
        "projection_dim": [Interval(Integral, 1, None, closed="left")],
        "projection_hidden": [Interval(Integral, 1, None, closed="left"), None],
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }
    _augment_defaults = SIMCLR_AUGMENTATION
    _routed_prefixes = ("module", "optimizer", "augment")

    def __init__(
        self,
        arch="fast",
        *,
        input="rgb",
        projection_dim=128,
        projection_hidden=None,
        temperature=0.2,
        upsample=None,
        epochs=100,
        max_samples=None,
        batch_size=256,
        lr=0.4,
        momentum=0.9,
        weight_decay=5e-4,
        optimizer="sgd",
        lr_schedule="cosine",
        lr_milestones=None,
        lr_gamma=0.1,
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
            augment=augment,
            device=device,
            precision=precision,
            random_state=random_state,
            checkpoint_dir=checkpoint_dir,
            callbacks=callbacks,
            verbose=verbose,
            **routed,
        )
        self.projection_dim = projection_dim
        self.projection_hidden = projection_hidden
        self.temperature = temperature

    def fit(self, X, y=None):
        """Train the network to tell each image's augmented views from the others'.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels) or (n_images, n_features)
            Training images: uint8 in [0, 255] or floats in [0, 1] (grey images may omit
            the channel axis); or rows of features.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : TorchContrastiveEncoder
            The trained encoder.
        """
        self._check_params()
        images = self._validate_images(X, reset=True)
        # Each image is its own class: its index identifies it in every batch.
        self._fit(images, np.arange(len(images)), n_outputs=self.projection_dim)
        return self

    def transform(self, X):
        """The L2-normalised representation of each image (the projection head's input).

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels) or (n_images, n_features)
            Images of the shape seen in `fit`.

        Returns
        -------
        features : ndarray of shape (n_images, n_features)
            Float32 rows of unit length.
        """
        check_is_fitted(self)
        features = self.penultimate_features(self._validate_images(X, reset=False))
        return F.normalize(features, dim=1).numpy()

    def initialize_module(self, data, n_outputs):
        """Build the network as the base does, then put the projection head on it."""
        super().initialize_module(data, n_outputs)
        network = ContrastiveNetwork(self.module_, self.projection_dim, self.projection_hidden)
        self.module_ = network.to(self.device_, memory_format=self._memory_format)

    def initialize_criterion(self):
        """Build ``criterion_``: NT-Xent at `temperature`, of the two views' projections."""
        self.criterion_ = functools.partial(nt_xent, temperature=self.temperature)

    def batch_loss(self, batch, identities):
        """NT-Xent of two augmented views of each image of a batch.

        Parameters
        ----------
        batch : torch.Tensor of shape (batch_size, height, width, channels)
            Images, on the CPU.
        identities : torch.Tensor of shape (batch_size,)
            Index of each image (unused: an image's twin is its other view).

        Returns
        -------
        loss : torch.Tensor
            The batch's NT-Xent (a scalar on the device).
        n_correct : torch.Tensor
            How many images' first view is most similar to their second view.
        """
        # Both views in one call: one pass of the augmentation and of the network.
        inputs = self._inputs(torch.cat([batch, batch]), train=True)
        with self._autocast():
            projections = self.module_(inputs)
        first, second = projections.float().chunk(2)
        return self.criterion_(first, second), _twins_found(projections.detach().float())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


def _twins_found(projections):
    """How many of N first views (then N second ones) are most similar to their twin."""
    n_images = len(projections) // 2
    z = F.normalize(projections, dim=1)
    similarity = (z[:n_images] @ z.T).fill_diagonal_(float("-inf"))
    twins = torch.arange(n_images, 2 * n_images, device=z.device)
    return (similarity.argmax(dim=1) == twins).sum()
