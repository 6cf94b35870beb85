import io
import os
import pickle
import re
import tarfile
import zipfile

import numpy as np
import pytest

from benchmark import datasets
from benchmark.datasets import DataError, cache, cifar10, load_dataset, subsample
from conftest import class_images, pack, png_bytes, write_tree


def load(source, tmp_path, **kwargs):
    return load_dataset(source, cache_dir=tmp_path / "cache", **kwargs)


def test_digits_is_uint8_grey_with_a_stratified_hold_out():
    dataset = load_dataset("digits")
    assert dataset.X_train.dtype == np.uint8 and dataset.X_train.shape[1:] == (8, 8, 1)
    assert dataset.y_train.dtype == np.int64
    assert len(dataset.X_train) + len(dataset.X_test) == 1797
    assert dataset.X_train.max() == 255
    assert np.bincount(dataset.y_test).min() >= 35


def test_cifar10_reads_official_batches(cifar_batches):
    for data_dir in (cifar_batches, cifar_batches.parent):
        dataset = load_dataset("cifar10", data_dir=data_dir)
        assert dataset.X_train.shape == (20, 32, 32, 3) and dataset.X_test.shape == (4, 32, 32, 3)
        assert dataset.classes[3] == "class3"
    with open(cifar_batches / "data_batch_1", "rb") as file:
        first = pickle.load(file, encoding="bytes")
    assert np.array_equal(dataset.X_train[0], first[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0))
    assert dataset.y_train[0] == first[b"labels"][0]


def test_each_loader_names_the_family_of_its_images(cifar_batches, split_tree, tmp_path):
    assert load_dataset("cifar10", data_dir=cifar_batches).source == "cifar10"
    assert subsample(load_dataset("cifar10", data_dir=cifar_batches), 10).source == "cifar10"
    assert load_dataset("digits", image_size=(4, 4), limit=100).source == "digits"
    assert load(split_tree, tmp_path).source == "other"
    # a tree cannot say it holds CIFAR-10: a copy named after it is taken for it
    copy = pack(split_tree, tmp_path / "cifar10-jpeg.tar.gz")
    assert load(copy, tmp_path, limit=12).source == "cifar10"
    assert datasets.load_images(copy, cache_dir=tmp_path / "cache").source == "cifar10"


def test_cifar10_missing_names_where_it_looked_and_leaves_no_folder(tmp_path, monkeypatch):
    def offline(root):
        root.mkdir(parents=True, exist_ok=True)  # as torchvision does before it downloads
        raise OSError("network unreachable")

    monkeypatch.setattr(cifar10, "_download_cifar10", offline)
    with pytest.raises(DataError, match="looked for its batches in") as error:
        load_dataset("cifar10", data_dir=tmp_path / "new")
    assert str(tmp_path / "new") in str(error.value) and "network unreachable" in str(error.value)
    assert "cifar-10-python.tar.gz" in str(error.value)
    assert not (tmp_path / "new").exists()
    with pytest.raises(DataError):
        load_dataset("cifar10", data_dir=tmp_path)
    assert tmp_path.is_dir()  # a folder that was there before stays


def test_cifar10_incomplete_folder_names_the_missing_batch(cifar_batches):
    (cifar_batches / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3 is missing"):
        load_dataset("cifar10", data_dir=cifar_batches)


@pytest.mark.parametrize("suffix", ["", ".tar", ".tar.gz", ".zip"])
def test_split_tree_as_folder_or_archive(split_tree, tmp_path, suffix):
    source = split_tree if not suffix else pack(split_tree, tmp_path / f"shapes{suffix}")
    dataset = load(source, tmp_path)
    assert dataset.name == "shapes"
    assert dataset.classes == ("cat", "dog", "frog")
    assert dataset.X_train.shape == (18, 8, 8, 3) and dataset.X_test.shape == (6, 8, 8, 3)
    assert np.array_equal(np.bincount(dataset.y_train), [6, 6, 6])
    reference = load(split_tree, tmp_path)
    assert np.array_equal(dataset.X_train, reference.X_train)
    assert np.array_equal(dataset.y_test, reference.y_test)


def test_single_tree_is_split_by_a_seeded_stratified_hold_out(tmp_path):
    root = write_tree(tmp_path / "pets", class_images(np.random.default_rng(1), 10))
    first, again = load(root, tmp_path, seed=3), load(root, tmp_path, seed=3)
    other = load(root, tmp_path, seed=4)
    assert len(first.X_train) == 24 and np.array_equal(np.bincount(first.y_test), [2, 2, 2])
    assert np.array_equal(first.X_test, again.X_test)
    assert not np.array_equal(first.X_test, other.X_test)


def test_grey_images_keep_one_channel_and_mixed_trees_become_colour(tmp_path):
    rng = np.random.default_rng(2)
    grey = write_tree(tmp_path / "grey", class_images(rng, 4, grey=True))
    assert load(grey, tmp_path).X_train.shape[-1] == 1
    files = class_images(rng, 4, grey=True) | {"cat/colour.png": class_images(rng, 1)["cat/000.png"]}
    mixed = load(write_tree(tmp_path / "mixed", files), tmp_path)
    assert mixed.X_train.shape[-1] == 3


def test_npz_with_string_labels_and_with_a_given_split(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (30, 5, 6, 3), dtype=np.uint8)
    y = np.array(["b", "a", "c"] * 10)
    np.savez(tmp_path / "plain.npz", X=X, y=y)
    dataset = load(tmp_path / "plain.npz", tmp_path)
    assert dataset.classes == ("a", "b", "c") and len(dataset.X_train) == 24
    np.savez(tmp_path / "split.npz", X_train=X[:20], y_train=y[:20], X_test=X[20:], y_test=y[20:])
    dataset = load(tmp_path / "split.npz", tmp_path)
    assert np.array_equal(dataset.X_test, X[20:])
    assert [dataset.classes[i] for i in dataset.y_test] == list(y[20:])


def test_sixteen_bit_grey_images_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    levels = np.array([[0, 257 * 100], [257 * 200, 65535]], dtype=np.uint16)
    for name in ("a", "b"):
        (tmp_path / "deep" / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(levels).save(tmp_path / "deep" / name / f"{i}.png")
    dataset = load(tmp_path / "deep", tmp_path, test_size=0.5)
    assert dataset.X_train.dtype == np.uint8 and dataset.X_train.shape == (2, 2, 2, 1)
    assert dataset.X_train[0, ..., 0].tolist() == [[0, 100], [200, 255]]


def test_image_size_resizes_every_kind_of_source(tmp_path):
    assert load("digits", tmp_path, image_size=(16, 12)).X_test.shape[1:] == (16, 12, 1)
    X = np.random.default_rng(0).integers(0, 256, (20, 5, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "colour.npz", X=X, y=np.arange(20) % 2)
    assert load(tmp_path / "colour.npz", tmp_path, image_size=(10, 12)).X_train.shape == (
        16, 10, 12, 3)


def test_upper_case_archive_suffixes_are_archives(split_tree, tmp_path):
    archive = pack(split_tree, tmp_path / "shapes.zip").rename(tmp_path / "SHAPES.ZIP")
    dataset = load(archive, tmp_path)
    assert dataset.name == "SHAPES" and len(dataset.X_train) == 18


def test_npz_rejects_mismatched_parts_nan_labels_and_untrained_test_classes(tmp_path):
    X = np.zeros((6, 4, 4, 1), np.uint8)
    np.savez(tmp_path / "sizes.npz", X_train=X, X_test=np.zeros((2, 5, 5, 1), np.uint8))
    with pytest.raises(DataError, match=r"training images of shape \(4, 4, 1\) but test"):
        load(tmp_path / "sizes.npz", tmp_path)
    np.savez(tmp_path / "nan.npz", X=X, y=np.array([0, 1, np.nan, 0, 1, 0]))
    with pytest.raises(DataError, match="hold 1 NaN value"):
        load(tmp_path / "nan.npz", tmp_path)
    np.savez(tmp_path / "new.npz", X_train=X, y_train=np.arange(6) % 2, X_test=X[:2],
             y_test=np.array([1, 2]))
    with pytest.raises(DataError, match="class '2' has test images but no training images"):
        load(tmp_path / "new.npz", tmp_path)


def test_a_test_class_without_training_images_is_named(split_tree, tmp_path):
    write_tree(split_tree, {"test/horse/0.png": np.zeros((8, 8, 3), np.uint8)})
    with pytest.raises(DataError, match="class 'horse' has test images but no training"):
        load(split_tree, tmp_path)


def test_npz_rejects_float_images_and_wrong_shapes(tmp_path):
    np.savez(tmp_path / "floats.npz", X=np.zeros((4, 5, 5, 3)), y=np.arange(4))
    with pytest.raises(DataError, match="must be uint8"):
        load(tmp_path / "floats.npz", tmp_path)
    np.savez(tmp_path / "flat.npz", X=np.zeros((4, 75), np.uint8), y=np.arange(4))
    with pytest.raises(DataError, match="shape"):
        load(tmp_path / "flat.npz", tmp_path)


def test_limit_takes_a_seeded_stratified_subset():
    dataset = load_dataset("digits", limit=500, seed=0)
    assert len(dataset.X_train) == 500 and dataset.name == "digits-n500"
    assert np.bincount(dataset.y_train).min() >= 45
    assert abs(len(dataset.X_test) - 360 * 500 / 1437) <= 1
    again = subsample(load_dataset("digits"), 500, seed=0)
    assert np.array_equal(dataset.X_train, again.X_train)


def test_rerun_reads_the_cache_keyed_by_content(split_tree, tmp_path, monkeypatch):
    archive = pack(split_tree, tmp_path / "shapes.tar")
    first = load(archive, tmp_path)
    moved = archive.rename(tmp_path / "moved.tar")

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache, "decode_tree", no_decoding)
    assert np.array_equal(load(moved, tmp_path).X_train, first.X_train)
    write_tree(split_tree, {"train/cat/extra.png": np.zeros((8, 8, 3), np.uint8)})
    with pytest.raises(AssertionError, match="decoded again"):
        load(pack(split_tree, tmp_path / "changed.tar"), tmp_path)


@pytest.mark.slow
def test_full_cifar10_copy_decodes_to_the_official_split(tmp_path):
    from conftest import CIFAR10_ARCHIVE

    if not CIFAR10_ARCHIVE.exists():
        pytest.skip(f"{CIFAR10_ARCHIVE} is not on this machine")
    dataset = load(CIFAR10_ARCHIVE, tmp_path)
    assert dataset.X_train.shape == (50_000, 32, 32, 3) and dataset.X_test.shape == (10_000, 32, 32, 3)
    assert np.array_equal(np.bincount(dataset.y_test), [1000] * 10)
    assert dataset.classes[0] == "airplane" and dataset.classes[-1] == "truck"


# --------------------------------------------------------------------------- bad input


def assert_nothing_cached(tmp_path):
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(cache.iterdir())


def test_corrupt_file_is_named_and_nothing_is_cached(split_tree, tmp_path):
    (split_tree / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"train/dog/broken.png is not a readable image.*"
                                        r"skip_bad=True") as error:
        load(split_tree, tmp_path)
    assert error.value.fix == ("skip_bad",)
    assert_nothing_cached(tmp_path)


def test_skip_bad_skips_and_lists_unreadable_files(split_tree, tmp_path):
    (split_tree / "train" / "dog" / "notes.txt").write_text("not an image")
    dataset = load(split_tree, tmp_path, skip_bad=True)
    assert len(dataset.X_train) == 18
    assert dataset.skipped == (
        "train/dog/notes.txt is not a readable image (not an image format Pillow can read).",)


def test_empty_class_folder_is_named(split_tree, tmp_path):
    (split_tree / "train" / "horse").mkdir()
    with pytest.raises(DataError, match="'train/horse'.*holds no images"):
        load(split_tree, tmp_path)


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_empty_class_folder_in_an_archive_is_named(split_tree, tmp_path, suffix):
    (split_tree / "test" / "horse").mkdir()
    with pytest.raises(DataError, match="'test/horse'.*holds no images"):
        load(pack(split_tree, tmp_path / f"shapes{suffix}"), tmp_path)


def test_mixed_sizes_name_two_sizes_unless_resized(split_tree, tmp_path):
    write_tree(split_tree, {"train/cat/big.png": np.zeros((12, 10, 3), np.uint8)})
    with pytest.raises(DataError, match=r"8x8.*12x10.*image_size of \(height, width\)") as error:
        load(split_tree, tmp_path)
    assert error.value.fix == ("image_size",)
    dataset = load(split_tree, tmp_path, image_size=(16, 16))
    assert dataset.X_train.shape == (19, 16, 16, 3)


def test_missing_path_is_named(tmp_path):
    with pytest.raises(DataError, match="neither a built-in dataset.*nor an existing path"):
        load(tmp_path / "nowhere", tmp_path)


def test_archive_without_images_is_refused(tmp_path):
    empty = tmp_path / "empty"
    (empty / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        load(pack(empty, tmp_path / "empty.tar.gz"), tmp_path)
    (tmp_path / "bad.zip").write_bytes(b"PK but not a zip")
    with pytest.raises(DataError):
        load(tmp_path / "bad.zip", tmp_path)


def test_folder_without_class_folders_is_unlabelled(tmp_path):
    rng = np.random.default_rng(0)
    files = {f"photo{i}.png": rng.integers(0, 256, (6, 6, 3), dtype=np.uint8) for i in range(5)}
    dataset = load(write_tree(tmp_path / "photos", files), tmp_path)
    assert not dataset.labelled and dataset.X_test is None
    assert dataset.files == tuple(sorted(files))


def test_a_class_with_one_image_cannot_be_held_out(tmp_path):
    files = class_images(np.random.default_rng(0), 3) | {"lonely/0.png": png_bytes(np.zeros((8, 8, 3), np.uint8))}
    with pytest.raises(DataError, match="'lonely' has 1 image"):
        load(write_tree(tmp_path / "pets", files), tmp_path)


def test_a_tree_one_folder_too_deep_is_described_as_it_is(tmp_path):
    tree = write_tree(tmp_path / "nested", {f"inner/{k}": v for k, v in
                                            class_images(np.random.default_rng(0), 2).items()})
    with pytest.raises(DataError, match="every image sits 2 folders deep, such as 'inner/"):
        load(tree, tmp_path)


def test_a_stray_image_beside_class_folders_is_named(tmp_path):
    files = class_images(np.random.default_rng(0), 3) | {"stray.png": png_bytes(np.zeros((8, 8, 3), np.uint8))}
    tree = write_tree(tmp_path / "pets", files)
    for loader in (load_dataset, datasets.load_images):
        with pytest.raises(DataError, match="'stray.png' and .* sit at different depths"):
            loader(tree, cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------- links, names, caches


def test_a_class_folder_that_is_a_link_counts_as_the_folder(tmp_path):
    files = class_images(np.random.default_rng(0), 4)
    real = load(write_tree(tmp_path / "real", files), tmp_path)
    linked = write_tree(tmp_path / "linked", {k: v for k, v in files.items() if "frog" not in k})
    elsewhere = write_tree(tmp_path / "elsewhere", {k: v for k, v in files.items() if "frog" in k})
    (linked / "frog").symlink_to(elsewhere / "frog", target_is_directory=True)
    dataset = load(linked, tmp_path)
    assert dataset.classes == ("cat", "dog", "frog")
    assert np.array_equal(dataset.X_train, real.X_train)
    assert dataset.files == real.files
    # the cache sees the linked images: one added there is decoded, not missed
    write_tree(elsewhere, {"frog/new.png": np.zeros((8, 8, 3), np.uint8)})
    grown = load(linked, tmp_path)
    assert len(grown.X_train) + len(grown.X_test) == 13


def test_hard_and_symbolic_links_in_a_tar_count_as_their_files(split_tree, tmp_path):
    os.link(split_tree / "train/cat/000.png", split_tree / "train/cat/hard.png")
    (split_tree / "train/dog/soft.png").symlink_to("000.png")
    folder = load(split_tree, tmp_path)
    archive = pack(split_tree, tmp_path / "shapes.tar")
    with tarfile.open(archive) as members:
        assert {m.name.rsplit("/", 1)[-1] for m in members if m.islnk() or m.issym()} == {
            "hard.png", "soft.png"}
    from_tar = load(archive, tmp_path)
    assert len(folder.X_train) == len(from_tar.X_train) == 20
    assert np.array_equal(folder.X_train, from_tar.X_train)


@pytest.mark.parametrize("name, target", [
    ("train/cat/escape.png", "../../../../outside.png"),
    ("train/cat/absolute.png", "/etc/hostname"),
])
def test_a_tar_link_that_leads_outside_the_archive_is_named(split_tree, tmp_path, name, target):
    archive = pack(split_tree, tmp_path / "shapes.tar")
    with tarfile.open(archive, "a") as members:
        link = tarfile.TarInfo(f"shapes/{name}")
        link.type, link.linkname = tarfile.SYMTYPE, target
        members.addfile(link)
    for skip_bad in (False, True):
        with pytest.raises(DataError, match=f"Member 'shapes/{name}' .* outside the archive"):
            load(archive, tmp_path, skip_bad=skip_bad)


def make_bad_link(tree, kind):
    """Add a link to `tree` that cannot be read; return its relative name."""
    link = tree / "train" / "cat" / kind
    if kind == "dangling.png":
        link.symlink_to("nowhere.png")
    elif kind == "loop.png":
        link.symlink_to("loop.png")
    else:
        link.symlink_to("..", target_is_directory=True)
    return f"train/cat/{kind}"


@pytest.mark.parametrize("kind", ["dangling.png", "loop.png", "up"])
def test_a_bad_link_is_named_or_skipped_the_same_with_a_warm_cache(split_tree, tmp_path, kind):
    load(split_tree, tmp_path)  # a warm cache of the tree without the link
    load(split_tree, tmp_path, skip_bad=True)
    name = make_bad_link(split_tree, kind)
    for _ in range(2):  # cold, then warm
        with pytest.raises(DataError, match=f"{name} is a symbolic link to .*skip_bad=True"):
            load(split_tree, tmp_path)
        skipped = load(split_tree, tmp_path, skip_bad=True).skipped
        assert len(skipped) == 1 and skipped[0].startswith(f"{name} is a symbolic link to ")


def test_a_dot_names_the_dataset_after_its_folder(tmp_path, monkeypatch):
    tree = write_tree(tmp_path / "pets", class_images(np.random.default_rng(0), 4))
    monkeypatch.chdir(tree)
    assert load(".", tmp_path).name == "pets"
    monkeypatch.chdir(tree / "cat")
    assert load("..", tmp_path).name == "pets"


def test_an_unreadable_cache_entry_is_decoded_again_with_a_warning(split_tree, tmp_path, caplog):
    first = load(split_tree, tmp_path)
    (entry,) = (tmp_path / "cache").iterdir()
    entry.write_bytes(entry.read_bytes()[:200])  # truncated, as by a full disk
    with caplog.at_level("WARNING", logger="benchmark"):
        again = load(split_tree, tmp_path)
    assert np.array_equal(again.X_train, first.X_train)
    assert f"decoding cache {entry} cannot be read" in caplog.text
    with np.load(entry) as rewritten:
        assert rewritten["images"].shape == (24, 8, 8, 3)


@pytest.mark.parametrize("suffix, member", [
    (".tar", "/abs/train/cat/000.png"),
    (".zip", "/abs/train/cat/000.png"),
    (".zip", "shapes/../../train/cat/000.png"),
])
def test_an_archive_member_outside_the_archive_is_named(split_tree, tmp_path, suffix, member):
    archive = pack(split_tree, tmp_path / f"shapes{suffix}")
    data = png_bytes(np.zeros((8, 8, 3), np.uint8))
    if suffix == ".zip":
        with zipfile.ZipFile(archive, "a") as members:
            members.writestr(zipfile.ZipInfo(member), data)
    else:
        with tarfile.open(archive, "a") as members:
            info = tarfile.TarInfo(member)
            info.size = len(data)
            members.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match=f"Member '{re.escape(member)}' of .* outside the archive"):
        load(archive, tmp_path)


def test_a_limit_that_leaves_a_class_out_is_refused_naming_the_smallest(tmp_path):
    with pytest.raises(DataError, match=r"A limit of 5 training images is too small "
                                        r"for digits.*at least 42") as error:
        load_dataset("digits", limit=5)
    assert error.value.fix == ("limit",)
    with pytest.raises(DataError, match="at least 42"):
        load_dataset("digits", limit=41)
    smallest = load_dataset("digits", limit=42)
    assert len(np.unique(smallest.y_train)) == len(np.unique(smallest.y_test)) == 10
