"""Linear probe: a linear classifier on the frozen activations of a trained network's layer."""

import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from torch.nn import functional as F

from .architectures import _did_you_mean, build_network


def pool_size(shape, max_features):
    """Largest square average-pooling grid that keeps a layer under `max_features` values.

    Parameters
    ----------
    shape : (int, int, int)
        Shape (channels, height, width) of one image's activations.
    max_features : int
        Features wanted at most; a layer with more channels than that keeps one value
        per channel.

    Returns
    -------
    size : (int, int)
        Height and width of the pooled activations, no larger than the layer's own.

    Examples
    --------
    >>> pool_size((384, 8, 8), 10000)
    (5, 5)
    >>> pool_size((64, 1, 64), 10000)
    (1, 12)
    """
    channels, height, width = shape
    side = max(math.isqrt(max_features // channels), 1)
    return min(height, side), min(width, side)


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Logistic regression on the pooled activations of a frozen network's named layer.

    The backbone (a torch estimator of this toolkit) is never trained here: its
    activations at `layer` are computed in eval mode (batch norm uses its running
    statistics, dropout is off), average-pooled to a grid small enough to keep at most
    about `max_features` values, standardised, and fed to a multinomial logistic
    regression, a single linear layer with a softmax. An unfitted backbone is first
    cloned and fitted on the same data, so that ``LinearProbe(TorchPseudoLabelClassifier(),
    "stage2")`` runs through a harness like any classifier (an unsupervised backbone
    ignores the labels).

    Parameters
    ----------
    backbone : estimator
        A torch estimator of this toolkit (it has ``forward_batches``), fitted or not. A
        fitted one is used as it is and left unchanged.
    layer : str
        Name of the layer to probe, one of the backbone network's ``layer_names`` (for
        instance ``"conv3"`` of AlexNet, ``"block5"`` of ResNet18, ``"stage2"`` of the
        fast network).
    max_features : int, default=10000
        Features per image at most, after pooling (more only where the layer has more
        channels than that).
    C : float, default=1.0
        Inverse strength of the L2 penalty of the logistic regression.
    max_iter : int, default=1000
        Iterations of the logistic regression's L-BFGS solver at most.
    tol : float, default=1e-4
        Tolerance of the solver's stopping criterion.

    Attributes
    ----------
    backbone_ : estimator
        The fitted backbone: `backbone` itself if it was fitted, else a fitted clone.
    pool_size_ : (int, int)
        Height and width the layer's activations are pooled to.
    scaler_ : sklearn.preprocessing.StandardScaler
        Standardisation of the pooled features.
    linear_ : sklearn.linear_model.LogisticRegression
        The linear classifier; ``linear_.coef_`` has shape (n_classes, n_pooled_features)
        (one row for 2 classes).
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    n_features_in_ : int
        Number of values per image, as the backbone counts them.

    See Also
    --------
    estimators.pseudolabel.TorchPseudoLabelClassifier : An unsupervised backbone.
    estimators.cnn.TorchCNNClassifier : A supervised backbone.

    Notes
    -----
    :func:`sklearn.base.clone` clones the backbone too, so a search or a
    cross-validation over the probe refits an unfitted copy of it for every fit. To
    probe one fitted backbone throughout, wrap it in
    :class:`sklearn.frozen.FrozenEstimator`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from estimators import TorchPseudoLabelClassifier
    >>> digits = load_digits()
    >>> X = np.rint(digits.images * 255 / 16).astype(np.uint8)[..., None]
    >>> backbone = TorchPseudoLabelClassifier(epochs=1, module__widths=(16, 32, 32),
    ...                                       verbose=0, random_state=0)
    >>> probe = LinearProbe(backbone, "stage2").fit(X[:200], digits.target[:200])
    >>> probe.linear_.coef_.shape
    (10, 128)
    """

    _parameter_constraints = {
        "backbone": [HasMethods(["fit", "forward_batches"])],
        "layer": [str],
        "max_features": [Interval(Integral, 1, None, closed="left")],
        "C": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, backbone, layer, *, max_features=10000, C=1.0, max_iter=1000, tol=1e-4):
        self.backbone = backbone
        self.layer = layer
        self.max_features = max_features
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y):
        """Fit the backbone if it is not fitted, then the linear classifier on its layer.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels)
            Training images, as the backbone takes them.
        y : array-like of shape (n_images,)
            Labels, of any type.

        Returns
        -------
        self : LinearProbe
            The fitted probe.
        """
        self._validate_params()
        check_classification_targets(y)
        fitted = _is_fitted(self.backbone)
        # Fail before a long backbone fit, not after it.
        network = self.backbone.module_ if fitted else build_network(self.backbone.arch, 1, 2)
        self._check_layer(network.layer_names)
        backbone = self.backbone if fitted else clone(self.backbone).fit(X, y)
        images = backbone._validate_images(X, reset=False)
        shape = backbone.forward_batches(images[:1], layer=self.layer).shape[1:]
        size = pool_size(shape, self.max_features)
        features = _pooled_activations(backbone, self.layer, images, size)
        scaler = StandardScaler().fit(features)
        linear = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol)
        linear.fit(scaler.transform(features), y)
        self.backbone_ = backbone
        self.pool_size_ = size
        self.scaler_ = scaler
        self.linear_ = linear
        self.classes_ = linear.classes_
        self.n_features_in_ = backbone.n_features_in_
        return self

    def _check_layer(self, layer_names):
        if self.layer not in layer_names:
            raise ValueError(
                f"Unknown layer {self.layer!r} for {self.backbone.arch!r}; valid layers: "
                f"{list(layer_names)}.{_did_you_mean(self.layer, layer_names)}"
            )

    def _features(self, X):
        check_is_fitted(self)
        images = self.backbone_._validate_images(X, reset=False)
        features = _pooled_activations(self.backbone_, self.layer, images, self.pool_size_)
        return self.scaler_.transform(features)

    def decision_function(self, X):
        """Class scores of images: the linear classifier's logits.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels)
            Images of the shape the backbone was fitted on.

        Returns
        -------
        scores : ndarray of shape (n_images, n_classes) or (n_images,)
            One score per class (one per image for 2 classes).
        """
        return self.linear_.decision_function(self._features(X))

    def predict_proba(self, X):
        """Class probabilities of images.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels)
            Images of the shape the backbone was fitted on.

        Returns
        -------
        proba : ndarray of shape (n_images, n_classes)
            Probability of each class, in the order of `classes_`.
        """
        return self.linear_.predict_proba(self._features(X))

    def predict(self, X):
        """Class labels of images.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels)
            Images of the shape the backbone was fitted on.

        Returns
        -------
        labels : ndarray of shape (n_images,)
            The most probable class of each image.
        """
        return self.linear_.predict(self._features(X))


def _is_fitted(estimator):
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def _pooled_activations(backbone, layer, images, size):
    """Average-pooled, flattened activations of a layer, computed a batch at a time.

    A batch at a time because a whole dataset's activations at an early layer would not
    fit in memory.
    """
    chunks = [
        F.adaptive_avg_pool2d(
            backbone.forward_batches(images[start : start + backbone.batch_size], layer=layer),
            size,
        ).flatten(1)
        for start in range(0, len(images), backbone.batch_size)
    ]
    return np.concatenate([chunk.numpy() for chunk in chunks])
