"""End-to-end pseudo-label clustering (Chen et al., 2020) as a scikit-learn clusterer.

Every epoch labels each training image with the network's own K-way argmax under one
random augmentation, hands half of the largest cluster to each empty one, and trains the
network with cross-entropy on those labels under another augmentation. The estimator
runs the clusterers' epoch (:class:`~estimators.clustering.BaseTorchClusterer`) with
parts of its own: a label pass as the target source (``label_pass`` picks
:class:`~estimators.targets.SeparateLabelPass` or
:class:`~estimators.targets.ReusedLabelPass`; ``teacher_momentum``
:class:`~estimators.targets.TeacherLabelPass`), the labels' assignment (``assignment``:
argmax or Sinkhorn-Knopp), a shuffle or a cluster-weighted sampler (``balanced_sampler``,
:mod:`estimators.samplers`) with several views of each image (``n_views``), and a loss with
an entropy term (``entropy_weight``, :class:`~estimators.losses.BalancedCrossEntropy`),
and an over-clustering head trained beside the K-way one (``n_overclusters``,
:class:`~estimators.architectures.OverClusteringNetwork`). Each of the last five guards
against the collapse of the clusters in its own way.
"""

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, StrOptions

from .architectures import OverClusteringNetwork
from .clustering import BaseTorchClusterer
from .losses import BalancedCrossEntropy
from .samplers import ClusterWeightedSampler, RepeatedViews, ShuffleSampler
from .targets import ASSIGNMENTS, ReusedLabelPass, SeparateLabelPass, TeacherLabelPass


class TorchPseudoLabelClassifier(BaseTorchClusterer):
    """Cluster images by training a network on its own balanced argmax pseudo-labels.

    The method of "Unsupervised Image Classification for Deep Representation Learning"
    (Chen et al., 2020). Every epoch:

    1. label pass: each training image, under one random augmentation, goes through the
       network; its pseudo-label is the argmax of the `n_clusters`-way head;
    2. rebalance: while a cluster is empty, the largest cluster hands half of its
       images, drawn at random, to it (:func:`~estimators.clustering.rebalance_clusters`);
    3. training pass: the images, under another random augmentation, train the network
       with cross-entropy on the pseudo-labels.

    Labels are never used: ``fit(X, y)`` and ``fit(X)`` train the same network.

    Parameters
    ----------
    arch : {"fast", "alexnet", "vgg16_bn", "resnet18"}, default="fast"
        Network architecture (see :mod:`estimators.architectures`).
    n_clusters : int, default=10
        Number of clusters K, the width of the network's head.
    input : {"rgb", "sobel"}, default="rgb"
        Feed the images' own channels, or the 2 Sobel gradients of their grey levels.
    label_pass : {"separate", "reuse"}, default="separate"
        Where an epoch's pseudo-labels come from. "separate": a label pass of its own
        (eval mode, one augmentation), as the study did. "reuse": the argmax of the
        logits the previous epoch's training pass computed for each image, as the
        method's authors' code does; it saves the label pass (a forward pass, a
        quarter to a third of an epoch on a CPU). The first epoch runs one label pass
        to start.
    balanced_sampler : bool, default=False
        Draw training images uniformly over pseudo-label clusters (with replacement)
        instead of shuffling them. The study shuffled; without balancing, the large
        clusters tend to swallow the others (see Notes).
    assignment : {"argmax", "standardised", "sinkhorn"}, default="argmax"
        How a label pass's logits become labels: each image's argmax (the method's); the
        argmax of each cluster's scores centred and scaled over the images
        (:func:`~estimators.targets.standardised_argmax_labels`), against a network whose
        scores barely differ between images; or clusters of equal size by Sinkhorn-Knopp
        (SeLa, Asano et al. 2020; SwAV; :func:`~estimators.targets.sinkhorn_labels`).
        Other than "argmax" needs ``label_pass="separate"``.
    entropy_weight : float, default=0.0
        Subtract this times the entropy of each batch's mean cluster probabilities from the
        cross-entropy (IIC, SCAN; :class:`~estimators.losses.BalancedCrossEntropy`); 0: the
        method's plain cross-entropy.
    n_views : int, default=1
        Augmented views of each image in a batch, all trained on the image's one
        pseudo-label (the study's proposal; :class:`~estimators.samplers.RepeatedViews`).
        A batch keeps `batch_size` images, so an epoch costs the same and sees
        ``1 / n_views`` as many distinct images.
    precise_bn : bool, default=False
        Before each label pass, estimate the network's batch-norm statistics afresh on
        training images (PreciseBN, Wu and Johnson 2021;
        :func:`~estimators.targets.estimate_norm_statistics`) instead of labelling with the
        running averages that training kept. A deep network's running averages lag its
        weights: uic on VGG16_bn (quick profile, digits, seed 0, no dropout, 2-core AMD
        EPYC Zen 2) put every image in one cluster at its first label pass, its weights
        just drawn, and kept 5 of 10 clusters empty to the end (test NMI 0.25); with this,
        none empty at any label pass (0.45). On a 2-core Intel Xeon with AMX the same run
        still ended with 3 empty (0.25) until its learning rate fell from 0.02 to 0.005.
        Needs ``label_pass="separate"``; networks without batch norm are left as they are.
    teacher_momentum : float, default=None
        Take the labels from a teacher, an average of the network's weights that keeps
        this share of itself after every epoch (DINO, TEMI;
        :class:`~estimators.targets.TeacherLabelPass`); None labels with the network
        itself. Needs ``label_pass="separate"``.
    n_overclusters : int, default=None
        Train a second head of this many clusters beside the `n_clusters`-way one, on the
        body's penultimate features and on pseudo-labels of its own from the same label
        pass, assigned and rebalanced as the K-way head's; the loss adds both heads' terms.
        IIC (Ji et al. 2019) trains over-clustering heads of 5 to 7 times K and found that
        they "make a large difference". Only the K-way head clusters (`predict`,
        `labels_`). More than `n_clusters`; None: no second head. Needs
        ``label_pass="separate"``.
    eval_set : (X, y) tuple, default=None
        Held-out images and their labels, clustered after every epoch to record
        ``eval_nmi``, ``eval_ari``, ``eval_acc`` and ``eval_empty_clusters`` in
        `history_` (:class:`~estimators.clustering.HeldOutScore`). Never trained on.
    upsample : float, default=None
        Enlarge images by this factor (bilinear) before the network; the study enlarges
        32x32 images to 64x64 for AlexNet (``upsample=2``).
    epochs : int, default=50
        Number of epochs (each one labels, rebalances and trains).
    max_samples : int, default=None
        Train on at most this many of the images given to `fit`, drawn at random
        (seeded by `random_state`), to bound the cost of training on a large set, as
        :class:`~sklearn.ensemble.RandomForestClassifier`'s ``max_samples`` does; None
        trains on all. ``train_indices_`` lists the images drawn; ``labels_`` still
        clusters every image given to `fit`.
    batch_size : int, default=128
        Images per optimiser step (and per forward pass when labelling or predicting).
    lr : float, default=0.2
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
    label_smoothing : float, default=0.0
        Share of each pseudo-label's probability spread evenly over the clusters.
    augment : bool, default=True
        Augment images in the label and training passes (tuned through ``augment__``);
        without it the two passes see the same images.
    device : str or torch.device, default="auto"
        Device to train on; "auto" picks CUDA, then MPS, then the CPU.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Arithmetic of training and inference. "auto" uses bfloat16 autocast (with
        channels-last tensors) where the device computes bfloat16 natively (CUDA from
        Ampere on; CPUs with AMX or AVX512_BF16) and the network's input is at least 32x32,
        below which casting costs more than it saves; float32 elsewhere.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout, shuffling, augmentation and rebalancing.
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
        Cluster of each training image under the trained network (no augmentation, no
        rebalancing): what :meth:`predict` gives for the training images.
    n_features_in_ : int
        Number of values per image (height x width x channels).
    image_shape_ : tuple of int
        Shape (height, width, channels) of the training images.
    module_ : estimators.architectures.LayeredNetwork
        The trained network.
    history_ : estimators.training.History
        One record per epoch: ``epoch``, ``loss`` and ``accuracy`` (agreement with the
        pseudo-labels, on augmented images), ``sizes_before`` and ``sizes_after``
        (images per cluster before and after rebalancing), ``n_empty_before``, ``lr``,
        ``seconds``, and the ``eval_*`` scores when `eval_set` is given.
    stop_reason_ : str
        Why training stopped: "max_epochs", or the reason a callback gave.
    device_ : torch.device
        The device trained on.

    See Also
    --------
    estimators.cnn.TorchCNNClassifier : The same networks trained with labels.
    estimators.probe.LinearProbe : Linear classifier on a trained network's layer.
    estimators.clustering.rebalance_clusters : The rebalancing step.
    estimators.targets.ReusedLabelPass : The targets of ``label_pass="reuse"``.

    Notes
    -----
    The study's settings (the ``paper`` profile) are ``optimizer="sgd", momentum=0.9,
    batch_size=256, weight_decay=1e-4, module__dropout=0.5, lr=1e-4, epochs=500,
    lr_schedule="step", lr_milestones=[400], lr_gamma=0.1``. The defaults are tuned for
    the ``fast`` network on small images in a few CPU minutes.

    Without `balanced_sampler`, cross-entropy on unbalanced pseudo-labels raises the
    network's prior for the large clusters, which then grow further: on digits (the
    defaults, 50 epochs) four of the 10 clusters end up empty or nearly so, and the
    held-out NMI stalls at 0.5. With it, the same settings reach 0.74, and 0.75 to 0.82
    with ``module__widths=(32, 64, 64)`` (seeds 0 to 2).

    With `balanced_sampler` and ``label_pass="reuse"``, an image drawn more than once
    takes the argmax of one of its draws, and an image not drawn keeps its label.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> digits = load_digits()
    >>> X = np.rint(digits.images * 255 / 16).astype(np.uint8)[..., None]
    >>> uic = TorchPseudoLabelClassifier(epochs=2, module__widths=(16, 32, 32), verbose=0,
    ...                                  random_state=0).fit(X[:200])
    >>> uic.labels_.shape, uic.predict(X[:3]).shape
    ((200,), (3,))
    """

    _parameter_constraints = {
        **BaseTorchClusterer._parameter_constraints,
        "label_pass": [StrOptions({"separate", "reuse"})],
        "balanced_sampler": ["boolean"],
        "assignment": [StrOptions(set(ASSIGNMENTS))],
        "entropy_weight": [Interval(Real, 0, None, closed="left")],
        "n_views": [Interval(Integral, 1, None, closed="left")],
        "precise_bn": ["boolean"],
        "teacher_momentum": [Interval(Real, 0, 1, closed="left"), None],
        "n_overclusters": [Interval(Integral, 2, None, closed="left"), None],
    }

    def __init__(
        self,
        arch="fast",
        n_clusters=10,
        *,
        input="rgb",
        label_pass="separate",
        balanced_sampler=False,
        assignment="argmax",
        entropy_weight=0.0,
        n_views=1,
        precise_bn=False,
        teacher_momentum=None,
        n_overclusters=None,
        eval_set=None,
        upsample=None,
        epochs=50,
        max_samples=None,
        batch_size=128,
        lr=0.2,
        momentum=0.9,
        weight_decay=5e-4,
        optimizer="sgd",
        lr_schedule="cosine",
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
        self.n_clusters = n_clusters
        self.label_pass = label_pass
        self.balanced_sampler = balanced_sampler
        self.assignment = assignment
        self.entropy_weight = entropy_weight
        self.n_views = n_views
        self.precise_bn = precise_bn
        self.teacher_momentum = teacher_momentum
        self.n_overclusters = n_overclusters
        self.eval_set = eval_set

    def _check_params(self):
        super()._check_params()
        if self.n_overclusters is not None and self.n_overclusters <= self.n_clusters:
            raise ValueError(
                f"n_overclusters={self.n_overclusters} should be larger than "
                f"n_clusters={self.n_clusters}: an over-clustering head has more clusters."
            )

    # ---------------------------------------------------------------- the parts

    def initialize_target_source(self):
        """Pseudo-labels from a label pass of the network or its teacher every epoch, or
        from the last training pass."""
        assign = ASSIGNMENTS[self.assignment]
        if self.label_pass == "reuse":
            needing_logits = {
                "assignment": self.assignment != "argmax",
                "precise_bn": self.precise_bn,
                "teacher_momentum": self.teacher_momentum is not None,
                "n_overclusters": self.n_overclusters is not None,
            }
            offending = [f"{name}={getattr(self, name)!r}"
                         for name, needs in needing_logits.items() if needs]
            if offending:
                raise ValueError(
                    'label_pass="reuse" takes the argmax of the training pass; '
                    f"{' and '.join(offending)} {'needs' if len(offending) == 1 else 'need'} "
                    "a label pass of their own "
                    '(label_pass="separate").'
                )
            self._target_source = ReusedLabelPass()
        elif self.teacher_momentum is not None:
            self._target_source = TeacherLabelPass(self.teacher_momentum, assign,
                                                   precise_bn=self.precise_bn)
        else:
            self._target_source = SeparateLabelPass(assign, precise_bn=self.precise_bn)

    def initialize_sampler(self):
        """Draw batches uniformly over clusters with `balanced_sampler`, else shuffle;
        repeat each image `n_views` times in its batch."""
        sampler = ClusterWeightedSampler() if self.balanced_sampler else ShuffleSampler()
        self._sampler = sampler if self.n_views == 1 else RepeatedViews(sampler, self.n_views)

    def initialize_criterion(self):
        """Cross-entropy, less `entropy_weight` times the batch's assignment entropy."""
        if not self.entropy_weight:
            return super().initialize_criterion()
        if self._routed("criterion"):
            raise ValueError(
                f"entropy_weight={self.entropy_weight} replaces the cross-entropy loss, which "
                f"takes the criterion__ parameters {sorted(self._routed('criterion'))}; drop "
                "them or set entropy_weight=0."
            )
        self.criterion_ = BalancedCrossEntropy(self.entropy_weight, self.label_smoothing)

    def initialize_module(self, data, n_outputs):
        """Build the network as the base does, with an over-clustering head beside its own
        where `n_overclusters` asks for one."""
        super().initialize_module(data, n_outputs)
        if self.n_overclusters is not None:
            network = OverClusteringNetwork(self.module_, self.n_overclusters)
            self.module_ = network.to(self.device_, memory_format=self._memory_format)

    @property
    def _head_widths(self):
        if self.n_overclusters is None:
            return super()._head_widths
        return (self.n_clusters, self.n_overclusters)

    def batch_loss(self, batch, targets):
        """The loss of the K-way head and, with `n_overclusters`, the over-clustering head's.

        Parameters
        ----------
        batch : torch.Tensor of shape (batch_size, height, width, channels)
            Images, on the CPU.
        targets : torch.Tensor of shape (batch_size,) or (batch_size, 2)
            Their pseudo-labels: the K-way head's, then the over-clustering head's.

        Returns
        -------
        loss : torch.Tensor
            The sum of the heads' losses (a scalar on the device).
        n_correct : torch.Tensor
            How many images the K-way head puts in their pseudo-label's cluster.
        """
        if self.n_overclusters is None:
            return super().batch_loss(batch, targets)
        inputs = self._inputs(batch, train=True)
        targets = targets.to(self.device_, non_blocking=True)
        with self._autocast():
            logits, overclustering = self.module_.heads(inputs)
        loss = (self.criterion_(logits.float(), targets[:, 0])
                + self.criterion_(overclustering.float(), targets[:, 1]))
        return loss, (logits.argmax(dim=1) == targets[:, 0]).sum()
