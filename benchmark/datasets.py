"""Datasets: the embedded digits, CIFAR-10, class-folder trees and archives, and .npz files.

Every loader returns a :class:`Dataset` whose images are uint8 arrays of shape
(n_images, height, width, channels), channels 1 (grey) or 3 (colour), and whose labels are
int64 class indices, or None for a folder of unlabelled images.
"""

import bisect
import errno
import functools
import hashlib
import io
import json
import logging
import os
import pickle
import posixpath
import shutil
import tarfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from features import check_images
from results import atomic_write

from .errors import DataError

BUILTIN_DATASETS = ("digits", "cifar10")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CACHE_FORMAT = 2  # 2: grey images of 16 bits scaled, not clipped
_GREY_MODES = frozenset({"1", "L", "LA", "La"})
# Grey modes of more than 8 bits, read as arrays and scaled down to 8 bits.
_DEEP_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})

log = logging.getLogger(__name__)


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
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray | None
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    classes: tuple = ()
    files: tuple = ()
    skipped: tuple = field(default=())

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
    """
    if source == "digits":
        dataset = resize_dataset(_load_digits(seed, test_size), image_size)
    elif source == "cifar10":
        dataset = resize_dataset(load_cifar10(data_dir), image_size)
    else:
        dataset = _load_path(Path(source), cache_dir, image_size, skip_bad, seed, test_size)
    if limit is not None:
        _check_limit(dataset, limit)
        dataset = subsample(dataset, limit, seed=seed)
    return dataset


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
        raise DataError(f"A limit (--limit) must be a positive number of training images; "
                        f"got {n_train}.")
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


def _n_test_kept(dataset, n_train):
    """Test images a subset of `n_train` training images keeps: the same share, at least one."""
    n_test = len(dataset.X_test)
    return max(1, round(n_train / len(dataset.X_train) * n_test))


def _check_limit(dataset, limit):
    """Refuse a limit whose subset would leave a class without a training or a test image."""
    if not dataset.labelled or not 1 <= limit < len(dataset.X_train):
        return  # subsample refuses a limit below 1; one at or above the size keeps all
    if _keeps_every_class(dataset, limit):
        return
    smallest = bisect.bisect_left(range(len(dataset.X_train) + 1), True,
                                  key=lambda n: n > 0 and _keeps_every_class(dataset, n))
    raise DataError(
        f"A limit (--limit) of {limit} training images is too small for {dataset.name}: in a "
        f"stratified subset that small, some of its {dataset.n_classes} classes have a share "
        f"of less than one training or test image. Pass a limit of at least {smallest}, or none."
    )


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
        np.asarray(_resized(Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image),
                            image_size))
        for image in images
    ]
    return np.stack(resized).reshape(len(images), *image_size, images.shape[-1])


def _resized(image, image_size):
    """A PIL image at ``image_size`` (height, width), bilinearly; itself if already so."""
    size = (image_size[1], image_size[0])  # PIL counts width first
    return image if image.size == size else image.resize(size, Image.Resampling.BILINEAR)


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


def _hold_out(name, X, y, classes, seed, test_size, files=()):
    if y is None:
        return Dataset(name, X, None, files=tuple(files))
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
    return Dataset(name, X[train], y[train], X[test], y[test], tuple(classes), kept_files)


# --------------------------------------------------------------------------- digits


def _load_digits(seed, test_size):
    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)[..., np.newaxis]
    classes = _names(digits.target_names)
    return _hold_out("digits", images, digits.target.astype(np.int64), classes, seed, test_size)


# --------------------------------------------------------------------------- CIFAR-10


def default_data_dir():
    """Folder where datasets are looked for and downloaded when no ``data_dir`` is given."""
    return Path(os.environ.get("BENCHMARK_DATA_DIR", Path.home() / ".cache" / "image-benchmark"))


def load_cifar10(data_dir=None):
    """CIFAR-10 from its official python batches, downloading them where the network allows.

    Parameters
    ----------
    data_dir : path, default=None
        A ``cifar-10-batches-py`` folder or a folder holding one; defaults to
        :func:`default_data_dir`.

    Returns
    -------
    dataset : Dataset
        50,000 training and 10,000 test images of shape (32, 32, 3).
    """
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    candidates = [root, root / CIFAR10_FOLDER]
    for folder in candidates:
        if (folder / "batches.meta").exists():
            return _read_cifar10_batches(folder)
    created = not root.exists()
    try:
        _download_cifar10(root)
    except Exception as exc:  # any network or disk failure ends in the same advice
        if created:
            shutil.rmtree(root, ignore_errors=True)
        looked = ", ".join(str(folder) for folder in candidates)
        raise DataError(
            f"CIFAR-10 not found: looked for its batches in {looked}, and the download into "
            f"{root} failed ({exc}). Download {CIFAR10_URL} and unpack it there, pass "
            "--data-dir DIR where it is unpacked, or pass --dataset PATH to an image-folder "
            "archive such as cifar10-jpeg.tar.gz."
        ) from exc
    return _read_cifar10_batches(root / CIFAR10_FOLDER)


def _download_cifar10(root):
    from torchvision.datasets import CIFAR10

    CIFAR10(root=str(root), train=True, download=True)


def _read_cifar10_batches(folder):
    meta = _unpickle(folder / "batches.meta")
    classes = tuple(name.decode() for name in meta[b"label_names"])
    train = [_unpickle(folder / f"data_batch_{i}") for i in range(1, 6)]
    test = _unpickle(folder / "test_batch")

    def images(batches):
        data = np.concatenate([batch[b"data"] for batch in batches])
        return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))

    def labels(batches):
        return np.concatenate([batch[b"labels"] for batch in batches]).astype(np.int64)

    return Dataset("cifar10", images(train), labels(train), images([test]), labels([test]), classes)


def _unpickle(path):
    if not path.exists():
        raise DataError(f"CIFAR-10 batch {path} is missing; the folder is incomplete.")
    try:
        with open(path, "rb") as file:
            return pickle.load(file, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(f"CIFAR-10 batch {path} is corrupt ({exc}).") from exc


# --------------------------------------------------------------------------- paths


def _load_path(path, cache_dir, image_size, skip_bad, seed, test_size):
    if not path.exists():
        raise DataError(
            f"Dataset {str(path)!r} is neither a built-in dataset ({', '.join(BUILTIN_DATASETS)}) "
            "nor an existing path."
        )
    name = _dataset_name(path)
    if path.suffix.lower() == ".npz":
        return resize_dataset(_load_npz(path, name, seed, test_size), image_size)
    if not (path.is_dir() or _is_archive(path)):
        raise DataError(
            f"{path} is not a folder, an archive ({', '.join(ARCHIVE_SUFFIXES)}) or an .npz file."
        )
    tree = _cached_tree(path, cache_dir, image_size, skip_bad)
    return _tree_to_dataset(name, tree, seed, test_size)


def _dataset_name(path):
    name = Path(os.path.abspath(path)).name  # "." and ".." name the folder they stand for
    for suffix in (*ARCHIVE_SUFFIXES, ".npz"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _is_archive(path):
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _load_npz(path, name, seed, test_size):
    try:
        arrays = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}).") from exc
    if "X_train" in arrays:
        X_train, X_test = _npz_images(arrays, "X_train", path), _npz_images(arrays, "X_test", path)
        y_train, y_test = arrays.get("y_train"), arrays.get("y_test")
        if (y_train is None) != (y_test is None):
            raise DataError(f"{path} must hold both y_train and y_test, or neither.")
        _check_same_image_shape(path, X_train, X_test)
        if y_train is None:
            return Dataset(name, np.concatenate([X_train, X_test]), None)
        classes, y = _encode_labels(np.concatenate([y_train, y_test]), path)
        _check_lengths(path, X_train, y[: len(y_train)])
        _check_lengths(path, X_test, y[len(y_train) :])
        _check_test_classes_trained(path, classes, y[: len(y_train)], y[len(y_train) :])
        return Dataset(name, X_train, y[: len(y_train)], X_test, y[len(y_train) :], classes)
    if "X" not in arrays:
        raise DataError(f"{path} must hold an array X (and y), or X_train/y_train/X_test/y_test; "
                        f"it holds {sorted(arrays)}.")
    X = _npz_images(arrays, "X", path)
    if "y" not in arrays:
        return Dataset(name, X, None)
    classes, y = _encode_labels(arrays["y"], path)
    _check_lengths(path, X, y)
    return _hold_out(name, X, y, classes, seed, test_size)


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
    return _class_indices(y)


def _check_same_image_shape(path, X_train, X_test):
    if X_train.shape[1:] != X_test.shape[1:]:
        raise DataError(
            f"{path} holds training images of shape {X_train.shape[1:]} but test images of "
            f"shape {X_test.shape[1:]} (height, width, channels); they must match."
        )


def _check_test_classes_trained(source, classes, y_train, y_test):
    """Refuse test images of a class that has no training image: nothing could learn it."""
    untrained = np.setdiff1d(y_test, y_train)
    if untrained.size:
        names = ", ".join(repr(classes[i]) for i in untrained[:3])
        raise DataError(f"{source}: class {names} has test images but no training images.")


def _class_indices(labels):
    """Sorted class names as strings, and each label's index among them (int64)."""
    classes, indices = np.unique(labels, return_inverse=True)
    return _names(classes), indices.astype(np.int64)


def _names(classes):
    return tuple(str(c) for c in classes)


def _check_lengths(path, X, y):
    if len(X) != len(y):
        raise DataError(f"{path} holds {len(X)} images but {len(y)} labels.")


# --------------------------------------------------------------------------- image trees


@dataclass(frozen=True)
class _Tree:
    """Decoded images of a folder tree, before any split."""

    images: np.ndarray
    paths: tuple
    skipped: tuple


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
    if not (path.is_dir() or _is_archive(path)):
        raise DataError(f"{path} is not a folder or an archive ({', '.join(ARCHIVE_SUFFIXES)}).")
    tree = _cached_tree(path, cache_dir, image_size, skip_bad)
    parts = [p.split("/") for p in tree.paths]
    depths = {len(p) for p in parts}
    if depths == {1}:
        return Dataset(_dataset_name(path), tree.images, None, files=tree.paths,
                       skipped=tree.skipped)
    if 1 in depths:
        raise _mixed_depths_error(tree.paths)
    classes, y = _class_indices([p[-2] for p in parts])
    return Dataset(_dataset_name(path), tree.images, y, classes=classes, files=tree.paths,
                   skipped=tree.skipped)


def _cached_tree(path, cache_dir, image_size, skip_bad):
    options = {"format": _CACHE_FORMAT, "image_size": image_size, "skip_bad": skip_bad}
    key = hashlib.sha256(
        (_content_digest(path) + json.dumps(options, sort_keys=True)).encode()
    ).hexdigest()
    cache_file = Path(cache_dir or default_data_dir() / "cache") / f"{key}.npz"
    tree = _read_cached_tree(cache_file) if cache_file.exists() else None
    if tree is None:
        tree = _decode_tree(path, image_size, skip_bad)
        with atomic_write(cache_file, "wb") as file:
            np.savez(file, images=tree.images, paths=np.array(tree.paths, dtype=str),
                     skipped=np.array(tree.skipped, dtype=str))
    return tree


def _read_cached_tree(cache_file):
    """The tree cached in `cache_file`, or None, with a warning naming it, if unreadable."""
    try:
        with np.load(cache_file, allow_pickle=False) as cached:
            return _Tree(cached["images"], tuple(cached["paths"]), tuple(cached["skipped"]))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        log.warning("decoding cache %s cannot be read (%s); decoding the images again and "
                    "rewriting it.", cache_file, exc)
        return None


def _content_digest(path):
    """SHA-256 of a file's bytes, or of every file's relative path and bytes in a folder.

    A folder's files are read as its decoding reads them, links followed: a file that
    cannot be read counts by the reason, so a cache never holds what decoding would refuse.
    """
    digest = hashlib.sha256()
    if path.is_file():
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    files = [(relative, item) for relative, item in _walk(path) if item is not None]
    for relative, item in sorted(files, key=lambda entry: entry[0].split("/")):
        digest.update(relative.encode() + b"\0")
        data = _content(relative, item)
        digest.update(data if isinstance(data, bytes) else data.reason.encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class _Unreadable:
    """An entry of a tree that cannot be read, in place of its bytes; `reason` names it."""

    reason: str


def _iter_entries(path):
    """Yield (relative posix path, content) for every entry of a tree.

    The content is None for a folder, the bytes of a file, or :class:`_Unreadable`.
    """
    if path.is_dir():
        for relative, item in _walk(path):
            yield relative, _content(relative, item)
        return
    try:
        yield from _zip_entries(path) if path.name.lower().endswith(".zip") else _tar_entries(path)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(f"{path} is not a readable archive ({exc}).") from exc


def _walk(folder, relative="", chain=()):
    """Yield (relative posix path, item) for every entry below `folder`, links followed.

    As :func:`os.walk` top-down, sorted, with ``followlinks=True``: each folder (item None),
    its files (item: their path), then its sub-folders. A link to a folder the walk is
    already inside would never end; its item is :class:`_Unreadable`.
    """
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as exc:
        if not relative:
            raise DataError(f"{folder} cannot be read ({exc.strerror}).") from exc
        yield relative, _Unreadable(f"{relative} cannot be read ({exc.strerror}).")
        return
    if relative:
        yield relative, None
    chain = (*chain, os.path.realpath(folder))
    files, folders = [], []
    for entry in entries:
        (folders if _is_dir(entry) else files).append(entry)
    for entry in files:
        yield posixpath.join(relative, entry.name), Path(entry.path)
    for entry in folders:
        inner = posixpath.join(relative, entry.name)
        if os.path.realpath(entry.path) in chain:
            yield inner, _Unreadable(f"{inner} is a symbolic link to {os.readlink(entry.path)}, "
                                     "a folder it lies in: a loop.")
        else:
            yield from _walk(entry.path, inner, chain)


def _is_dir(entry):
    try:
        return entry.is_dir()  # follows links
    except OSError:  # a link loop: read as a file, which names it
        return False


def _content(relative, item):
    """What a walked entry holds: a file's bytes, else its item (a folder's None, _Unreadable)."""
    return _read_file(relative, item) if isinstance(item, Path) else item


def _read_file(relative, file):
    """The bytes of `file`, or :class:`_Unreadable` saying why not (a link to nowhere)."""
    try:
        return file.read_bytes()
    except OSError as exc:
        if not file.is_symlink():
            return _Unreadable(f"{relative} cannot be read ({exc.strerror}).")
        why = {errno.ENOENT: "which does not exist", errno.ELOOP: "which leads back to itself: "
               "a loop"}.get(exc.errno, f"which cannot be read ({exc.strerror})")
        return _Unreadable(f"{relative} is a symbolic link to {os.readlink(file)}, {why}.")


def _zip_entries(path):
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = _member_name(path, info.filename.rstrip("/"))
            yield name, None if info.is_dir() else archive.read(info)


def _tar_entries(path):
    with tarfile.open(path, "r:*") as archive:
        members = {}  # by normalised name, gathered at the first link
        for member in archive:
            name = _member_name(path, member.name)
            if member.isdir():
                yield name, None
            elif member.isfile():
                yield name, archive.extractfile(member).read()
            elif member.islnk() or member.issym():
                members = members or {posixpath.normpath(m.name): m
                                      for m in archive.getmembers()}
                yield name, _tar_link_bytes(path, archive, member, members)


def _member_name(archive, name):
    """`name`, refused by name if it leads outside the archive (absolute, or up through '..')."""
    if _leaves_archive(name):
        raise DataError(
            f"Member {name!r} of {archive} lies outside the archive (an absolute path, or one "
            "through '..'); repack the archive with paths relative to its folder."
        )
    return name


def _leaves_archive(name):
    return name.startswith("/") or ".." in name.split("/")


def _tar_link_bytes(path, archive, link, members):
    """The bytes of the file a link member leads to, through any chain of links inside."""
    member, seen = link, set()
    while member.islnk() or member.issym():
        if member.name in seen:
            return _Unreadable(f"{link.name} is a link that leads back to itself: a loop.")
        seen.add(member.name)
        target = posixpath.normpath(
            posixpath.join(posixpath.dirname(member.name), member.linkname)
            if member.issym() else member.linkname
        )
        if _leaves_archive(target):
            raise DataError(
                f"Member {link.name!r} of {path} is a link to {member.linkname!r}, outside the "
                "archive; repack it with the files themselves (tar --dereference)."
            )
        member = members.get(target)
        if member is None:
            return _Unreadable(f"{link.name} is a link to {target}, which the archive does "
                               "not hold.")
    if not member.isfile():
        return _Unreadable(f"{link.name} is a link to {member.name}, not to a file; repack the "
                           "archive with the files themselves (tar --dereference).")
    return archive.extractfile(member).read()


def _is_hidden(relative):
    return any(part.startswith(".") or part == "__MACOSX" for part in relative.split("/"))


def _decode_tree(path, image_size, skip_bad):
    paths, arrays, skipped, folders = [], [], [], set()
    entries = tqdm(_iter_entries(path), desc=f"decoding {path.name}", unit="file", disable=None)
    for relative, data in entries:
        relative = relative.removeprefix("./")
        if not relative or relative == "." or _is_hidden(relative):
            continue
        if data is None:
            folders.add(relative)
            continue
        try:
            arrays.append(_decode_image(relative, data, image_size))
            paths.append(relative)
        except DataError as exc:
            if not skip_bad:
                raise DataError(
                    f"{exc} Remove it, or pass --skip-bad to skip such files.") from None
            skipped.append(str(exc))
    if not arrays:
        raise DataError(f"{path} holds no images" + (f" ({len(skipped)} unreadable files skipped)."
                                                     if skipped else "."))
    paths, folders = _strip_common_folder(paths, folders, is_archive=not path.is_dir())
    _check_no_empty_folders(path, paths, folders)
    return _Tree(_stack_images(paths, arrays), tuple(paths), tuple(skipped))


def _decode_image(relative, data, image_size):
    if isinstance(data, _Unreadable):
        raise DataError(data.reason)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image = _eight_bit(image, relative)
            if image_size is not None:
                image = _resized(image, image_size)
            return np.asarray(image)
    except DataError:
        raise
    except UnidentifiedImageError:
        reason = "not an image format Pillow can read"
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc)
    raise DataError(f"{relative} is not a readable image ({reason}).")


def _eight_bit(image, relative):
    """`image` as 8-bit grey ("L") or colour ("RGB").

    Grey images of more than 8 bits are scaled from 16 bits (65535 becomes 255), or kept
    as they are where every value already lies in [0, 255].
    """
    if image.mode in _DEEP_GREY_MODES:
        values = np.asarray(image, dtype=np.float64)
        low, high = values.min(), values.max()
        if low < 0 or high > 65535:
            raise DataError(f"{relative} is a {image.mode} image with values from {low:g} to "
                            f"{high:g}; grey images must lie in [0, 65535].")
        if high > 255 or image.mode.startswith("I;16"):
            values = values / 257
        return Image.fromarray(np.rint(values).astype(np.uint8))
    mode = "L" if image.mode in _GREY_MODES else "RGB"
    return image if image.mode == mode else image.convert(mode)


def _strip_common_folder(paths, folders, *, is_archive):
    """Drop the single top folder an archive is usually packed with (cifar10-jpeg/...)."""
    tops = {p.split("/", 1)[0] for p in paths}
    if not is_archive or len(tops) != 1 or any("/" not in p for p in paths):
        return paths, folders
    top = tops.pop()
    if top in ("train", "test"):
        return paths, folders
    strip = len(top) + 1
    return [p[strip:] for p in paths], {f[strip:] for f in folders if f.startswith(top + "/")}


def _check_no_empty_folders(root, paths, folders):
    filled = {p[:end] for p in paths for end in _slash_positions(p)}
    empty = sorted(folders - filled)
    if empty:
        raise DataError(f"Class folder {empty[0]!r} in {root} holds no images.")


def _slash_positions(path):
    return [i for i, char in enumerate(path) if char == "/"]


def _stack_images(paths, arrays):
    shapes = {}
    for relative, array in zip(paths, arrays):
        shapes.setdefault(array.shape[:2], relative)
    if len(shapes) > 1:
        (size_a, file_a), (size_b, file_b) = list(shapes.items())[:2]
        raise DataError(
            f"Images have different sizes: {file_a} is {size_a[0]}x{size_a[1]} but {file_b} is "
            f"{size_b[0]}x{size_b[1]} (height x width). Pass --image-size HxW to resize them all."
        )
    if all(array.ndim == 2 for array in arrays):
        return np.stack(arrays)[..., np.newaxis]
    return np.stack([np.dstack([a] * 3) if a.ndim == 2 else a for a in arrays])


def _tree_to_dataset(name, tree, seed, test_size):
    parts = [p.split("/") for p in tree.paths]
    depths = {len(p) for p in parts}
    if depths == {1}:
        return Dataset(name, tree.images, None, files=tree.paths, skipped=tree.skipped)
    if depths == {3} and {p[0] for p in parts} <= {"train", "test"}:
        return _split_tree(name, tree, parts)
    if depths == {2}:
        classes, y = _class_indices([p[0] for p in parts])
        dataset = _hold_out(name, tree.images, y, classes, seed, test_size, tree.paths)
        return replace(dataset, skipped=tree.skipped)
    raise _mixed_depths_error(tree.paths)


def _mixed_depths_error(paths):
    shallow = min(paths, key=lambda p: p.count("/"))
    deep = max(paths, key=lambda p: p.count("/"))
    if shallow.count("/") == deep.count("/"):
        found = f"every image sits {deep.count('/')} folders deep, such as '{deep}'"
    else:
        found = f"'{shallow}' and '{deep}' sit at different depths"
    return DataError(
        f"Cannot tell the layout: {found}. Expected train/<class>/<image> and "
        "test/<class>/<image>, <class>/<image>, or images alone."
    )


def _split_tree(name, tree, parts):
    splits = np.array([p[0] for p in parts])
    if not {"train", "test"} <= set(splits):
        missing = ({"train", "test"} - set(splits)).pop()
        raise DataError(f"The {name} tree has a train/test layout but no {missing}/ images.")
    classes, y = _class_indices([p[1] for p in parts])
    train, test = splits == "train", splits == "test"
    _check_test_classes_trained(f"The {name} tree", classes, y[train], y[test])
    return Dataset(
        name, tree.images[train], y[train], tree.images[test], y[test], classes,
        tuple(np.asarray(tree.paths)[train]), tree.skipped,
    )
