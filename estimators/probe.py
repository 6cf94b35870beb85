"""Linear probe: a linear classifier on the frozen activations of a trained network's layer."""

from numbers import Integral

from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from features.deep import DeepFeatures

from .architectures import build_network


def _classifier_has(method):
    """Whether the probe's classifier, fitted or to be fitted, has `method`."""

    def check(probe):
        fitted = getattr(probe, "classifier_", None)
        return hasattr(fitted if fitted is not None else probe._unfitted_classifier(), method)

    return check


class LinearProbe(ClassifierMixin, BaseEstimator):
    """A linear classifier on the pooled activations of a frozen network's named layer.

    The backbone (a torch estimator of this toolkit) is never trained here: its
    activations at `layer` are computed in eval mode (batch norm uses its running
    statistics, dropout is off) by :class:`features.DeepFeatures`, average-pooled to a
    grid small enough to keep at most about `max_features` values, standardised, and fed
    to `classifier`: by default a multinomial logistic regression, a single linear layer
    with a softmax. An unfitted backbone is first cloned and fitted on the same data, so
    that ``LinearProbe(TorchPseudoLabelClassifier(), "stage2")`` runs through a harness
    like any classifier (an unsupervised backbone ignores the labels).

    Parameters
    ----------
    backbone : estimator
        A torch estimator of this toolkit (it has ``forward_batches``), fitted or not. A
        fitted one is used as it is and left unchanged.
    layer : str or None
        Name of the layer to probe, one of the backbone network's ``layer_names`` (for
        instance ``"conv3"`` of AlexNet, ``"block5"`` of ResNet18, ``"stage2"`` of the
        fast network); None probes the penultimate features (the input of the head's final
        linear layer, or a contrastive encoder's representation).
    max_features : int, default=10000
        Features per image at most, after pooling (more only where the layer has more
        channels than that).
    classifier : classifier, default=None
        What is fitted on the standardised pooled activations; None means
        ``LogisticRegression(max_iter=1000)``. To be a probe it must be linear: a
        logistic regression, a linear SVM, or a search over one, such as
        ``GridSearchCV(LogisticRegression(), {"C": [0.01, 0.1, 1]})`` to choose the
        strength of its penalty (a search over the probe itself would recompute the
        activations for every candidate).

    Attributes
    ----------
    backbone_ : estimator
        The fitted backbone: `backbone` itself if it was fitted, else a fitted clone.
    features_ : features.DeepFeatures
        The layer's pooled activations (:func:`features.deep.pooled_size` gives the grid).
    scaler_ : sklearn.preprocessing.StandardScaler
        Standardisation of the pooled features.
    classifier_ : estimator
        The fitted clone of `classifier`. The default's ``coef_`` has shape
        (n_classes, n_pooled_features) (one row for 2 classes).
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
    >>> probe.classifier_.coef_.shape
    (10, 128)
    """

    _parameter_constraints = {
        "backbone": [HasMethods(["fit", "forward_batches"])],
        "layer": [str, None],
        "max_features": [Interval(Integral, 1, None, closed="left")],
        "classifier": [HasMethods(["fit", "predict"]), None],
    }

    def __init__(self, backbone, layer, *, max_features=10000, classifier=None):
        self.backbone = backbone
        self.layer = layer
        self.max_features = max_features
        self.classifier = classifier

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
        if self.layer is not None and not _is_fitted(self.backbone):
            # Fail before a long backbone fit, not after it.
            build_network(self.backbone.arch, 1, 2).check_layer(self.layer)
        self.features_ = DeepFeatures(
            self.backbone, self.layer, max_features=self.max_features
        ).fit(X, y)
        features = self.features_.transform(X)
        self.scaler_ = StandardScaler().fit(features)
        self.classifier_ = self._unfitted_classifier().fit(self.scaler_.transform(features), y)
        self.backbone_ = self.features_.backbone_
        self.classes_ = self.classifier_.classes_
        self.n_features_in_ = self.features_.n_features_in_
        return self

    def _unfitted_classifier(self):
        if self.classifier is None:
            return LogisticRegression(max_iter=1000)
        return clone(self.classifier)

    def _features(self, X):
        check_is_fitted(self)
        return self.scaler_.transform(self.features_.transform(X))

    @available_if(_classifier_has("decision_function"))
    def decision_function(self, X):
        """Class scores of images: the classifier's decision function (the default's logits).

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels)
            Images of the shape the backbone was fitted on.

        Returns
        -------
        scores : ndarray of shape (n_images, n_classes) or (n_images,)
            One score per class (one per image for 2 classes).
        """
        return self.classifier_.decision_function(self._features(X))

    @available_if(_classifier_has("predict_proba"))
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
        return self.classifier_.predict_proba(self._features(X))

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
        return self.classifier_.predict(self._features(X))


def _is_fitted(estimator):
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True
