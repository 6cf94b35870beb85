"""Datasets: the embedded digits, CIFAR-10, class-folder trees and archives, and .npz files.

Every loader returns a :class:`Dataset` whose images are uint8 arrays of shape
(n_images, height, width, channels), channels 1 (grey) or 3 (colour), and whose labels are
int64 class indices, or None for a folder of unlabelled images.

One module per source: :mod:`.dataset` (the Dataset type, subsets, resizing, hold-out
splits), :mod:`.digits`, :mod:`.cifar10`, :mod:`.npz`, :mod:`.trees` (folders and archives,
their links, decoding) and :mod:`.cache` (decoded trees kept by content). This module
dispatches a name or a path to its loader.
"""

import os
from pathlib import Path

from results.schema import source_by_name

from ..errors import DataError
from .cache import cached_tree
from .cifar10 import CIFAR10_FOLDER, CIFAR10_URL, load_cifar10
from .dataset import Dataset, check_limit, default_data_dir, resize_dataset, subsample
from .digits import load_digits
from .npz import load_npz
from .trees import ARCHIVE_SUFFIXES, is_archive, tree_to_dataset, tree_to_images

__all__ = [
    "ARCHIVE_SUFFIXES", "BUILTIN_DATASETS", "CIFAR10_FOLDER", "CIFAR10_URL", "DataError",
    "Dataset", "default_data_dir", "load_cifar10", "load_dataset", "load_images",
    "resize_dataset", "subsample",
]

BUILTIN_DATASETS = ("digits", "cifar10")


def load_dataset(
    source,
    *,
    data_dir=None,
    cache_dir=None,
    image_size=None,
    skip_bad=False,
    limit=None,
    seed=0,
    test_size=0.2,
):
    """Load a dataset by name or path.

    Parameters
    ----------
    source : str or path
        ``"digits"``, ``"cifar10"``, or a path to a class-folder tree, a .tar / .tar.gz /
        .tgz / .zip archive of one, or an .npz file with ``X`` and ``y`` arrays (or
        ``X_train``, ``y_train``, ``X_test``, ``y_test``).
    data_dir : path, default=None
        Where CIFAR-10's ``cifar-10-batches-py`` folder lives or is downloaded to.
    cache_dir : path, default=None
        Where decoded image trees are cached, keyed by the source's content.
    image_size : tuple of (int, int), default=None
        Resize every image to (height, width), bilinearly; a tree of mixed sizes is then
        accepted instead of refused.
    skip_bad : bool, default=False
        Skip unreadable files of a tree, listing them in ``Dataset.skipped``.
    limit : int, default=None
        Keep a seeded, stratified subset of ``limit`` training images and the same share
        of the test images; a limit too small to keep a training and a test image of every
        class is refused.
    seed : int, default=0
        Seed of the hold-out split and of the subset.
    test_size : float, default=0.2
        Share of the images held out for testing when the source has no test split.

    Returns
    -------
    dataset : Dataset

    Raises
    ------
    DataError
        Naming what cannot be read and how to fix it; where a parameter fixes it, its
        ``fix`` names that parameter (``limit``, ``skip_bad``, ``image_size``,
        ``data_dir``, ``source``).
    """
    if source == "digits":
        dataset = resize_dataset(load_digits(seed, test_size), image_size)
    elif source == "cifar10":
        dataset = resize_dataset(load_cifar10(data_dir), image_size)
    else:
        dataset = _load_path(Path(source), cache_dir, image_size, skip_bad, seed, test_size)
    if limit is not None:
        check_limit(dataset, limit)
        dataset = subsample(dataset, limit, seed=seed)
    return dataset


def load_images(source, *, cache_dir=None, image_size=None, skip_bad=False):
    """Every image of a folder or archive, unsplit, with its file name and class if any.

    Parameters
    ----------
    source : str or path
        A folder or .tar / .tar.gz / .tgz / .zip archive of images, with or without class
        sub-folders (``<class>/<image>`` or ``train|test/<class>/<image>``).
    cache_dir, image_size, skip_bad
        As for :func:`load_dataset`.

    Returns
    -------
    dataset : Dataset
        All images in ``X_train``, their names in ``files``; ``y_train`` holds the class of
        each image where the tree has class folders, else None.
    """
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path} does not exist.")
    if not (path.is_dir() or is_archive(path)):
        raise DataError(f"{path} is not a folder or an archive ({', '.join(ARCHIVE_SUFFIXES)}).")
    name = _dataset_name(path)
    tree = cached_tree(path, cache_dir, image_size, skip_bad)
    return tree_to_images(name, tree, source=source_by_name(name))


def _load_path(path, cache_dir, image_size, skip_bad, seed, test_size):
    if not path.exists():
        raise DataError(
            f"Dataset {str(path)!r} is neither a built-in dataset ({', '.join(BUILTIN_DATASETS)}) "
            "nor an existing path."
        )
    name = _dataset_name(path)
    # A file cannot say it holds CIFAR-10: its name does (cifar10-jpeg.tar.gz).
    source = source_by_name(name)
    if path.suffix.lower() == ".npz":
        dataset = load_npz(path, name, seed=seed, test_size=test_size, source=source)
        return resize_dataset(dataset, image_size)
    if not (path.is_dir() or is_archive(path)):
        raise DataError(
            f"{path} is not a folder, an archive ({', '.join(ARCHIVE_SUFFIXES)}) or an .npz file."
        )
    tree = cached_tree(path, cache_dir, image_size, skip_bad)
    return tree_to_dataset(name, tree, seed, test_size, source=source)


def _dataset_name(path):
    name = Path(os.path.abspath(path)).name  # "." and ".." name the folder they stand for
    for suffix in (*ARCHIVE_SUFFIXES, ".npz"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
