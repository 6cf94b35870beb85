"""Neighbour clustering (SCAN, Van Gansbeke et al. 2020) as a scikit-learn clusterer.

SCAN clusters in two steps on top of a self-supervised encoder
(:class:`~estimators.contrastive.TorchContrastiveEncoder`):

1. neighbour clustering: the encoder's `n_neighbours` nearest neighbours of every training
   image are mined once (:func:`~estimators.neighbours.mine_neighbours`); then the encoder's
   network, under several linear clustering heads, is trained so that an image and a random
   one of its neighbours get the same cluster while the batch spreads over every cluster
   (:func:`~estimators.losses.scan_loss`); the head of lowest loss is kept;
2. self-labelling: the kept head's confident predictions on a weakly augmented view become
   the targets of a strongly augmented view (:func:`~estimators.losses.self_labelling_loss`).

The estimator is one layer of the shared training loop (:mod:`estimators.training`): the
epochs of both steps run in one loop, with its checkpoints, resuming, progress bar,
bfloat16 and seeding.
"""

import copy
import functools
from numbers import Integral, Real

import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted

from features.augment import RandomAugment

from .architectures import MultiHeadNetwork
from .clustering import BaseNetworkClusterer
from .contrastive import SIMCLR_AUGMENTATION, TorchContrastiveEncoder
from .losses import scan_loss, self_labelling_loss
from .neighbours import mine_neighbours
from .training import OPTIMIZERS

# The weak view of self-labelling: flips and mild crops, colours left alone (SCAN: a random
# crop of a 4-pixel-padded image and a flip).
WEAK_AUGMENTATION = {
    "brightness": None, "contrast": None, "saturation": None, "hue": None,
    "crop_scale": (0.6, 1.0),
}


class TorchNeighbourClusterer(BaseNetworkClusterer):
    """Cluster images so that each agrees with its nearest neighbours in a learned space.

    The method of "SCAN: Learning to Classify Images without Labels" (Van Gansbeke et
    al., 2020). Fitting:

    1. fits `backbone` (a self-supervised encoder) on the images, unless it is fitted;
    2. mines each training image's `n_neighbours` nearest other images by cosine
       similarity of the encoder's features;
    3. for `epochs` epochs, trains a copy of the encoder's network under `n_heads` linear
       heads with the SCAN loss: for each image and a neighbour drawn at random (both
       augmented), ``-log <p_image, p_neighbour>`` minus `entropy_weight` times the entropy
       of the batch's mean assignment, summed over the heads. After each epoch the head of
       lowest mean loss becomes the one that predicts;
    4. for `self_label_epochs` epochs, trains the network and that head on its own
       confident predictions: where a weakly augmented view's largest cluster probability
       is above `confidence_threshold`, that cluster is the target of a strongly augmented
       view (cross-entropy weighted against each cluster's frequency), at
       `self_label_lr`.

    Labels are never used: ``fit(X, y)`` and ``fit(X)`` train the same network.

    Parameters
    ----------
    backbone : TorchContrastiveEncoder, default=None
        The encoder whose features give the neighbours and whose network is trained on.
        A fitted one is used as it is (its network copied, never changed); an unfitted
        one is cloned and fitted on the training images, seeded by `random_state` where
        its own is None. None: a
        :class:`~estimators.contrastive.TorchContrastiveEncoder` with its defaults, the
        clusterer's `random_state`, `device` and `precision`.
    n_clusters : int, default=10
        Number of clusters, the width of each head.
    n_neighbours : int, default=20
        Neighbours mined per image (SCAN: 20); at most the number of training images
        minus one.
    n_heads : int, default=10
        Clustering heads trained side by side (SCAN: 10).
    entropy_weight : float, default=5.0
        Weight of the entropy of the mean assignment (SCAN's CIFAR-10 setting).
    self_label_epochs : int, default=0
        Epochs of self-labelling after the `epochs` of neighbour clustering.
    confidence_threshold : float, default=0.99
        Probability above which a weak view's cluster becomes a target (SCAN: 0.99).
    self_label_lr : float, default=None
        Base learning rate of the self-labelling epochs, in place of `lr`; the schedule,
        which spans both steps, still multiplies it. None keeps `lr`. SCAN trains both
        steps at 1e-4; after neighbour clustering at 1e-3, self-labelling at 1e-3 emptied
        4 of ResNet18's 10 clusters on digits, at 1e-4 none.
    warm_start : bool, default=False
        When the clusterer is fitted, fit it again on the same images by going on from
        where its training stopped: only the epochs left of `epochs` +
        `self_label_epochs` run, with the parameters set since (from the next epoch on),
        over the fitted backbone and the neighbours mined then (`n_neighbours` set since
        is not mined again). A clusterer fitted without self-labelling, given
        ``self_label_epochs`` and fitted again, then ends as one fitted with them from
        the start (see :meth:`first_step`). Other images raise a ValueError.
    eval_set : (X, y) tuple, default=None
        Held-out images and their labels, clustered after every epoch to record
        ``eval_nmi``, ``eval_ari``, ``eval_acc`` and ``eval_empty_clusters`` in
        `history_` (:class:`~estimators.clustering.HeldOutScore`). Never trained on.
    epochs : int, default=30
        Epochs of neighbour clustering.
    max_samples : int, default=None
        Train (encoder and clusterer) on at most this many of the images, drawn at random;
        None trains on all.
    batch_size : int, default=256
        Images per optimiser step (each with a neighbour in the first step).
    lr : float, default=1e-4
        Learning rate (SCAN: Adam at 1e-4 for both steps).
    momentum : float, default=0.9
        SGD momentum, if `optimizer` is "sgd".
    weight_decay : float, default=1e-4
        L2 penalty on every parameter.
    optimizer : {"sgd", "adam", "adamw"}, default="adam"
        Optimiser; more of its arguments go through ``optimizer__``.
    lr_schedule : {"triangle", "cosine", "step", "constant"}, default="constant"
        Learning rate over both steps, updated after every batch.
    lr_milestones : list of int, default=None
        Epochs (counted from 0) at which the "step" schedule decays the learning rate.
    lr_gamma : float, default=0.1
        Factor of each "step" decay.
    augment : bool, default=True
        Augment images: anchors, neighbours and strong views with SimCLR's policy (tuned
        through ``augment__``), weak views with flips and mild crops (``weak_augment__``).
    device : str or torch.device, default="auto"
        Device to train on; "auto" picks CUDA, then MPS, then the CPU.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Arithmetic of training and inference; "auto" follows the backbone's.
    random_state : int, RandomState instance or None, default=None
        Seeds the heads, shuffling, neighbour draws and augmentation.
    checkpoint_dir : str or path-like, default=None
        Folder to save a checkpoint to after every epoch; a fit finding one of the same
        parameters and data there resumes it. The backbone has its own
        (``backbone__checkpoint_dir``).
    callbacks : list of Callback, default=None
        Extra callbacks (:class:`estimators.training.Callback`).
    verbose : int, default=1
        Show a progress bar over epochs (on a terminal only); 0 hides it.
    **routed : dict
        Parameters of the optimiser (``optimizer__``) and of the strong and weak
        augmentations (``augment__``, ``weak_augment__``), routed by prefix.

    Attributes
    ----------
    backbone_ : TorchContrastiveEncoder
        The fitted encoder the neighbours were mined with.
    neighbours_ : ndarray of shape (n_train, n_neighbours)
        Each training image's mined neighbours, indices into the images trained on
        (``train_indices_``).
    labels_ : ndarray of shape (n_images,)
        Cluster of each image given to `fit`.
    module_ : estimators.architectures.MultiHeadNetwork
        The trained network and its heads; ``module_.clustering_heads.chosen`` is the head
        that predicts.
    history_ : estimators.training.History
        One record per epoch: ``epoch``, ``step`` ("scan" or "self-label"), ``loss``
        (summed over the heads in neighbour clustering),
        ``accuracy`` (scan: share of images whose neighbour gets their cluster;
        self-label: share whose strong view gets their weak view's cluster), ``lr``,
        ``seconds``; scan epochs add ``head_losses`` and ``head``, self-label epochs
        ``confident`` (share of images above the threshold); and the ``eval_*`` scores
        when `eval_set` is given.

    See Also
    --------
    estimators.contrastive.TorchContrastiveEncoder : The encoder.
    estimators.losses.scan_loss, estimators.losses.self_labelling_loss : The two losses.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from estimators import TorchContrastiveEncoder
    >>> digits = load_digits()
    >>> X = np.rint(digits.images * 255 / 16).astype(np.uint8)[..., None]
    >>> encoder = TorchContrastiveEncoder(epochs=1, module__widths=(8, 16, 16), verbose=0)
    >>> scan = TorchNeighbourClusterer(encoder, epochs=1, self_label_epochs=1, verbose=0,
    ...                                random_state=0).fit(X[:200])
    >>> scan.labels_.shape, scan.predict(X[:3]).shape
    ((200,), (3,))
    """

    _parameter_constraints = {
        **BaseNetworkClusterer._parameter_constraints,
        "backbone": [HasMethods(["fit", "transform", "penultimate_features"]), None],
        "n_neighbours": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "entropy_weight": [Interval(Real, 0, None, closed="left")],
        "self_label_epochs": [Interval(Integral, 0, None, closed="left")],
        "confidence_threshold": [Interval(Real, 0, 1, closed="left")],
        "self_label_lr": [Interval(Real, 0, None, closed="left"), None],
        "warm_start": ["boolean"],
    }
    # Whether a fit goes on from the last one does not change what it trains.
    _resumable_params = (*BaseNetworkClusterer._resumable_params, "warm_start")
    _routed_prefixes = ("optimizer", "augment", "weak_augment")
    _augment_defaults = SIMCLR_AUGMENTATION

    def __init__(
        self,
        backbone=None,
        n_clusters=10,
        *,
        n_neighbours=20,
        n_heads=10,
        entropy_weight=5.0,
        self_label_epochs=0,
        confidence_threshold=0.99,
        self_label_lr=None,
        warm_start=False,
        eval_set=None,
        epochs=30,
        max_samples=None,
        batch_size=256,
        lr=1e-4,
        momentum=0.9,
        weight_decay=1e-4,
        optimizer="adam",
        lr_schedule="constant",
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
        # The network, its input and its size come from the backbone: the base's
        # arch, input and upsample are not parameters here.
        self.backbone = backbone
        self.n_clusters = n_clusters
        self.n_neighbours = n_neighbours
        self.n_heads = n_heads
        self.entropy_weight = entropy_weight
        self.self_label_epochs = self_label_epochs
        self.confidence_threshold = confidence_threshold
        self.self_label_lr = self_label_lr
        self.warm_start = warm_start
        self.eval_set = eval_set
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
        self._routed_values = routed

    @property
    def total_epochs(self):
        """Epochs of both steps: `epochs` of neighbour clustering, then of self-labelling."""
        return self.epochs + self.self_label_epochs

    def first_step(self):
        """The clusterer whose whole fit is this one's first step, or None.

        The same parameters without self-labelling: fitted, then given this one's
        parameters and ``warm_start=True``, it trains the rest and ends exactly as this
        one would (:attr:`warm_start`). None where there is no self-labelling, or where
        adding it changes the epochs before it: a "triangle" or "cosine" schedule spans
        both steps.

        Returns
        -------
        first : TorchNeighbourClusterer or None
            Unfitted.
        """
        if self.self_label_epochs == 0 or self.lr_schedule in ("triangle", "cosine"):
            return None
        # clone would clone the backbone too, and a fitted one would have to train again
        return clone(self).set_params(backbone=self.backbone, self_label_epochs=0,
                                      self_label_lr=None)

    def _routing_targets(self):
        return {
            "optimizer": (OPTIMIZERS[self.optimizer], {"params", "lr", "momentum", "weight_decay"}),
            "augment": (RandomAugment, {"generator"}),
            "weak_augment": (RandomAugment, {"generator"}),
        }

    def _check_params(self):
        super()._check_params()
        if self.self_label_lr is not None and self.lr == 0:
            raise ValueError(
                "self_label_lr scales the schedule of lr, which is 0; give lr > 0."
            )

    # ---------------------------------------------------------------- the parts

    def initialize(self, data, n_outputs):
        """Fit the backbone if needed, build every component, then mine the neighbours.

        A warm start keeps the fitted backbone it goes on from, and the neighbours mined
        with it on the same images.
        """
        if self._continuing:
            super().initialize(data, n_outputs)
            return
        self.backbone_ = self._fitted_backbone(data.numpy())
        super().initialize(data, n_outputs)
        features = self.backbone_.transform(data.numpy())
        n_neighbours = min(self.n_neighbours, len(data) - 1)
        self.neighbours_ = mine_neighbours(features, n_neighbours)
        self._neighbours = torch.from_numpy(self.neighbours_)

    def _state_to_continue(self):
        if not (self.warm_start and hasattr(self, "stop_reason_")):
            return None
        return self.checkpoint_state(), self._data_digest

    def _fitted_backbone(self, images):
        backbone = self.backbone
        if backbone is None:
            backbone = TorchContrastiveEncoder(
                random_state=self.random_state, device=self.device, precision=self.precision,
                verbose=self.verbose,
            )
        try:
            check_is_fitted(backbone)
        except NotFittedError:
            backbone = clone(backbone)
            if backbone.get_params().get("random_state", 0) is None:
                backbone.set_params(random_state=self.random_state)
            return backbone.fit(images)
        if tuple(backbone.image_shape_) != tuple(images.shape[1:]):
            raise ValueError(
                f"The backbone was fitted on images of shape {tuple(backbone.image_shape_)}, "
                f"but X holds images of shape {images.shape[1:]}."
            )
        return backbone

    def initialize_transforms(self, data):
        """The backbone's input transform and precision, and the strong and weak augmentations."""
        backbone = self.backbone_
        if self.precision == "auto":
            self.mixed_precision_ = backbone.mixed_precision_ and self.device_ == backbone.device_
        else:
            self.mixed_precision_ = self.precision == "bfloat16"
        self.input_transform_ = copy.deepcopy(backbone.input_transform_).to(self.device_)
        self.augment_ = self._random_augment(self._augment_defaults)
        self.weak_augment_ = self._random_augment(WEAK_AUGMENTATION, "weak_augment")

    def initialize_module(self, data, n_outputs):
        """A copy of the backbone's network under `n_heads` clustering heads."""
        network = MultiHeadNetwork(copy.deepcopy(self.backbone_.module_), n_outputs, self.n_heads)
        self.module_ = network.to(self.device_, memory_format=self._memory_format)

    def lr_factor(self, n_steps_per_epoch):
        """The base's schedule, scaled by ``self_label_lr / lr`` in the self-labelling epochs."""
        factor = super().lr_factor(n_steps_per_epoch)
        if self.self_label_lr is None:
            return factor
        return functools.partial(
            _scaled_from, factor, first_step=self.epochs * n_steps_per_epoch,
            scale=self.self_label_lr / self.lr,
        )

    def initialize_criterion(self):
        """Build ``criterion_``: the SCAN loss at `entropy_weight`."""
        self.criterion_ = functools.partial(scan_loss, entropy_weight=self.entropy_weight)

    # ---------------------------------------------------------------- the loop

    def run_epoch(self, data, targets, epoch):
        """One epoch of neighbour clustering, or of self-labelling after `epochs` of it.

        Parameters
        ----------
        data : torch.Tensor of shape (n_images, height, width, channels)
            Training images, on the CPU.
        targets : None
            Unused: an image's targets are its neighbours, or its own weak view.
        epoch : int
            Index of the epoch, from 0.

        Returns
        -------
        record : dict
            ``step``, ``loss`` and ``accuracy``; per head ``head_losses`` and the chosen
            ``head`` (neighbour clustering), or ``confident`` (self-labelling).
        """
        identities = torch.arange(len(data))
        batches = self._draw_batches(identities)
        self._self_labelling = epoch >= self.epochs
        self._epoch_data = data
        self._totals = torch.zeros(self.n_heads, device=self.device_)
        try:
            record = self.train_batches(data, identities, batches)
        finally:
            del self._epoch_data
        if self._self_labelling:
            n_seen = sum(len(batch) for batch in batches)
            return {"step": "self-label", **record, "confident": self._totals[0].item() / n_seen}
        head_losses = (self._totals / len(batches)).tolist()
        best = min(range(self.n_heads), key=head_losses.__getitem__)
        self.module_.clustering_heads.choose(best)
        return {"step": "scan", **record, "head_losses": head_losses, "head": best}

    def batch_loss(self, batch, identities):
        """The epoch's loss on a batch: neighbour clustering's or self-labelling's.

        Parameters
        ----------
        batch : torch.Tensor of shape (batch_size, height, width, channels)
            Images, on the CPU.
        identities : torch.Tensor of shape (batch_size,)
            Their indices among the training images, which find their neighbours.

        Returns
        -------
        loss : torch.Tensor
            The batch's loss (summed over the heads in neighbour clustering).
        n_correct : torch.Tensor
            Images whose neighbour (neighbour clustering) or strong view (self-labelling)
            gets their cluster.
        """
        step = self._self_label_step if self._self_labelling else self._scan_step
        return step(batch, identities)

    def _scan_step(self, batch, identities):
        drawn = torch.randint(self._neighbours.shape[1], (len(identities),),
                              generator=self._generator)
        neighbours = self._epoch_data[self._neighbours[identities, drawn]]
        inputs = self._inputs(torch.cat([batch, neighbours]), train=True)
        with self._autocast():
            logits = self.module_.all_heads(inputs)
        anchors, partners = logits.float().chunk(2, dim=1)
        totals = torch.stack([self.criterion_(anchor, partner)[0]
                              for anchor, partner in zip(anchors, partners)])
        self._totals += totals.detach()
        head = self.module_.clustering_heads.chosen_index
        agree = (anchors[head].argmax(dim=1) == partners[head].argmax(dim=1)).sum()
        return totals.sum(), agree

    def _self_label_step(self, batch, identities):
        with torch.no_grad(), self._autocast():
            weak = self.module_(self._inputs(batch, train=True, augment=self.weak_augment_))
        with self._autocast():
            strong = self.module_(self._inputs(batch, train=True))
        loss, confident = self_labelling_loss(weak, strong, self.confidence_threshold)
        self._totals[0] += confident.sum()
        return loss, (strong.argmax(dim=1) == weak.argmax(dim=1)).sum()


def _scaled_from(factor, step, *, first_step, scale):
    """`factor` at `step`, times `scale` from `first_step` on."""
    return factor(step) * (scale if step >= first_step else 1.0)
