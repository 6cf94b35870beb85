"""Validation of image arrays, and the classical path: scale, flatten, PCA."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_array, check_is_fitted, validate_data


def check_images(X, *, name="X"):
    """Validate an image array and return it as (n_images, height, width, channels).

    Parameters
    ----------
    X : array-like of shape (n_images, height, width, channels) or (n_images, height, width)
        Images, uint8 in [0, 255] or floats in [0, 1]. A 3-d array is read as grey images.
        Integer images of other dtypes must hold values in [0, 255]; they become uint8.
    name : str, default="X"
        Name used in error messages.

    Returns
    -------
    images : ndarray of shape (n_images, height, width, channels)
        The images, uint8 or floating point, never copied when already uint8 or floats.

    Raises
    ------
    ValueError
        If the array is empty, has the wrong number of dimensions, a channel count other than
        1, 2 or 3, holds NaN or infinite values, or integers outside [0, 255].
    """
    images = np.asarray(X)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4:
        raise ValueError(
            f"{name} must be images of shape (n_images, height, width, channels) "
            f"or (n_images, height, width); got an array of shape {images.shape}."
        )
    if images.shape[0] == 0:
        raise ValueError(f"{name} holds no images (shape {images.shape}).")
    if images.shape[-1] not in (1, 2, 3):
        raise ValueError(
            f"{name} must have 1, 2 or 3 channels in its last axis; got shape {images.shape}. "
            "Channels-first arrays must be moved to channels-last."
        )
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    if images.dtype.kind not in "uif":
        raise ValueError(f"{name} must hold numbers; got dtype {images.dtype}.")
    if images.dtype.kind in "ui" and images.dtype != np.uint8:
        images = _as_uint8(images, name)
    return images


def _as_uint8(images, name):
    """Integer pixels of another dtype, as the uint8 values they must be."""
    low, high = images.min(), images.max()
    if low < 0 or high > 255:
        raise ValueError(
            f"{name} holds integer pixels from {low} to {high}; integer images must hold "
            "values in [0, 255] (or give floats in [0, 1])."
        )
    return images.astype(np.uint8)


class ImageFlattener(TransformerMixin, BaseEstimator):
    """Scale images to [0, 1] and flatten each one to a row of features.

    The first step of every classical pipeline: uint8 pixels are divided by 255,
    floating-point images are taken to be in [0, 1] already. A 2-d input is taken to be
    images already flattened and is only scaled.

    Parameters
    ----------
    dtype : {"float32", "float64"} or None, default=None
        Dtype of the output. None keeps float32 and float64 input as it is and gives
        float32 for anything else: it halves the memory of a 50,000-image CIFAR-10 matrix.

    Attributes
    ----------
    image_shape_ : tuple of int
        Shape of one image seen in `fit` (height, width, channels), or (n_features,).
    n_features_in_ : int
        Number of values per image.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names of a 2-d DataFrame seen in `fit`, if it had string names.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.full((2, 4, 4, 3), 255, dtype=np.uint8)
    >>> ImageFlattener().fit_transform(X).shape
    (2, 48)
    """

    def __init__(self, dtype=None):
        self.dtype = dtype

    def fit(self, X, y=None):
        """Record the image shape.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels) or (n_images, n_values)
            Training images.
        y : None
            Ignored.

        Returns
        -------
        self : ImageFlattener
            The fitted transformer.
        """
        self._validate(X, reset=True)
        return self

    def transform(self, X):
        """Scale and flatten images.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels) or (n_images, n_values)
            Images of the shape seen in `fit`.

        Returns
        -------
        features : ndarray of shape (n_images, height * width * channels)
            Pixel values in [0, 1], of the dtype `dtype` names.
        """
        check_is_fitted(self)
        flat = self._validate(X, reset=False)
        dtype = self._output_dtype(flat.dtype)
        if flat.dtype == np.uint8:
            return np.multiply(flat, 1 / 255, dtype=dtype)
        return flat.astype(dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # grey images (n_images, height, width)
        tags.transformer_tags.preserves_dtype = (
            ["float64", "float32"] if self.dtype is None else [np.dtype(self.dtype).name])
        return tags

    def _validate(self, X, *, reset):
        """`X` checked and flattened to (n_images, n_values); its shape recorded or compared.

        Sparse, complex, object, empty or non-finite input is refused by scikit-learn's
        checks; arrays of more than 2 dimensions must then be images.
        """
        array = check_array(X, allow_nd=True, dtype="numeric", input_name="X")
        images = array if array.ndim == 2 else check_images(array)
        flat = images.reshape(len(images), -1)
        # Feature names and counts come from a 2-d X itself, from the flat values of images.
        validate_data(self, X if array.ndim == 2 else flat, reset=reset, skip_check_array=True)
        if reset:
            self.image_shape_ = images.shape[1:]
        elif images.shape[1:] != self.image_shape_:
            raise ValueError(
                f"Images of shape {images.shape[1:]} were given, but the transformer was fitted "
                f"on images of shape {self.image_shape_}."
            )
        return flat

    def _output_dtype(self, dtype):
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)


def make_pca(*, variance=0.99, random_state=None):
    """PCA keeping a share of the variance, with the fastest exact solver for tall data.

    ``svd_solver="covariance_eigh"`` eigendecomposes the feature covariance matrix: on
    50,000 x 3,072 CIFAR-10 pixels it fits in about 4 s where the full SVD takes about 25 s.

    Parameters
    ----------
    variance : float, default=0.99
        Share of the variance to keep, in (0, 1).
    random_state : int, RandomState instance or None, default=None
        Passed to PCA (unused by the exact solver, kept for reproducible pipelines).

    Returns
    -------
    pca : sklearn.decomposition.PCA
        An unfitted PCA.
    """
    return PCA(n_components=variance, svd_solver="covariance_eigh", random_state=random_state)
