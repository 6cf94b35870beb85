"""The Dataset type, and what every loader shares: subsets, resizing, hold-out splits, labels."""

import bisect
import functools
import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split

from ..errors import DataError


@dataclass(frozen=True)
class Dataset:
    """Images and labels split into a training and a test part.

    Attributes
    ----------
    name : str
        Short name, used in run folders and result records.
    X_train, X_test : ndarray of shape (n_images, height, width, channels), uint8
        Images. ``X_test`` is None for an unlabelled folder.
    y_train, y_test : ndarray of shape (n_images,), int64, or None
        Class indices into ``classes``; None when the images carry no labels.
    classes : tuple of str
        Class names, indexed by label.
    files : tuple of str
        Names of the training images where they come from files, else empty.
    skipped : tuple of str
        Files left out by ``skip_bad``, each with the reason.
    source : str or None
        Family of the images, as :data:`results.schema.DATASET_SOURCES` names them:
        ``"digits"``, ``"cifar10"`` (the official batches, a copy of them, or a subset of
        either) or ``"other"``. Every loader sets it; None where a dataset was made by hand.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray | None
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    classes: tuple = ()
    files: tuple = ()
    skipped: tuple = field(default=())
    source: str | None = None

    @property
    def labelled(self):
        """Whether the images carry class labels."""
        return self.y_train is not None

    @functools.cached_property
    def digest(self):
        """Hex digest of the images and labels of both parts.

        Two datasets that share a name (two folders called ``data``) tell their records
        apart by it.
        """
        content = hashlib.blake2b(digest_size=16)
        for array in (self.X_train, self.y_train, self.X_test, self.y_test):
            content.update(b"-" if array is None else np.ascontiguousarray(array).data)
        return content.hexdigest()

    @property
    def n_classes(self):
        """Number of classes, or None for unlabelled images."""
        return len(self.classes) if self.labelled else None


def default_data_dir():
    """Folder where datasets are looked for and downloaded when no ``data_dir`` is given."""
    return Path(os.environ.get("BENCHMARK_DATA_DIR", Path.home() / ".cache" / "image-benchmark"))


# --------------------------------------------------------------------------- subsets


def subsample(dataset, n_train, *, seed=0):
    """Seeded, stratified subset of ``n_train`` training images and the same share of tests.

    Parameters
    ----------
    dataset : Dataset
        Dataset to cut down.
    n_train : int
        Number of training images to keep.
    seed : int, default=0
        Seed of the draw.

    Returns
    -------
    dataset : Dataset
        A smaller dataset named ``<name>-n<n_train>``, or the same one if already small enough.
    """
    n_total = len(dataset.X_train)
    if n_train < 1:
        raise DataError(f"A limit must be a positive number of training images; got {n_train}.",
                        fix="limit")
    if n_train >= n_total:
        return dataset
    train = _stratified_subset(dataset.y_train, n_total, n_train, seed)
    parts = {"X_train": dataset.X_train[train], "y_train": _take(dataset.y_train, train)}
    if dataset.X_test is not None:
        n_test = len(dataset.X_test)
        kept = _n_test_kept(dataset, n_train)
        test = _stratified_subset(dataset.y_test, n_test, kept, seed)
        parts.update(X_test=dataset.X_test[test], y_test=_take(dataset.y_test, test))
    files = tuple(np.asarray(dataset.files)[train]) if dataset.files else ()
    return replace(dataset, name=f"{dataset.name}-n{n_train}", files=files, **parts)


def check_limit(dataset, limit):
    """Refuse a limit whose subset would leave a class without a training or a test image.

    Parameters
    ----------
    dataset : Dataset
        Dataset the limit would cut down.
    limit : int
        Number of training images to keep.

    Raises
    ------
    DataError
        Naming the smallest limit that keeps every class, with ``fix="limit"``.
    """
    if not dataset.labelled or not 1 <= limit < len(dataset.X_train):
        return  # subsample refuses a limit below 1; one at or above the size keeps all
    if _keeps_every_class(dataset, limit):
        return
    smallest = bisect.bisect_left(range(len(dataset.X_train) + 1), True,
                                  key=lambda n: n > 0 and _keeps_every_class(dataset, n))
    raise DataError(
        f"A limit of {limit} training images is too small for {dataset.name}: in a "
        f"stratified subset that small, some of its {dataset.n_classes} classes have a share "
        f"of less than one training or test image. Pass a limit of at least {smallest}, or none.",
        fix="limit",
    )


def _n_test_kept(dataset, n_train):
    """Test images a subset of `n_train` training images keeps: the same share, at least one."""
    n_test = len(dataset.X_test)
    return max(1, round(n_train / len(dataset.X_train) * n_test))


def _keeps_every_class(dataset, n_train):
    """Whether every class's share of a stratified subset is one image or more, in each part.

    A stratified draw gives each class at least its share rounded down, so it then keeps
    at least one image of every class.
    """
    parts = [(dataset.y_train, n_train)]
    if dataset.y_test is not None:
        parts.append((dataset.y_test, _n_test_kept(dataset, n_train)))
    return all(_rarest_count(y) * n_kept >= len(y) for y, n_kept in parts)


def _rarest_count(y):
    counts = np.bincount(y)
    return counts[counts > 0].min()


def _take(y, indices):
    return None if y is None else y[indices]


def _stratified_subset(y, n_total, n_keep, seed):
    indices = np.arange(n_total)
    if n_keep >= n_total:
        return indices
    stratify = y if y is not None and _can_stratify(y, n_keep) else None
    kept, _ = train_test_split(indices, train_size=n_keep, stratify=stratify, random_state=seed)
    return np.sort(kept)


def _can_stratify(y, n_keep):
    counts = np.bincount(y)
    counts = counts[counts > 0]
    return counts.min() >= 2 and n_keep >= len(counts) and len(y) - n_keep >= len(counts)


# --------------------------------------------------------------------------- resizing


def resize_dataset(dataset, image_size):
    """`dataset` with every image resized to ``image_size`` (height, width), bilinearly.

    Parameters
    ----------
    dataset : Dataset
        Images to resize.
    image_size : tuple of (int, int) or None
        Target (height, width); None, or the images' own size, returns `dataset` itself.

    Returns
    -------
    dataset : Dataset
    """
    if image_size is None or dataset.X_train.shape[1:3] == tuple(image_size):
        return dataset
    parts = {"X_train": _resize_images(dataset.X_train, image_size)}
    if dataset.X_test is not None:
        parts["X_test"] = _resize_images(dataset.X_test, image_size)
    return replace(dataset, **parts)


def _resize_images(images, image_size):
    """Resize uint8 images (n, height, width, channels) one by one, as trees are decoded."""
    resized = [
        np.asarray(resized_image(
            Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image), image_size))
        for image in images
    ]
    return np.stack(resized).reshape(len(images), *image_size, images.shape[-1])


def resized_image(image, image_size):
    """A PIL image at ``image_size`` (height, width), bilinearly; itself if already so.

    Parameters
    ----------
    image : PIL.Image.Image
        Image to resize.
    image_size : tuple of (int, int)
        Target (height, width).

    Returns
    -------
    image : PIL.Image.Image
    """
    size = (image_size[1], image_size[0])  # PIL counts width first
    return image if image.size == size else image.resize(size, Image.Resampling.BILINEAR)


# --------------------------------------------------------------------------- labels and splits


def hold_out(name, X, y, classes, seed, test_size, *, files=(), source=None):
    """A Dataset of images split by a seeded, stratified hold-out; unsplit where unlabelled.

    Parameters
    ----------
    name : str
        Name of the dataset.
    X : ndarray of shape (n_images, height, width, channels), uint8
        Every image.
    y : ndarray of shape (n_images,), int64, or None
        Class index of each image; None for unlabelled images, which stay unsplit.
    classes : sequence of str
        Class names, indexed by label.
    seed : int
        Seed of the split.
    test_size : float
        Share of the images held out for testing.
    files : sequence of str, default=()
        Name of each image, where they come from files.
    source : str, default=None
        Family of the images (:attr:`Dataset.source`).

    Returns
    -------
    dataset : Dataset
        Split in a training and a test part, or all training images where unlabelled.

    Raises
    ------
    DataError
        If a class has fewer than 2 images, which a stratified split cannot share out.
    """
    if y is None:
        return Dataset(name, X, None, files=tuple(files), source=source)
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 2:
        rare = classes[int(np.argmin(counts))]
        raise DataError(
            f"Class {rare!r} has {counts.min()} image(s); a stratified hold-out needs at least 2 "
            "per class. Add images, or give the data as train/ and test/ folders."
        )
    train, test = train_test_split(
        np.arange(len(y)), test_size=test_size, stratify=y, random_state=seed
    )
    train, test = np.sort(train), np.sort(test)
    kept_files = tuple(np.asarray(files)[train]) if len(files) else ()
    return Dataset(name, X[train], y[train], X[test], y[test], tuple(classes), kept_files,
                   source=source)


def check_test_classes_trained(source, classes, y_train, y_test):
    """Refuse test images of a class that has no training image: nothing could learn it.

    Parameters
    ----------
    source : str or path
        What the images came from, as the message names it.
    classes : sequence of str
        Class names, indexed by label.
    y_train, y_test : ndarray of shape (n_images,), int64
        Class indices of the two parts.

    Raises
    ------
    DataError
        Naming up to three such classes.
    """
    untrained = np.setdiff1d(y_test, y_train)
    if untrained.size:
        names = ", ".join(repr(classes[i]) for i in untrained[:3])
        raise DataError(f"{source}: class {names} has test images but no training images.")


def class_indices(labels):
    """Sorted class names as strings, and each label's index among them.

    Parameters
    ----------
    labels : array-like of shape (n_images,)
        A class label per image, of any type.

    Returns
    -------
    classes : tuple of str
    indices : ndarray of shape (n_images,), int64
    """
    classes, indices = np.unique(labels, return_inverse=True)
    return class_names(classes), indices.astype(np.int64)


def class_names(classes):
    """Class labels as a tuple of strings.

    Parameters
    ----------
    classes : iterable
        Class labels, of any type.

    Returns
    -------
    names : tuple of str
    """
    return tuple(str(c) for c in classes)
