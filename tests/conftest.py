import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from estimators import Callback

CIFAR10_ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"
# A torch estimator small enough to train in a second on the CPU.
TINY = dict(module__widths=(16, 32, 32), batch_size=64, device="cpu", verbose=0)


def assert_same_weights(first, second):
    """Two state dicts hold the same tensors, bit for bit."""
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=0, msg=name)


class CrashAfter(Callback):
    """A training callback that raises once `n_epochs` epochs are done, as a crash would."""

    def __init__(self, n_epochs):
        self.n_epochs = n_epochs

    def on_epoch_end(self, estimator):
        if len(estimator.history_) == self.n_epochs:
            raise RuntimeError("simulated crash")


def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def class_images(rng, n_per_class, classes=("cat", "dog", "frog"), size=(8, 8), grey=False):
    """{relative name: uint8 array}: images whose mean brightness tells the class apart."""
    images = {}
    for index, name in enumerate(classes):
        for i in range(n_per_class):
            shape = size if grey else (*size, 3)
            base = 40 + 80 * index
            images[f"{name}/{i:03d}.png"] = rng.integers(base, base + 40, shape, dtype=np.uint8)
    return images


def write_tree(root, files):
    """Write {relative path: uint8 array or bytes} under ``root``."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else png_bytes(content))
    return root


def pack(folder, archive_path):
    """Pack ``folder`` (with its own name as the top folder) as .tar, .tar.gz or .zip."""
    name = archive_path.name
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive_path, "w") as archive:
            for path in sorted(folder.rglob("*")):
                archive.write(path, Path(folder.name) / path.relative_to(folder))
    else:
        mode = "w:gz" if name.endswith(("gz", "tgz")) else "w"
        with tarfile.open(archive_path, mode) as archive:
            archive.add(folder, arcname=folder.name)
    return archive_path


@pytest.fixture
def split_tree(tmp_path):
    """A train/test class-folder tree of 8x8 colour PNGs: 3 classes, 6 + 2 images each."""
    rng = np.random.default_rng(0)
    files = {f"train/{k}": v for k, v in class_images(rng, 6).items()}
    files |= {f"test/{k}": v for k, v in class_images(rng, 2).items()}
    return write_tree(tmp_path / "shapes", files)


@pytest.fixture
def cifar_batches(tmp_path):
    """An official-format ``cifar-10-batches-py`` folder holding 4 images per batch."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"class{i}".encode() for i in range(10)]
    with open(folder / "batches.meta", "wb") as file:
        pickle.dump({b"label_names": names}, file)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, 4))}
        with open(folder / name, "wb") as file:
            pickle.dump(batch, file)
    return folder


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny tensors: a second thread gains nothing, and on a busy machine its waits for a
    shared core slow every operation down many times."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    """Digits as uint8 images, split 75/25, stratified: (X_train, X_test, y_train, y_test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    X = np.rint(data.images * 255 / 16).astype(np.uint8)[..., np.newaxis]
    return train_test_split(X, data.target, test_size=0.25, random_state=0, stratify=data.target)


@pytest.fixture(scope="module")
def small_digits(digits):
    X_train, _, y_train, _ = digits
    return X_train[:300], y_train[:300]


def weights_of(estimator):
    """A copy of a fitted torch estimator's weights, by name."""
    return {name: tensor.clone() for name, tensor in estimator.module_.state_dict().items()}
