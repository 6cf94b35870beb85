"""Deep features: the activations of a trained torch network, as rows for classical models.

Any torch estimator of the toolkit (supervised or not) exposes ``module_`` (a network of
named layers and a head), ``forward_batches`` (the activations of a named layer) and
``penultimate_features`` (what feeds the head's final linear layer); this module reads
activations through those alone, so that it needs no import of :mod:`estimators`, which
imports it. What a network's parts are is the networks' business
(:mod:`estimators.architectures`).
"""

import math
from numbers import Integral

import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch.nn import functional as F

from .images import check_images

# Images sent through the network at once: each chunk's activations are pooled as they
# come, so that the full-resolution activations of a whole dataset are never held.
_CHUNK_SIZE = 1024


def pooled_size(channels, height, width, max_features):
    """Output grid of the adaptive pooling that keeps about `max_features` activations.

    Parameters
    ----------
    channels, height, width : int
        Shape of one image's activations.
    max_features : int
        Budget of features per image.

    Returns
    -------
    size : (int, int)
        Height and width to pool to: the largest grid of the map's aspect ratio with
        ``channels * height * width <= max_features``, but at least 1x1 (so `channels`
        alone may exceed the budget).

    Examples
    --------
    >>> pooled_size(256, 8, 8, 10000)
    (6, 6)
    >>> pooled_size(128, 16, 16, 10000)
    (8, 8)
    >>> pooled_size(32, 1, 64, 1000)
    (1, 31)
    """
    cells = max(max_features // channels, 1)
    if height * width <= cells:
        return height, width
    pooled_height = min(height, cells, max(1, math.isqrt(cells * height // width)))
    pooled_width = min(width, cells // pooled_height, math.isqrt(cells * width // height))
    return pooled_height, max(1, pooled_width)


def learns_without_labels(estimator):
    """Whether `estimator` is fitted without labels (a clusterer, an encoder).

    Parameters
    ----------
    estimator : estimator
        A scikit-learn estimator.

    Returns
    -------
    label_free : bool
        True where its tags say it needs no target.
    """
    return not get_tags(estimator).target_tags.required


class DeepFeatures(TransformerMixin, BaseEstimator):
    """Activations of a trained torch network at a named layer, as rows of features.

    The deep-feature plug-in for classical models: images go through a backbone (any
    torch estimator of this toolkit, supervised or not, trained with or without labels)
    in eval mode, without augmentation; the activations of `layer` are pooled to about
    `max_features` values per image and flattened.

    A backbone that is already fitted is used as it is and never changed (its network is
    only run, in eval mode). An unfitted one is cloned and fitted on the data given to
    :meth:`fit` (with `y` unless it is a clusterer), so the transformer works inside
    pipelines and :class:`~sklearn.model_selection.GridSearchCV`.

    Parameters
    ----------
    backbone : torch estimator
        An estimator of :mod:`estimators` (it has ``forward_batches``, and
        ``penultimate_features`` where `layer` is None), fitted or not.
        Wrap a fitted one in :class:`sklearn.frozen.FrozenEstimator` to keep it through
        :func:`~sklearn.base.clone` (a plain clone of a fitted backbone is unfitted).
    layer : str, default=None
        Named layer of the backbone's network (``module_.layer_names``, for instance
        "stage2" or "conv3"); None takes the penultimate features, the input of the
        head's final linear layer.
    pool : {"avg", "max"}, default="avg"
        Adaptive pooling of convolutional maps larger than the budget.
    max_features : int or None, default=10000
        About how many features to keep per image: a map of C channels is pooled to
        the largest grid with at most ``max_features / C`` cells (:func:`pooled_size`).
        None keeps every activation.

    Attributes
    ----------
    backbone_ : torch estimator
        The fitted backbone: `backbone` itself when it was fitted, else a fitted clone.
    n_features_in_ : int
        Number of values per image (height x width x channels).
    image_shape_ : tuple of int
        Shape (height, width, channels) of the images.
    n_features_out_ : int
        Number of features per image in the output.

    See Also
    --------
    estimators.TorchCNNClassifier : A supervised backbone.
    features.make_pca : The PCA that usually follows.

    Notes
    -----
    Activations are computed as the backbone computes them (bfloat16 autocast on CUDA)
    and returned as float32.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from estimators import TorchCNNClassifier
    >>> digits = load_digits()
    >>> X = np.rint(digits.images * 255 / 16).astype(np.uint8)[..., None]
    >>> cnn = TorchCNNClassifier(epochs=1, module__widths=(16, 32, 32), verbose=0,
    ...                          random_state=0)
    >>> features = DeepFeatures(cnn, "stage2").fit(X[:200], digits.target[:200])
    >>> features.transform(X[:3]).shape
    (3, 128)
    """

    _parameter_constraints = {
        "backbone": [HasMethods(["fit", "forward_batches"])],
        "layer": [str, None],
        "pool": [StrOptions({"avg", "max"})],
        "max_features": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, backbone, layer=None, *, pool="avg", max_features=10000):
        self.backbone = backbone
        self.layer = layer
        self.pool = pool
        self.max_features = max_features

    def fit(self, X, y=None):
        """Take the backbone as it is if fitted, else fit a clone of it on `X` (and `y`).

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels)
            Images, uint8 in [0, 255] or floats in [0, 1].
        y : array-like of shape (n_images,), default=None
            Labels, passed to an unfitted backbone unless it learns without them (a
            clusterer, an encoder).

        Returns
        -------
        self : DeepFeatures
            The fitted transformer.
        """
        self._validate_params()
        images = check_images(X)
        backbone = self._fitted_backbone(images, y)
        self._check_layer(backbone)
        self._check_shape(images, backbone.image_shape_)
        self.backbone_ = backbone
        self.image_shape_ = images.shape[1:]
        self.n_features_in_ = math.prod(self.image_shape_)
        self.n_features_out_ = self._features(images[:1]).shape[1]
        return self

    def transform(self, X):
        """Activations of the images at the layer, pooled and flattened.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels)
            Images of the shape seen in `fit`.

        Returns
        -------
        features : ndarray of shape (n_images, n_features_out_)
            Float32 activations.
        """
        check_is_fitted(self)
        images = check_images(X)
        self._check_shape(images, self.image_shape_)
        return self._features(images)

    def _fitted_backbone(self, images, y):
        try:
            check_is_fitted(self.backbone)
        except NotFittedError:
            backbone = clone(self.backbone)
            labels = () if learns_without_labels(backbone) else (y,)
            return backbone.fit(images, *labels)
        return self.backbone

    def _check_layer(self, backbone):
        if self.layer is not None:
            backbone.module_.check_layer(self.layer)

    def _check_shape(self, images, image_shape):
        if images.shape[1:] != tuple(image_shape):
            raise ValueError(
                f"X holds images of shape {images.shape[1:]}, but the backbone works on "
                f"images of shape {tuple(image_shape)}."
            )

    def _features(self, images):
        chunks = [
            self._pooled(self._activations(images[start : start + _CHUNK_SIZE]))
            for start in range(0, len(images), _CHUNK_SIZE)
        ]
        return torch.cat(chunks).numpy()

    def _activations(self, images):
        if self.layer is None:
            return self.backbone_.penultimate_features(images)
        return self.backbone_.forward_batches(images, layer=self.layer)

    def _pooled(self, activations):
        if activations.ndim == 4 and self.max_features is not None:
            size = pooled_size(*activations.shape[1:], self.max_features)
            pool = F.adaptive_avg_pool2d if self.pool == "avg" else F.adaptive_max_pool2d
            activations = pool(activations, size)
        return activations.flatten(start_dim=1).float()
