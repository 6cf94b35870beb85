"""CIFAR-10 from its official python batches, downloaded through torchvision where it can be."""

import pickle
import shutil
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Dataset, default_data_dir

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


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
        50,000 training and 10,000 test images of shape (32, 32, 3); ``source`` "cifar10".
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
            f"{root} failed ({exc}). Download {CIFAR10_URL} and unpack it there, pass a "
            "data_dir where it is unpacked, or load an image-folder archive such as "
            "cifar10-jpeg.tar.gz instead.",
            fix=("data_dir", "source"),
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

    return Dataset("cifar10", images(train), labels(train), images([test]), labels([test]),
                   classes, source="cifar10")


def _unpickle(path):
    if not path.exists():
        raise DataError(f"CIFAR-10 batch {path} is missing; the folder is incomplete.")
    try:
        with open(path, "rb") as file:
            return pickle.load(file, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(f"CIFAR-10 batch {path} is corrupt ({exc}).") from exc
