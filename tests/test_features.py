"""Tests of the transformers on image arrays: pixels flattened, and a network's features.

Every network is tiny (narrow, a few epochs, 8x8 digits), so the file runs in seconds.
"""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import check_estimator

from estimators import DeepClusterClassifier, TorchCNNClassifier
from features import DeepFeatures, ImageFlattener
from features.deep import pooled_size
from conftest import TINY, assert_same_weights, weights_of

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# Measured: 0.96 test accuracy for logistic regression on the stage2 activations.
DEEP_FEATURES_ACCURACY_FLOOR = 0.9


# ------------------------------------------------------------------ pixels


def test_image_flattener_scales_and_refuses_bad_shapes_and_nans():
    images = np.full((3, 4, 5, 3), 255, np.uint8)
    flat = ImageFlattener().fit(images).transform(images)
    assert flat.shape == (3, 60) and flat.dtype == np.float32 and flat.max() == 1
    with pytest.raises(ValueError, match=r"fitted on images of shape \(4, 5, 3\)"):
        ImageFlattener().fit(images).transform(np.zeros((2, 5, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        ImageFlattener().fit(np.full((2, 3, 3, 1), np.nan))
    with pytest.raises(ValueError, match=r"got an array of shape \(2, 3, 3, 3, 3\)"):
        ImageFlattener().fit(np.zeros((2, 3, 3, 3, 3)))
    # integer pixels of any dtype are 0-255 values, scaled as uint8 ones
    wide = images.astype(np.int64)
    np.testing.assert_array_equal(ImageFlattener().fit(wide).transform(wide), flat)
    wide[0, 0, 0, 0] = 256
    with pytest.raises(ValueError, match="integer pixels from 255 to 256"):
        ImageFlattener().fit(wide)


def test_image_flattener_passes_scikit_learn_checks_and_keeps_float_dtypes():
    check_estimator(ImageFlattener(), on_skip=None)
    for dtype in (np.float32, np.float64):
        assert ImageFlattener().fit_transform(np.zeros((2, 3, 3), dtype)).dtype == dtype
    assert ImageFlattener(dtype="float32").fit_transform(np.zeros((2, 4))).dtype == np.float32


@pytest.fixture(scope="module")
def fitted_cnn(digits):
    X_train, _, y_train, _ = digits
    return TorchCNNClassifier(**TINY, epochs=3, random_state=0).fit(X_train, y_train)


# ------------------------------------------------------------------ a network's features


def test_pooled_size():
    assert pooled_size(256, 8, 8, 10000) == (6, 6)
    assert pooled_size(32, 1, 64, 1000) == (1, 31)
    assert pooled_size(16, 4, 4, 10000) == (4, 4)
    assert pooled_size(512, 4, 4, 100) == (1, 1)
    assert pooled_size(20000, 4, 4, 10000) == (1, 1)
    # a square map pools to a square grid: 128 x 8 x 8 = 8192, where 8 x 9 cells would fit
    assert pooled_size(128, 16, 16, 10000) == (8, 8)


def test_deep_features_in_a_classical_pipeline(digits):
    X_train, X_test, y_train, y_test = digits
    backbone = TorchCNNClassifier(**TINY, epochs=3, random_state=0)
    pipeline = make_pipeline(
        DeepFeatures(backbone, "stage2"), PCA(0.99), LogisticRegression(max_iter=1000)
    )
    pipeline.fit(X_train, y_train)
    assert pipeline.score(X_test, y_test) >= DEEP_FEATURES_ACCURACY_FLOOR
    deep = pipeline[0]
    assert deep.backbone_ is not backbone and not hasattr(backbone, "module_")
    assert deep.n_features_out_ == 32 * 2 * 2 == pipeline[1].n_features_in_


def test_deep_features_leave_a_fitted_backbone_unchanged(digits, fitted_cnn):
    X_train, X_test, y_train, _ = digits
    weights = weights_of(fitted_cnn)
    attributes = set(vars(fitted_cnn))
    predictions = fitted_cnn.predict_proba(X_test)
    deep = DeepFeatures(fitted_cnn, "stage1", max_features=40).fit(X_train, y_train)
    features = deep.transform(X_test)
    assert deep.backbone_ is fitted_cnn
    assert_same_weights(weights, weights_of(fitted_cnn))
    assert set(vars(fitted_cnn)) == attributes
    np.testing.assert_array_equal(predictions, fitted_cnn.predict_proba(X_test))
    # stage1 is 16 maps of 4x4, pooled to the largest square grid within 40 features: 1x1.
    assert features.shape == (len(X_test), 16) and features.dtype == np.float32


def test_deep_features_clone_and_frozen_backbone(digits, fitted_cnn):
    X_train, X_test, y_train, _ = digits
    deep = DeepFeatures(TorchCNNClassifier(**TINY, epochs=1), "stage2", max_features=64)
    copy = clone(deep.set_params(backbone__module__widths=(8, 16, 16)))
    assert copy.get_params()["backbone__module__widths"] == (8, 16, 16)
    assert copy.get_params()["max_features"] == 64
    # A frozen backbone survives clone (as in a grid search) and is not refitted.
    frozen = FrozenEstimator(fitted_cnn)
    deep = clone(DeepFeatures(frozen)).fit(X_train[:50], y_train[:50])
    assert deep.backbone_ is frozen
    assert deep.transform(X_test[:5]).shape == (5, 32)  # penultimate: 32 channels, pooled


def test_deep_features_fit_an_unsupervised_backbone_without_labels(small_digits):
    X, y = small_digits
    backbone = DeepClusterClassifier(**TINY, lr=0.5, random_state=0, epochs=1)
    deep = DeepFeatures(backbone).fit(X, y)
    reference = DeepClusterClassifier(**TINY, lr=0.5, random_state=0, epochs=1).fit(X)
    assert_same_weights(weights_of(deep.backbone_), weights_of(reference))
    assert deep.transform(X[:4]).shape == (4, 32)


def test_deep_features_unknown_layer_lists_the_valid_ones(small_digits, fitted_cnn):
    X, y = small_digits
    with pytest.raises(ValueError, match=r"\['stage1', 'stage2', 'stage3'\]"):
        DeepFeatures(fitted_cnn, "stage4").fit(X, y)
