"""Datasets stored as .npz files of uint8 images and their labels."""

import numpy as np

from features import check_images

from ..errors import DataError
from .dataset import Dataset, check_test_classes_trained, class_indices, hold_out


def load_npz(path, name, *, seed=0, test_size=0.2, source=None):
    """A dataset from an .npz file with ``X`` and ``y``, or ``X_train``, ``y_train``,
    ``X_test`` and ``y_test``.

    Parameters
    ----------
    path : path
        The .npz file; images uint8 of shape (N, H, W, C) (or (N, H, W) for grey), labels
        of any type, or none for unlabelled images.
    name : str
        Name of the dataset.
    seed : int, default=0
        Seed of the hold-out split of ``X`` and ``y``.
    test_size : float, default=0.2
        Share of ``X`` held out for testing.
    source : str, default=None
        Family of the images (:attr:`Dataset.source`).

    Returns
    -------
    dataset : Dataset
    """
    try:
        arrays = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}).") from exc
    if "X_train" in arrays:
        return _split_arrays(arrays, path, name, source)
    if "X" not in arrays:
        raise DataError(f"{path} must hold an array X (and y), or X_train/y_train/X_test/y_test; "
                        f"it holds {sorted(arrays)}.")
    X = _npz_images(arrays, "X", path)
    if "y" not in arrays:
        return Dataset(name, X, None, source=source)
    classes, y = _encode_labels(arrays["y"], path)
    _check_lengths(path, X, y)
    return hold_out(name, X, y, classes, seed, test_size, source=source)


def _split_arrays(arrays, path, name, source):
    """The dataset of an .npz file that holds its own train/test split."""
    X_train, X_test = _npz_images(arrays, "X_train", path), _npz_images(arrays, "X_test", path)
    y_train, y_test = arrays.get("y_train"), arrays.get("y_test")
    if (y_train is None) != (y_test is None):
        raise DataError(f"{path} must hold both y_train and y_test, or neither.")
    _check_same_image_shape(path, X_train, X_test)
    if y_train is None:
        return Dataset(name, np.concatenate([X_train, X_test]), None, source=source)
    classes, y = _encode_labels(np.concatenate([y_train, y_test]), path)
    _check_lengths(path, X_train, y[: len(y_train)])
    _check_lengths(path, X_test, y[len(y_train) :])
    check_test_classes_trained(path, classes, y[: len(y_train)], y[len(y_train) :])
    return Dataset(name, X_train, y[: len(y_train)], X_test, y[len(y_train) :], classes,
                   source=source)


def _npz_images(arrays, key, path):
    if key not in arrays:
        raise DataError(f"{path} has no array {key!r}; it holds {sorted(arrays)}.")
    try:
        images = check_images(arrays[key], name=f"{path.name}[{key!r}]")
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    if images.dtype != np.uint8:
        raise DataError(
            f"{path.name}[{key!r}] must be uint8 images in [0, 255]; got dtype {images.dtype}."
        )
    return images


def _encode_labels(y, path):
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"Labels in {path} must be one-dimensional; got shape {y.shape}.")
    if y.dtype.kind in "fc" and np.isnan(y).any():
        raise DataError(f"Labels in {path} hold {int(np.isnan(y).sum())} NaN value(s); every "
                        "image needs a class.")
    return class_indices(y)


def _check_same_image_shape(path, X_train, X_test):
    if X_train.shape[1:] != X_test.shape[1:]:
        raise DataError(
            f"{path} holds training images of shape {X_train.shape[1:]} but test images of "
            f"shape {X_test.shape[1:]} (height, width, channels); they must match."
        )


def _check_lengths(path, X, y):
    if len(X) != len(y):
        raise DataError(f"{path} holds {len(X)} images but {len(y)} labels.")
