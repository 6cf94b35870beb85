"""The one training loop of every torch estimator, in layers that subclasses override.

    fit -> initialize -> fit_loop -> run_epoch -> train_batches -> train_step -> batch_loss

``initialize`` builds, in order, the input transforms, the module, the optimizer (and its
learning-rate schedule), the criterion, the sampler (:mod:`estimators.samplers`), the
callbacks and the history. ``fit_loop`` runs the epochs and tells the callbacks;
``run_epoch`` asks the sampler for the epoch's batches; ``train_batches`` trains on them;
``train_step`` does one backward pass and optimiser step of the loss ``batch_loss`` computes
in a forward pass. A new method overrides one layer (the clusterers of
:mod:`estimators.clustering` override ``run_epoch`` to make the epoch's targets first, the
contrastive encoder ``batch_loss``), or picks another part (``initialize_criterion``,
``initialize_sampler``), never copies the loop. Timing, progress, checkpoints and any
early stop are callbacks.
"""

import functools
import hashlib
import inspect
import logging
import math
import os
import time
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_consistent_length, validate_data
from torch import nn
from tqdm.auto import tqdm

from features.augment import RandomAugment, make_input_transform, transformed_channels, translate
from features.images import check_images

from .architectures import ARCHITECTURES, _did_you_mean, build_network
from .samplers import ShuffleSampler, n_batches

log = logging.getLogger(__name__)
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
# Devices where the optimisers update every parameter in one fused kernel, unless the
# ``optimizer__`` parameters ask for the foreach or differentiable implementations: on a
# 2-core AMD EPYC, a step over AlexNet's 34M weights took 25 ms fused against 124 ms for
# SGD's loop over tensors (Adam: 38 against 262). MPS is left to torch's default choice.
_FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda")

# Images the fast network's whitening stem is estimated from: enough for a 2x2-patch
# covariance, few enough to stay quick on a CPU.
_N_WHITENING_IMAGES = 2048
# Measured on an AMX CPU: bfloat16 autocast speeds training up from 32x32 network inputs,
# and slows it down at 8x8, where casting the weights costs more than the convolutions.
_MIN_MIXED_PRECISION_PIXELS = 32 * 32


def resolve_device(device="auto"):
    """The torch device to train on.

    Parameters
    ----------
    device : str or torch.device, default="auto"
        "auto" picks CUDA if available, then Apple's MPS, then the CPU; anything else is
        passed to :class:`torch.device`.

    Returns
    -------
    device : torch.device
        The device.
    """
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class History(list):
    """Per-epoch records of a training run, readable by key across epochs.

    A list of dicts, one per epoch, that also takes a key: ``history["loss"]`` is the
    list of every epoch's loss.

    Examples
    --------
    >>> history = History([{"loss": 2.0}, {"loss": 1.5}])
    >>> history["loss"]
    [2.0, 1.5]
    >>> history[-1]
    {'loss': 1.5}
    """

    def __getitem__(self, key):
        if isinstance(key, str):
            return [record[key] for record in self]
        return super().__getitem__(key)


class Callback:
    """Base class of training callbacks; every hook does nothing.

    Hooks receive the estimator being trained. A callback keeps its state in attributes
    ending in ``_`` and resets them in :meth:`on_train_begin`. To stop training, call
    ``estimator.stop_training(reason)``.
    """

    def on_train_begin(self, estimator):
        """Called once the module, optimizer and history are initialised."""

    def on_epoch_begin(self, estimator, epoch):
        """Called before each epoch; `epoch` counts from 0."""

    def on_epoch_end(self, estimator):
        """Called after each epoch, once its record is in ``estimator.history_``."""

    def on_train_end(self, estimator):
        """Called when training ends, normally or by an exception."""


class EpochTimer(Callback):
    """Record each epoch's wall-clock time as ``seconds`` in its history record."""

    def on_epoch_begin(self, estimator, epoch):
        self.start_ = time.perf_counter()

    def on_epoch_end(self, estimator):
        estimator.history_[-1]["seconds"] = time.perf_counter() - self.start_


class ProgressBar(Callback):
    """A tqdm bar over epochs, showing the last loss and accuracy.

    It shows on a terminal and stays silent when the output is a log file.
    """

    def on_train_begin(self, estimator):
        self.bar_ = tqdm(
            total=estimator.total_epochs,
            initial=len(estimator.history_),
            desc=type(estimator).__name__,
            unit="epoch",
            disable=None,
        )

    def on_epoch_end(self, estimator):
        record = estimator.history_[-1]
        self.bar_.set_postfix(loss=f"{record['loss']:.4f}", accuracy=f"{record['accuracy']:.4f}")
        self.bar_.update()

    def on_train_end(self, estimator):
        self.bar_.close()
        # A tqdm bar holds a lock and a stream: drop it so the estimator can be pickled.
        self.bar_ = None


class Checkpoint(Callback):
    """Save the training state after every epoch, and resume from it.

    At the start of training, a checkpoint found in `dirname` is loaded: module, optimizer,
    learning-rate schedule, random generators and history, so training goes on from the
    epoch after the last one saved and ends where an uninterrupted run would. The file is
    written to a temporary name and then renamed, so a crash never leaves half a file.

    Parameters
    ----------
    dirname : str or path-like
        Folder of the checkpoint file; created if missing.
    filename : str, default="checkpoint.pt"
        Name of the checkpoint file.
    """

    def __init__(self, dirname, filename="checkpoint.pt"):
        self.dirname = dirname
        self.filename = filename

    @property
    def path(self):
        """Path of the checkpoint file."""
        return Path(self.dirname) / self.filename

    def on_train_begin(self, estimator):
        if self.path.exists():
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            estimator.load_checkpoint_state(state)
            log.info("%s: resumed after epoch %d of %d from %s", type(estimator).__name__,
                     len(estimator.history_), estimator.total_epochs, self.path)

    def on_epoch_end(self, estimator):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".tmp")
        torch.save(estimator.checkpoint_state(), partial)
        os.replace(partial, self.path)


def _lr_factor(step, *, schedule, steps_per_epoch, total_steps, milestones, gamma):
    """Multiplier of the base learning rate at an optimiser step."""
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        epoch = step // steps_per_epoch
        return gamma ** sum(epoch >= milestone for milestone in milestones)
    progress = step / total_steps
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    # "triangle", airbench's: warm up from 0.2 over the first 23% of steps, then decay to 0.
    return float(np.interp(progress, [0, 0.23, 1], [0.2, 1, 0]))


class BaseTorchEstimator(BaseEstimator):
    """Base class of the torch estimators: parameters, routing, and the training loop.

    Subclasses write ``fit`` (validate, then call :meth:`_fit`) and their prediction
    methods, and override a layer of the loop where their method differs.
    See :class:`estimators.cnn.TorchCNNClassifier` for the parameters.

    Attributes set by :meth:`_fit`: ``device_``, ``input_transform_``, ``augment_``,
    ``mixed_precision_`` (whether the network runs under bfloat16 autocast, with
    channels-last tensors; see `precision`), ``n_resumed_epochs_`` (epochs a checkpoint,
    or the fit a warm start went on from, supplied; their time is in ``history_``), ``module_``,
    ``optimizer_``, ``lr_scheduler_``, ``criterion_``, ``callbacks_``, ``history_``,
    ``train_indices_`` (the images trained on, see `max_samples`) and ``stop_reason_``;
    by :meth:`_validate_images`: ``n_features_in_`` and ``image_shape_``. ``_rng`` (a numpy
    Generator) and ``_generator`` (a torch CPU Generator, which shuffles and augments) are
    seeded from `random_state` and saved in checkpoints, for subclasses' own random draws;
    ``_sampler`` (an :mod:`estimators.samplers` sampler, see :meth:`initialize_sampler`)
    draws each epoch's batches with them.
    """

    # Parameters ``<prefix>__<name>`` are routed to the component of that prefix.
    _routed_prefixes = ("module", "optimizer", "criterion", "augment")

    _parameter_constraints = {
        "arch": [StrOptions(set(ARCHITECTURES))],
        "input": [StrOptions({"rgb", "sobel"})],
        "upsample": [Interval(Real, 1, None, closed="left"), None],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "max_samples": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "lr_schedule": [StrOptions({"triangle", "cosine", "step", "constant"})],
        "lr_milestones": ["array-like", None],
        "lr_gamma": [Interval(Real, 0, None, closed="neither")],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "augment": ["boolean"],
        "device": [str, torch.device],
        "precision": [StrOptions({"auto", "float32", "bfloat16"})],
        "random_state": ["random_state"],
        "checkpoint_dir": [str, os.PathLike, None],
        "callbacks": [list, None],
        "verbose": ["verbose"],
    }

    # Parameters that do not change what training computes: a checkpoint written under
    # other values of these can be resumed. Not `epochs`: the learning-rate schedule
    # stretches over all of them.
    _resumable_params = ("device", "checkpoint_dir", "callbacks", "verbose")

    def __init__(
        self,
        arch,
        *,
        input,
        upsample,
        epochs,
        max_samples,
        batch_size,
        lr,
        momentum,
        weight_decay,
        optimizer,
        lr_schedule,
        lr_milestones,
        lr_gamma,
        augment,
        device,
        precision,
        random_state,
        checkpoint_dir,
        callbacks,
        verbose,
        **routed,
    ):
        self.arch = arch
        self.input = input
        self.upsample = upsample
        self.epochs = epochs
        self.max_samples = max_samples
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.lr_milestones = lr_milestones
        self.lr_gamma = lr_gamma
        self.augment = augment
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.callbacks = callbacks
        self.verbose = verbose
        # Kept apart from the named parameters: scikit-learn expects __init__ to set
        # exactly the attributes its signature names.
        self._routed_values = routed

    # Augmentation settings of this estimator's default policy; ``augment__`` ones override
    # them. Empty: :class:`~features.augment.RandomAugment`'s defaults, the study's policy.
    _augment_defaults = {}

    @property
    def total_epochs(self):
        """Epochs of a whole training run: `epochs`, unless a subclass adds phases."""
        return self.epochs

    # ---------------------------------------------------------------- parameters

    def get_params(self, deep=True):
        """Parameters of the estimator, routed ones (``module__width``...) included.

        Parameters
        ----------
        deep : bool, default=True
            Ignored beyond what :meth:`sklearn.base.BaseEstimator.get_params` does.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        return {**super().get_params(deep=deep), **self._routed_params()}

    def set_params(self, **params):
        """Set parameters, routed ones (``optimizer__nesterov``...) included.

        Parameters
        ----------
        **params : dict
            Parameter names mapped to new values.

        Returns
        -------
        self : estimator
            The estimator.
        """
        routed = {key: params.pop(key) for key in list(params) if self._is_routed(key)}
        super().set_params(**params)
        self._routed_values = {**self._routed_values, **routed}
        return self

    def _is_routed(self, key):
        prefix, separator, _ = key.partition("__")
        return bool(separator) and prefix in self._routed_prefixes

    def _routed_params(self):
        """The keyword arguments ``__init__`` got beyond its signature."""
        return dict(self._routed_values)

    def _routing_targets(self):
        """Where routed parameters go: prefix -> (callable, names the estimator sets).

        One entry per prefix of ``_routed_prefixes``; a subclass adding a prefix adds both.
        """
        return {
            "module": (ARCHITECTURES[self.arch], {"in_channels", "n_classes"}),
            "optimizer": (OPTIMIZERS[self.optimizer], {"params", "lr", "momentum", "weight_decay"}),
            "criterion": (nn.CrossEntropyLoss, {"label_smoothing"}),
            "augment": (RandomAugment, {"generator"}),
        }

    def _check_params(self):
        """Validate every parameter, routed ones included; the first step of ``fit``."""
        self._validate_params()
        self._check_routed_params()

    def _check_routed_params(self):
        targets = self._routing_targets()
        for key in self._routed_params():
            if not self._is_routed(key):
                prefixes = [f"{prefix}__" for prefix in self._routed_prefixes]
                raise ValueError(
                    f"Unknown parameter {key!r} for {type(self).__name__}; routed parameters "
                    f"start with one of {prefixes}."
                    f"{_did_you_mean(key, [*self._get_param_names(), *prefixes])}"
                )
            prefix = key.partition("__")[0]
            target, reserved = targets[prefix]
            accepted = [
                f"{prefix}__{parameter}"
                for parameter in inspect.signature(target).parameters
                if parameter not in reserved
            ]
            if key not in accepted:
                raise ValueError(
                    f"Unknown parameter {key!r}: {target.__name__} takes {accepted}."
                    f"{_did_you_mean(key, accepted)}"
                )

    def _routed(self, prefix):
        """Keyword arguments routed to the component of `prefix`, without the prefix."""
        start = f"{prefix}__"
        return {
            key[len(start) :]: value
            for key, value in self._routed_params().items()
            if key.startswith(start)
        }

    # ---------------------------------------------------------------- data

    def _validate_images(self, X, *, reset):
        """Images of shape (n, height, width, channels); a 2-d X gives 1 x n_features images.

        Rows of features (what scikit-learn's own checks feed) are read as one-row grey
        images, so any tabular data goes through the same network.
        """
        if not sp.issparse(X) and np.asarray(X).ndim >= 3:
            images = check_images(X)
            if reset:
                self.n_features_in_ = math.prod(images.shape[1:])
        else:
            rows = validate_data(self, X, reset=reset, dtype=np.float32)
            images = rows[:, np.newaxis, :, np.newaxis]
        if reset:
            self.image_shape_ = images.shape[1:]
        elif images.shape[1:] != self.image_shape_:
            raise ValueError(
                f"X holds images of shape {images.shape[1:]}, but {type(self).__name__} was "
                f"fitted on images of shape {self.image_shape_}."
            )
        return images

    def _validate_targets(self, y, images):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y = validate_data(self, y=y, reset=False)
        check_consistent_length(images, y)
        return y

    def _inputs(self, batch, *, train, flip=False, shift=0, augment=None):
        """A batch of stored images as the network's input, on the training device.

        In training, `augment` (by default ``augment_``, if any) augments the images first;
        `flip` mirrors them and `shift` moves them down and right by that many pixels
        (:func:`features.augment.translate`).
        """
        x = batch.to(self.device_, non_blocking=True).permute(0, 3, 1, 2)
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        augment = self.augment_ if augment is None else augment
        if train and augment is not None:
            x = augment(x)
        if flip:
            x = x.flip(-1)
        if shift:
            x = translate(x, torch.full((len(x), 2), shift, device=x.device))
        x = self.input_transform_(x)
        return x.contiguous(memory_format=self._memory_format)

    @property
    def _memory_format(self):
        # Channels-last is the layout of cuDNN's tensor-core and oneDNN's AMX convolutions.
        fast = self.device_.type == "cuda" or self.mixed_precision_
        return torch.channels_last if fast else torch.contiguous_format

    def _autocast(self):
        return torch.autocast(
            self.device_.type, dtype=torch.bfloat16, enabled=self.mixed_precision_
        )

    @torch.no_grad()
    def forward_batches(self, images, *, layer=None, flip=False, shift=0, augment=False,
                        module=None):
        """Outputs of the trained network for images, batch by batch, in eval mode.

        Parameters
        ----------
        images : ndarray of shape (n_images, height, width, channels)
            Validated images.
        layer : str, default=None
            Return the activations of this named layer instead of the class scores.
        flip : bool, default=False
            Flip the images horizontally first.
        shift : int, default=0
            Then move them down and right by this many pixels (up and left if negative),
            mirrored at their borders.
        augment : bool, default=False
            Draw a random augmentation of each image first (``augment_``, if any), as
            the pseudo-label estimator's label pass does.
        module : torch.nn.Module, default=None
            The network to run; None: ``module_`` (a teacher network is another).

        Returns
        -------
        outputs : torch.Tensor of shape (n_images, ...)
            Float32 logits (or activations), on the CPU.
        """
        module = self.module_ if module is None else module
        module.eval()
        data = torch.from_numpy(_stackable(images))
        outputs = []
        for batch in data.split(self.batch_size):
            with self._autocast():
                x = self._inputs(batch, train=augment, flip=flip, shift=shift)
                out = module(x) if layer is None else module.features(x, layer)
            outputs.append(out.float().cpu())
        return torch.cat(outputs)

    def penultimate_features(self, images):
        """What feeds the trained network's final linear layer, for each image.

        The input of ``module_.representation_reader()`` (the final linear layer of a
        classifier, a contrastive network's projection head): the pooled output of the last named
        layer for ``fast`` and ``resnet18``, the output of the classifier's last hidden
        layer for ``alexnet`` and ``vgg16_bn``. Computed as :meth:`forward_batches`
        computes, in eval mode and without augmentation.

        Parameters
        ----------
        images : ndarray of shape (n_images, height, width, channels)
            Validated images.

        Returns
        -------
        features : torch.Tensor of shape (n_images, n_features)
            Float32 features, on the CPU.
        """
        captured = []
        # A hook reads the final layer's input while the whole network runs: the head's
        # other layers (pooling, hidden layers) need no copy here.
        handle = self.module_.representation_reader().register_forward_pre_hook(
            lambda module, args: captured.append(args[0].float().cpu())
        )
        try:
            self.forward_batches(images)
        finally:
            handle.remove()
        return torch.cat(captured)

    # ---------------------------------------------------------------- the loop

    def _fit(self, images, targets, n_outputs):
        """Train on validated images; the body of every subclass's ``fit``.

        Parameters
        ----------
        images : ndarray of shape (n_images, height, width, channels)
            Validated training images.
        targets : ndarray of shape (n_images,) or None
            Integer class of each image, or None where ``run_epoch`` makes its own.
        n_outputs : int
            Number of network outputs.

        Returns
        -------
        self : estimator
            The trained estimator.
        """
        previous = self._state_to_continue()
        self._continuing = previous is not None
        data, labels = self._training_data(images, targets)
        self._fingerprint = self._make_fingerprint(data, labels, n_outputs)
        # Seed torch's global generator (weight init, dropout) without leaving it changed.
        with _forked_rng(self.device_):
            self.initialize(data, n_outputs)
            if previous is not None:
                self._continue_from(*previous)
            self.fit_loop(data, labels)
        return self

    def _state_to_continue(self):
        """What a warm start goes on from: this fit's state and the digest of its images,
        or None to train from the start. None here; a subclass with ``warm_start`` returns
        ``(self.checkpoint_state(), self._data_digest)`` when it is fitted."""
        return None

    def _continue_from(self, state, data_digest):
        """Restore a warm start's `state`, refusing other training images than its own.

        The network, the optimiser's running state, the generators and the history come
        from `state`; the optimiser's settings and the learning-rate schedule are this
        fit's, taken up at the step the last fit stopped at.
        """
        if data_digest != self._data_digest:
            raise ValueError(
                f"warm_start goes on with the images {type(self).__name__} was fitted on, "
                "but X holds other images; set warm_start=False to train on them afresh."
            )
        settings = [{name: value for name, value in group.items() if name != "params"}
                    for group in self.optimizer_.param_groups]
        self._restore_state(state)
        scheduler = self.lr_scheduler_
        scheduler.base_lrs = [group["initial_lr"] for group in settings]
        for group, own, factor in zip(self.optimizer_.param_groups, settings,
                                      scheduler.lr_lambdas):
            group.update(own, lr=own["initial_lr"] * factor(scheduler.last_epoch))

    def _training_data(self, images, targets):
        """Unfit the estimator, pick its device, and draw the images it trains on (as tensors)."""
        if len(images) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 training images (batch norm); "
                "got 1 sample."
            )
        # A fit that fails half-way must not leave the estimator looking fitted.
        vars(self).pop("stop_reason_", None)
        self.device_ = resolve_device(self.device)
        self.train_indices_ = self._draw_training_images(len(images))
        if len(self.train_indices_) < len(images):
            images = images[self.train_indices_]
            targets = None if targets is None else targets[self.train_indices_]
        data = torch.from_numpy(_stackable(images))
        labels = None if targets is None else torch.as_tensor(targets, dtype=torch.long)
        return data, labels

    def initialize_for(self, X, n_outputs):
        """Build every component of training on images `X`, as `fit` does, and train nothing.

        For another training loop that should train what `fit` would (the skorch comparison
        of ``benchmark.peer_training``): afterwards ``module_`` (initialised, on the
        device), ``input_transform_``, ``augment_``, ``optimizer_``, ``lr_scheduler_`` (its
        per-step factor is ``lr_scheduler_.lr_lambdas[0]``) and ``criterion_`` are set, from
        the estimator's seed, on the images `fit` would draw (``max_samples``); the estimator
        is not fitted. A clusterer with a backbone (SCAN) fits the backbone first, as its
        `fit` does.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels) or (n_images, n_features)
            Training images, as `fit` takes them.
        n_outputs : int
            Number of network outputs (classes or clusters).

        Returns
        -------
        self : estimator
            The estimator, its components built.
        """
        self._check_params()
        self._continuing = False
        data, _ = self._training_data(self._validate_images(X, reset=True), None)
        with _forked_rng(self.device_):
            self.initialize(data, n_outputs)
        return self

    def _draw_training_images(self, n_images):
        """Sorted indices of the images to train on: all, or `max_samples` drawn at random."""
        if self.max_samples is None or self.max_samples >= n_images:
            return np.arange(n_images)
        rng = check_random_state(self.random_state)
        return np.sort(rng.choice(n_images, self.max_samples, replace=False))

    def initialize(self, data, n_outputs):
        """Seed, then build every component of training, in order.

        Parameters
        ----------
        data : torch.Tensor of shape (n_images, height, width, channels)
            Training images, on the CPU.
        n_outputs : int
            Number of network outputs.
        """
        self._seed()
        self.initialize_transforms(data)
        self.initialize_module(data, n_outputs)
        self.initialize_optimizer(n_steps_per_epoch=n_batches(len(data), self.batch_size))
        self.initialize_criterion()
        self.initialize_sampler()
        self.initialize_callbacks()
        self.history_ = History()

    def _seed(self):
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        self._rng = np.random.default_rng(seed)
        torch.manual_seed(int(self._rng.integers(2**63)))
        self._generator = torch.Generator().manual_seed(int(self._rng.integers(2**63)))

    def _make_fingerprint(self, data, labels, n_outputs):
        """What a checkpoint must have been trained on and with, to be resumed.

        The images and labels enter by their content: a checkpoint of a network trained on
        other images of the same shape (another fold of a cross-validation) never resumes.
        """
        content = hashlib.blake2b(np.ascontiguousarray(data.numpy()).data, digest_size=16)
        if labels is not None:
            content.update(np.ascontiguousarray(labels.numpy()).data)
        self._data_digest = content.hexdigest()
        return repr((type(self).__name__, sorted(training_params(self).items()),
                     tuple(data.shape), n_outputs, self._data_digest))

    def initialize_transforms(self, data):
        """Build ``input_transform_`` (standardisation, Sobel, upsampling) and ``augment_``.

        Also decides ``mixed_precision_``, which depends on the size the network sees.
        """
        height, width = data.shape[1:3]
        network_pixels = height * width * (self.upsample or 1) ** 2
        if self.precision == "auto":
            large = network_pixels >= _MIN_MIXED_PRECISION_PIXELS
            self.mixed_precision_ = large and has_native_bfloat16(self.device_)
        else:
            self.mixed_precision_ = self.precision == "bfloat16"
        mean, std = _channel_stats(data)
        self.input_transform_ = make_input_transform(
            self.input, self.upsample, mean=mean, std=std
        ).to(self.device_)
        self.augment_ = self._random_augment(self._augment_defaults)

    def _random_augment(self, defaults, prefix="augment"):
        """A :class:`RandomAugment` of `defaults` and the ``<prefix>__`` parameters on the
        estimator's generator; None where `augment` is off."""
        if not self.augment:
            return None
        return RandomAugment(generator=self._generator,
                             **{**defaults, **self._routed(prefix)})

    def initialize_module(self, data, n_outputs):
        """Build ``module_`` on the device; a network with ``data_init`` sees a sample first."""
        in_channels = transformed_channels(self.input, data.shape[-1])
        module = build_network(self.arch, in_channels, n_outputs, **self._routed("module"))
        self.module_ = module.to(self.device_, memory_format=self._memory_format)
        if hasattr(self.module_, "data_init"):
            sample = torch.randperm(len(data), generator=self._generator)[:_N_WHITENING_IMAGES]
            self.module_.data_init(self._inputs(data[sample], train=False))

    def initialize_optimizer(self, n_steps_per_epoch):
        """Build ``optimizer_`` and ``lr_scheduler_``, which steps after every batch."""
        kwargs = {"lr": self.lr, "weight_decay": self.weight_decay, **self._routed("optimizer")}
        if not (kwargs.get("foreach") or kwargs.get("differentiable")):
            kwargs.setdefault("fused", self.device_.type in _FUSED_OPTIMIZER_DEVICES)
        if self.optimizer == "sgd":
            kwargs["momentum"] = self.momentum
        groups = [
            {"params": params, "lr": self.lr * scale, "weight_decay": self.weight_decay / scale}
            for scale, params in parameter_groups(self.module_).items()
        ]
        self.optimizer_ = OPTIMIZERS[self.optimizer](groups, **kwargs)
        self.lr_scheduler_ = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer_, self.lr_factor(n_steps_per_epoch)
        )

    def lr_factor(self, n_steps_per_epoch):
        """The multiplier of `lr` at each optimiser step, under `lr_schedule`.

        Parameters
        ----------
        n_steps_per_epoch : int
            Optimiser steps in an epoch.

        Returns
        -------
        factor : callable
            Picklable function of the step (from 0) giving the multiplier, as
            ``torch.optim.lr_scheduler.LambdaLR`` takes it.
        """
        return functools.partial(
            _lr_factor,
            schedule=self.lr_schedule,
            steps_per_epoch=n_steps_per_epoch,
            total_steps=n_steps_per_epoch * self.total_epochs,
            milestones=tuple(self.lr_milestones or ()),
            gamma=self.lr_gamma,
        )

    def initialize_criterion(self):
        """Build ``criterion_``, cross-entropy on the device."""
        self.criterion_ = nn.CrossEntropyLoss(
            label_smoothing=self.label_smoothing, **self._routed("criterion")
        ).to(self.device_)

    def initialize_sampler(self):
        """Pick the sampler of every epoch's batches: here, a shuffle of all images.

        A subclass drawing its batches otherwise overrides this with another sampler of
        :mod:`estimators.samplers`.
        """
        self._sampler = ShuffleSampler()

    def initialize_callbacks(self):
        """Build ``callbacks_``: timer, checkpoint, progress bar, then the user's.

        The checkpoint comes before the bar, which then starts from the epochs it resumed.
        """
        defaults = [EpochTimer()]
        if self.checkpoint_dir is not None:
            defaults.append(Checkpoint(self.checkpoint_dir))
        if self.verbose:
            defaults.append(ProgressBar())
        self.callbacks_ = [*defaults, *(self.callbacks or [])]

    def _notify(self, hook, **kwargs):
        for callback in self.callbacks_:
            getattr(callback, hook)(self, **kwargs)

    def stop_training(self, reason):
        """Ask the loop to stop after the current epoch; for callbacks (early stopping).

        Parameters
        ----------
        reason : str
            Why; it becomes ``stop_reason_``.
        """
        self._stop_request = reason

    def fit_loop(self, data, targets):
        """Run the epochs left (all of them, unless a checkpoint was resumed).

        Sets ``stop_reason_``: "max_epochs" when every epoch ran, or the reason a callback
        gave :meth:`stop_training`. An exception (a crash, Ctrl-C) propagates and leaves
        the last checkpoint to resume from.
        """
        self._stop_request = None
        try:
            self._notify("on_train_begin")
            self.n_resumed_epochs_ = len(self.history_)
            for epoch in range(self.n_resumed_epochs_, self.total_epochs):
                self._notify("on_epoch_begin", epoch=epoch)
                lr = self.optimizer_.param_groups[0]["lr"]
                record = self.run_epoch(data, targets, epoch)
                _check_loss_is_finite(record["loss"], epoch, self.lr)
                self.history_.append({"epoch": epoch + 1, **record, "lr": lr})
                self._notify("on_epoch_end")
                if self._stop_request is not None:
                    break
        finally:
            self._notify("on_train_end")
        self.stop_reason_ = self._stop_request or "max_epochs"

    def run_epoch(self, data, targets, epoch):
        """Train for one epoch over the batches the sampler draws.

        Parameters
        ----------
        data : torch.Tensor of shape (n_images, height, width, channels)
            Training images, on the CPU.
        targets : torch.Tensor of shape (n_images,)
            Class of each image.
        epoch : int
            Index of the epoch, from 0.

        Returns
        -------
        record : dict
            The epoch's mean training ``loss`` and ``accuracy`` (on augmented images).
        """
        return self.train_batches(data, targets, self._draw_batches(targets))

    def _draw_batches(self, targets):
        return self._sampler.batches(
            targets, self.batch_size, rng=self._rng, generator=self._generator
        )

    def train_batches(self, data, targets, batches):
        """Train on an epoch's batches, in order: one :meth:`train_step` per batch.

        Parameters
        ----------
        data : torch.Tensor of shape (n_images, height, width, channels)
            Training images, on the CPU; `batches` index them.
        targets : torch.Tensor of shape (n_images,) or (n_images, n_heads)
            Target (class or cluster) of each image, for each head of a network with
            several (:meth:`batch_loss` reads them).
        batches : sequence of torch.Tensor
            Indices of each batch's images, as a sampler of :mod:`estimators.samplers`
            draws them.

        Returns
        -------
        record : dict
            The mean training ``loss`` and ``accuracy`` over the images trained on (an
            image drawn twice counts twice).
        """
        self.module_.train()
        total_loss = torch.zeros((), device=self.device_)
        n_correct = torch.zeros((), device=self.device_, dtype=torch.long)
        n_seen = 0
        for index in batches:
            loss, correct = self.train_step(data[index], targets[index])
            total_loss += loss * len(index)
            n_correct += correct
            n_seen += len(index)
        # One synchronisation per epoch, not per batch.
        return {"loss": total_loss.item() / n_seen, "accuracy": n_correct.item() / n_seen}

    def train_step(self, batch, targets):
        """One optimiser step of :meth:`batch_loss` on a batch.

        Parameters
        ----------
        batch : torch.Tensor of shape (batch_size, height, width, channels)
            Images, on the CPU.
        targets : torch.Tensor of shape (batch_size, ...)
            What :meth:`batch_loss` trains them towards.

        Returns
        -------
        loss : torch.Tensor
            The batch's loss (a scalar on the device), detached.
        n_correct : torch.Tensor
            What :meth:`batch_loss` counts as right.
        """
        loss, n_correct = self.batch_loss(batch, targets)
        self.optimizer_.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer_.step()
        self.lr_scheduler_.step()
        return loss.detach(), n_correct

    def batch_loss(self, batch, targets):
        """The loss of a batch, to minimise, and how many of its images came out right.

        Here, ``criterion_`` of the network's logits and the images' classes; estimators
        with another objective override this.

        Parameters
        ----------
        batch : torch.Tensor of shape (batch_size, height, width, channels)
            Images, on the CPU.
        targets : torch.Tensor of shape (batch_size,)
            Their classes.

        Returns
        -------
        loss : torch.Tensor
            The batch's mean loss (a scalar on the device), with its graph.
        n_correct : torch.Tensor
            How many of the batch's images were classed right.
        """
        inputs = self._inputs(batch, train=True)
        targets = targets.to(self.device_, non_blocking=True)
        with self._autocast():
            logits = self.module_(inputs)
        loss = self.criterion_(logits.float(), targets)
        return loss, (logits.argmax(dim=1) == targets).sum()

    # ---------------------------------------------------------------- checkpoints

    def checkpoint_state(self):
        """Everything training needs to go on from the last epoch, as a dict of tensors.

        Returns
        -------
        state : dict
            Module, optimizer and schedule states, random generator states, history (its
            length is the number of epochs done) and the run's fingerprint.
        """
        return {
            "fingerprint": self._fingerprint,
            "history": list(self.history_),
            "module": self.module_.state_dict(),
            "optimizer": self.optimizer_.state_dict(),
            "lr_scheduler": self.lr_scheduler_.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "device": _device_rng_state(self.device_),
                "generator": self._generator.get_state(),
                "numpy": self._rng.bit_generator.state,
            },
        }

    def load_checkpoint_state(self, state):
        """Restore what :meth:`checkpoint_state` saved.

        Parameters
        ----------
        state : dict
            A checkpoint of a run with the same parameters and data.
        """
        if state["fingerprint"] != self._fingerprint:
            raise ValueError(
                "The checkpoint found was written by a run with other parameters or data:\n"
                f"  checkpoint: {state['fingerprint']}\n  this run:   {self._fingerprint}\n"
                "Use another checkpoint_dir, or delete the checkpoint to start afresh."
            )
        self._restore_state(state)

    def _restore_state(self, state):
        """Load a :meth:`checkpoint_state` into the built components, whatever its fingerprint."""
        self.module_.load_state_dict(state["module"])
        self.optimizer_.load_state_dict(state["optimizer"])
        self.lr_scheduler_.load_state_dict(state["lr_scheduler"])
        self.history_ = History(state["history"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["device"] is not None and self.device_.type != "cpu":
            torch.get_device_module(self.device_.type).set_rng_state(rng["device"])
        self._generator.set_state(rng["generator"])
        self._rng.bit_generator.state = rng["numpy"]

    def __sklearn_is_fitted__(self):
        return hasattr(self, "stop_reason_")


def training_params(estimator):
    """The parameters that change what `estimator` trains, nested estimators' included.

    A nested estimator (a backbone) enters by its own such parameters, so that one lent
    from another row (its checkpoint folder elsewhere) fingerprints as the one trained here.

    Parameters
    ----------
    estimator : estimator instance
        Fitted or not.

    Returns
    -------
    params : dict
        Its ``get_params(deep=False)`` less the parameters its class lists as not changing
        training (``_resumable_params``: device, checkpoint folder, callbacks...), each
        nested estimator replaced by its class name and its own such parameters.
    """
    resumable = getattr(estimator, "_resumable_params", ())
    return {
        key: (type(value).__name__, sorted(training_params(value).items()))
        if hasattr(value, "get_params") and not isinstance(value, type) else value
        for key, value in estimator.get_params(deep=False).items()
        if key not in resumable
    }


def _check_loss_is_finite(loss, epoch, lr):
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"Training diverged in epoch {epoch + 1}: the mean loss is {loss}. "
            f"Lower the learning rate (lr={lr:g})."
        )


def parameter_groups(module):
    """The parameters of `module`, by the multiplier of their learning rate.

    A submodule with a ``bias_lr_scale`` attribute other than 1
    (:class:`~estimators.architectures.ScaledBiasNorm`) puts its bias in the group of that
    multiplier; every other parameter, frozen ones too, is in the group of 1, the first.

    Parameters
    ----------
    module : torch.nn.Module
        The network.

    Returns
    -------
    groups : dict of float to list of torch.nn.Parameter
        Each multiplier's parameters, in the module's order.
    """
    scales = {id(sub.bias): sub.bias_lr_scale for sub in module.modules()
              if getattr(sub, "bias_lr_scale", 1.0) != 1.0}
    groups = {1.0: []}
    for parameter in module.parameters():
        groups.setdefault(scales.get(id(parameter), 1.0), []).append(parameter)
    return {scale: params for scale, params in groups.items() if params}


def has_native_bfloat16(device):
    """Whether `device` computes in bfloat16 natively: CUDA (Ampere on), or CPUs with AMX
    or AVX512_BF16 instructions.

    Elsewhere bfloat16 is emulated and slower than float32, so training stays in float32.
    Measured: on an AMX CPU, bfloat16 autocast trains the fast net 3.7 to 3.9 times and
    ResNet18 2.5 to 3.8 times as fast as float32 (``results/throughput-precision-amx.md``);
    on a 2-core AMD EPYC Zen 4 (AVX512_BF16, no AMX), the fast net 2.4 to 3.2 times and
    ResNet18 2.5 to 2.7 times (``results/throughput-precision-zen4.md``). The
    same Intel CPU with oneDNN held to AVX512_BF16 trains in bfloat16 at 0.83 to 0.99
    times its float32 speed (``results/throughput-precision-avx512bf16.md``): AVX512_BF16
    pays on AMD's cores, the CPUs that have it without AMX.

    Parameters
    ----------
    device : torch.device
        The training device.

    Returns
    -------
    native : bool
        True where bfloat16 autocast speeds training up.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and (
        torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    )


def _stackable(images):
    """Images as an array torch can wrap: uint8 kept, other dtypes as float32, writable."""
    dtype = np.uint8 if images.dtype == np.uint8 else np.float32
    return np.require(images, dtype=dtype, requirements=["C_CONTIGUOUS", "WRITEABLE"])


def _channel_stats(data, chunk=4096):
    """Per-channel mean and standard deviation, in the units the network sees."""
    n_channels = data.shape[-1]
    total = torch.zeros(n_channels, dtype=torch.float64)
    total_squares = torch.zeros(n_channels, dtype=torch.float64)
    for batch in data.split(chunk):
        values = batch.reshape(-1, n_channels).double()
        total += values.sum(dim=0)
        total_squares += values.square().sum(dim=0)
    count = data.numel() // n_channels
    mean = total / count
    std = (total_squares / count - mean.square()).clamp(min=0).sqrt()
    scale = 255.0 if data.dtype == torch.uint8 else 1.0
    std = torch.where(std > 0, std, scale)
    return (mean / scale).tolist(), (std / scale).tolist()


def _forked_rng(device):
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(device_type=device.type)


def _device_rng_state(device):
    if device.type == "cpu":
        return None
    return torch.get_device_module(device.type).get_rng_state()
