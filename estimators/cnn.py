"""Supervised CNN classifier: a torch network trained with cross-entropy, as an estimator."""

from numbers import Integral

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .samplers import n_batches
from .training import BaseTorchEstimator

# airbench's lookahead: slow weights from the fourth epoch, updated every 5 steps at a decay
# of 0.95 a step, weighted by the cube of the share of training done.
_LOOKAHEAD_START_EPOCHS = 3
_LOOKAHEAD_EVERY = 5
_LOOKAHEAD_DECAY = 0.95
_LOOKAHEAD_POWER = 3


class TorchCNNClassifier(ClassifierMixin, BaseTorchEstimator):
    """A convolutional network trained on labelled images with softmax cross-entropy.

    Images go through random augmentation (training only), standardisation, optional
    Sobel gradients and upsampling, then the network. The defaults train the ``fast``
    network well in a few epochs; the study's settings (the ``paper`` profile) are
    ``optimizer="sgd", momentum=0.9, batch_size=256, weight_decay=1e-4,
    module__dropout=0.5, lr=1e-4, epochs=500, lr_schedule="step", lr_milestones=[400],
    lr_gamma=0.1, label_smoothing=0.0``.

    Parameters
    ----------
    arch : {"fast", "alexnet", "vgg16_bn", "resnet18"}, default="fast"
        Network architecture (see :mod:`estimators.architectures`).
    input : {"rgb", "sobel"}, default="rgb"
        Feed the images' own channels, or the 2 Sobel gradients of their grey levels.
    upsample : float, default=None
        Enlarge images by this factor (bilinear) before the network; the study enlarges
        32x32 images to 64x64 for AlexNet (``upsample=2``).
    epochs : int, default=20
        Number of passes over the training images.
    max_samples : int, default=None
        Train on at most this many of the images given to `fit`, drawn at random
        (seeded by `random_state`), to bound the cost of training on a large set, as
        :class:`~sklearn.ensemble.RandomForestClassifier`'s ``max_samples`` does; None
        trains on all. ``train_indices_`` lists the images drawn.
    batch_size : int, default=256
        Images per optimiser step (and per forward pass when predicting).
    lr : float, default=0.2
        Peak learning rate.
    momentum : float, default=0.9
        SGD momentum (other optimisers take theirs through ``optimizer__``).
    weight_decay : float, default=5e-4
        L2 penalty on every parameter.
    optimizer : {"sgd", "adam", "adamw"}, default="sgd"
        Optimiser; more of its arguments go through ``optimizer__`` (for instance
        ``optimizer__nesterov=True``).
    lr_schedule : {"triangle", "cosine", "step", "constant"}, default="triangle"
        Learning rate over training, updated after every batch. "triangle" rises from
        0.2 `lr` to `lr` over the first 23% of steps, then falls linearly to 0;
        "cosine" falls from `lr` to 0; "step" multiplies `lr` by `lr_gamma` at each
        epoch of `lr_milestones`.
    lr_milestones : list of int, default=None
        Epochs (counted from 0) at which the "step" schedule decays the learning rate.
    lr_gamma : float, default=0.1
        Factor of each "step" decay.
    label_smoothing : float, default=0.2
        Share of each target's probability spread evenly over the classes.
    augment : bool, default=True
        Augment training images: colour jitter, horizontal flip, random resized crop
        (:class:`features.augment.RandomAugment`, tuned through ``augment__``).
    tta_flip : bool, default=True
        Predict from the mean of the logits of each image and of its mirror image.
    tta_shift : int, default=0
        Where above 0, predict from the mean of those logits (or the image's alone) and
        of the same for the image moved by this many pixels diagonally, once down-right
        and once up-left (mirrored at its borders), each half the weight: airbench's
        test-time augmentation with 1.
    lookahead : bool, default=False
        airbench's lookahead: from the fourth epoch on, every 5 optimiser steps, slow
        weights (batch-norm statistics included) move towards the network's, by a share
        that shrinks as training goes on (``1 - 0.95**5 * (step / steps) ** 3``), and the
        network takes them; after every epoch the network takes the slow weights again.
    device : str or torch.device, default="auto"
        Device to train on; "auto" picks CUDA, then MPS, then the CPU.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Arithmetic of training and inference. "auto" uses bfloat16 autocast (with
        channels-last tensors) where the device computes bfloat16 natively (CUDA from
        Ampere on; CPUs with AMX or AVX512_BF16) and the network's input is at least 32x32,
        below which casting costs more than it saves; float32 elsewhere.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout, shuffling and augmentation. On one CPU
        machine, one seed gives the same result every time.
    checkpoint_dir : str or path-like, default=None
        Folder to save a checkpoint to after every epoch. A fit finding a checkpoint of
        the same parameters and data there resumes it.
    callbacks : list of Callback, default=None
        Extra callbacks (:class:`estimators.training.Callback`), run after the built-in
        timer, progress bar and checkpoint.
    verbose : int, default=1
        Show a progress bar over epochs (on a terminal only); 0 hides it.
    **routed : dict
        Parameters of the network (``module__dropout``, ``module__widths``...), the
        optimiser (``optimizer__``), the loss (``criterion__``) and the augmentation
        (``augment__``), routed by prefix.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    n_features_in_ : int
        Number of values per image (height x width x channels).
    image_shape_ : tuple of int
        Shape (height, width, channels) of the training images; a 2-d X gives
        (1, n_features, 1).
    module_ : estimators.architectures.LayeredNetwork
        The trained network.
    history_ : estimators.training.History
        One record per epoch: ``epoch``, ``loss``, ``accuracy`` (both on augmented
        training batches), ``lr`` (at the epoch's start) and ``seconds``.
    stop_reason_ : str
        Why training stopped: "max_epochs", or the reason a callback gave.
    device_ : torch.device
        The device trained on.

    See Also
    --------
    estimators.architectures.build_network : The networks.
    estimators.training.BaseTorchEstimator : The training loop.

    Notes
    -----
    On CUDA, training runs in bfloat16 autocast with channels-last tensors. A 2-d X (rows
    of features) is read as one-row grey images, so that the estimator passes
    scikit-learn's checks; turn `augment` and `tta_flip` off for such data.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> digits = load_digits()
    >>> X = np.rint(digits.images * 255 / 16).astype(np.uint8)[..., None]
    >>> clf = TorchCNNClassifier(epochs=2, module__widths=(16, 32, 32), verbose=0,
    ...                          random_state=0).fit(X[:200], digits.target[:200])
    >>> clf.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints = {
        **BaseTorchEstimator._parameter_constraints,
        "tta_flip": ["boolean"],
        "tta_shift": [Interval(Integral, 0, None, closed="left")],
        "lookahead": ["boolean"],
    }

    def __init__(
        self,
        arch="fast",
        *,
        input="rgb",
        upsample=None,
        epochs=20,
        max_samples=None,
        batch_size=256,
        lr=0.2,
        momentum=0.9,
        weight_decay=5e-4,
        optimizer="sgd",
        lr_schedule="triangle",
        lr_milestones=None,
        lr_gamma=0.1,
        label_smoothing=0.2,
        augment=True,
        tta_flip=True,
        tta_shift=0,
        lookahead=False,
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
        self.label_smoothing = label_smoothing
        self.tta_flip = tta_flip
        self.tta_shift = tta_shift
        self.lookahead = lookahead

    def fit(self, X, y):
        """Train the network on labelled images.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels) or (n_images, n_features)
            Training images: uint8 in [0, 255] or floats in [0, 1] (grey images may
            omit the channel axis); or rows of features.
        y : array-like of shape (n_images,)
            Labels, of any type.

        Returns
        -------
        self : TorchCNNClassifier
            The trained classifier.
        """
        self._check_params()
        images = self._validate_images(X, reset=True)
        y = self._validate_targets(y, images)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self._fit(images, encoder.transform(y), n_outputs=len(encoder.classes_))
        self.classes_ = encoder.classes_
        return self

    def initialize(self, data, n_outputs):
        """The base's components, and no slow weights yet (`lookahead`)."""
        super().initialize(data, n_outputs)
        self._steps_per_epoch = n_batches(len(data), self.batch_size)
        self._slow_weights = None

    def run_epoch(self, data, targets, epoch):
        """The base's epoch; under `lookahead`, the network then takes the slow weights."""
        record = super().run_epoch(data, targets, epoch)
        if self._slow_weights is not None:
            self._pull_back(rho=1.0)
        return record

    def train_step(self, batch, targets):
        """The base's optimiser step, then `lookahead`'s every few steps."""
        result = super().train_step(batch, targets)
        if self.lookahead:
            self._look_ahead()
        return result

    def _look_ahead(self):
        step = self.lr_scheduler_.last_epoch
        if step <= _LOOKAHEAD_START_EPOCHS * self._steps_per_epoch or step % _LOOKAHEAD_EVERY:
            return
        if self._slow_weights is None:
            self._slow_weights = {name: value.clone() for name, value in self._float_state()}
            return
        progress = step / (self._steps_per_epoch * self.total_epochs)
        self._pull_back(rho=_LOOKAHEAD_DECAY**_LOOKAHEAD_EVERY * progress**_LOOKAHEAD_POWER)

    def _pull_back(self, rho):
        """Move the slow weights to ``rho * slow + (1 - rho) * network``; copy them back."""
        for name, value in self._float_state():
            slow = self._slow_weights[name]
            slow.lerp_(value, 1 - rho)
            value.copy_(slow)

    def _float_state(self):
        return [(name, value) for name, value in self.module_.state_dict().items()
                if value.is_floating_point()]

    def checkpoint_state(self):
        """The base's state and the slow weights of `lookahead` (None before they start)."""
        return {**super().checkpoint_state(), "slow_weights": self._slow_weights}

    def _restore_state(self, state):
        super()._restore_state(state)
        self._slow_weights = state["slow_weights"]

    def predict_proba(self, X):
        """Class probabilities of images.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels) or (n_images, n_features)
            Images of the shape seen in `fit`.

        Returns
        -------
        proba : ndarray of shape (n_images, n_classes)
            Probability of each class, in the order of `classes_`.
        """
        check_is_fitted(self)
        images = self._validate_images(X, reset=False)
        logits = self._test_time_logits(images)
        if self.tta_shift:
            shifted = [self._test_time_logits(images, shift=shift)
                       for shift in (self.tta_shift, -self.tta_shift)]
            logits = (logits + (shifted[0] + shifted[1]) / 2) / 2
        return torch.softmax(logits.double(), dim=1).numpy()

    def _test_time_logits(self, images, shift=0):
        """Logits of the images moved by `shift`, averaged with their mirror's (`tta_flip`)."""
        logits = self.forward_batches(images, shift=shift)
        if self.tta_flip:
            logits = (logits + self.forward_batches(images, flip=True, shift=shift)) / 2
        return logits

    def predict(self, X):
        """Class labels of images.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels) or (n_images, n_features)
            Images of the shape seen in `fit`.

        Returns
        -------
        labels : ndarray of shape (n_images,)
            The most probable class of each image.
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
