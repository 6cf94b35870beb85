"""DeepCluster (Caron et al., 2018): a network trained on k-means clusters of its own features.

Every epoch extracts the network's penultimate features of the training images, PCA-
whitens and L2-normalises them, clusters them with k-means, re-seeds empty clusters, and
trains the network, under a freshly initialised final layer, on the cluster ids, drawing
images uniformly over clusters. The estimator runs the clusterers' epoch
(:class:`~estimators.clustering.BaseTorchClusterer`) with parts of its own: the target
source :class:`~estimators.targets.KMeansReclustering` (k-means in
:mod:`estimators.kmeans`) and the sampler :class:`~estimators.samplers.ClusterQuotaSampler`.
"""

from numbers import Integral

from sklearn.utils._param_validation import Interval, StrOptions

from .clustering import BaseTorchClusterer
from .samplers import ClusterQuotaSampler
from .targets import KMeansReclustering


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
    (:func:`~estimators.samplers.balanced_sample`). Labels are never used: ``fit(X, y)``
    and ``fit(X)`` train the same network.

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
        k-means implementation: "torch" runs :func:`~estimators.kmeans.kmeans_torch` on
        the training device, "sklearn" runs :class:`sklearn.cluster.KMeans` on the CPU,
        "auto" picks "torch" on an accelerator and "sklearn" on the CPU.
    reassign_every : int, default=1
        Epochs between two clusterings (DeepCluster: 1).
    eval_set : (X, y) tuple, default=None
        Held-out images and their labels, clustered after every epoch to record
        ``eval_nmi``, ``eval_ari``, ``eval_acc`` and ``eval_empty_clusters`` in
        `history_` (:class:`~estimators.clustering.HeldOutScore`). Never trained on.
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
        self.pca_dim = pca_dim
        self.kmeans = kmeans
        self.reassign_every = reassign_every
        self.eval_set = eval_set

    # ---------------------------------------------------------------- the parts

    def initialize_target_source(self):
        """k-means clusters of the network's features, every `reassign_every` epochs."""
        self._target_source = KMeansReclustering(
            self.n_clusters,
            pca_dim=self.pca_dim,
            kmeans=self.kmeans,
            reassign_every=self.reassign_every,
        )

    def initialize_sampler(self):
        """Draw every epoch's images with an equal quota from each cluster."""
        self._sampler = ClusterQuotaSampler()
