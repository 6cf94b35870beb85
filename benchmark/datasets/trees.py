"""Image trees: folders and .tar / .tar.gz / .tgz / .zip archives of them, decoded to arrays.

A tree holds images alone, ``<class>/<image>``, or ``train|test/<class>/<image>``. Its
entries are read with links followed (inside an archive too) and decoded to 8-bit grey or
colour arrays; :mod:`.cache` keeps what was decoded.
"""

import errno
import hashlib
import io
import os
import posixpath
import tarfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from ..errors import DataError
from .dataset import Dataset, check_test_classes_trained, class_indices, hold_out, resized_image

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
_GREY_MODES = frozenset({"1", "L", "LA", "La"})
# Grey modes of more than 8 bits, read as arrays and scaled down to 8 bits.
_DEEP_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


@dataclass(frozen=True)
class Tree:
    """Decoded images of a folder tree, before any split.

    Attributes
    ----------
    images : ndarray of shape (n_images, height, width, channels), uint8
        Every image, in the order of ``paths``.
    paths : tuple of str
        Each image's path relative to the tree, with "/" between folders.
    skipped : tuple of str
        Files left out by ``skip_bad``, each with the reason.
    """

    images: np.ndarray
    paths: tuple
    skipped: tuple


def is_archive(path):
    """Whether `path` is a file with an archive's suffix (:data:`ARCHIVE_SUFFIXES`)."""
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


# --------------------------------------------------------------------------- layouts


def tree_to_dataset(name, tree, seed, test_size, *, source=None):
    """A Dataset of a decoded tree, split as its layout says.

    ``train|test/<class>/<image>`` keeps its split, ``<class>/<image>`` is split by a seeded,
    stratified hold-out, images alone stay unsplit and unlabelled.

    Parameters
    ----------
    name : str
        Name of the dataset.
    tree : Tree
        Decoded images.
    seed : int
        Seed of the hold-out split.
    test_size : float
        Share of the images held out for testing.
    source : str, default=None
        Family of the images (:attr:`Dataset.source`).

    Returns
    -------
    dataset : Dataset
    """
    parts, depths = _folders(tree)
    if depths == {1}:
        return tree_to_images(name, tree, source=source)
    if depths == {3} and {p[0] for p in parts} <= {"train", "test"}:
        return _split_tree(name, tree, parts, source)
    if depths == {2}:
        classes, y = class_indices([p[0] for p in parts])
        dataset = hold_out(name, tree.images, y, classes, seed, test_size, files=tree.paths,
                           source=source)
        return replace(dataset, skipped=tree.skipped)
    raise _mixed_depths_error(tree.paths)


def tree_to_images(name, tree, *, source=None):
    """A Dataset of every image of a decoded tree, unsplit, with its class where it has one.

    Parameters
    ----------
    name, tree, source
        As for :func:`tree_to_dataset`.

    Returns
    -------
    dataset : Dataset
        What :func:`benchmark.datasets.load_images` returns: every image in ``X_train``.
    """
    parts, depths = _folders(tree)
    if depths == {1}:
        return Dataset(name, tree.images, None, files=tree.paths, skipped=tree.skipped,
                       source=source)
    if 1 in depths:
        raise _mixed_depths_error(tree.paths)
    classes, y = class_indices([p[-2] for p in parts])
    return Dataset(name, tree.images, y, classes=classes, files=tree.paths,
                   skipped=tree.skipped, source=source)


def _folders(tree):
    """Each image's path split at its folders, and the depths found (1: no folder)."""
    parts = [p.split("/") for p in tree.paths]
    return parts, {len(p) for p in parts}


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


def _split_tree(name, tree, parts, source):
    splits = np.array([p[0] for p in parts])
    if not {"train", "test"} <= set(splits):
        missing = ({"train", "test"} - set(splits)).pop()
        raise DataError(f"The {name} tree has a train/test layout but no {missing}/ images.")
    classes, y = class_indices([p[1] for p in parts])
    train, test = splits == "train", splits == "test"
    check_test_classes_trained(f"The {name} tree", classes, y[train], y[test])
    return Dataset(
        name, tree.images[train], y[train], tree.images[test], y[test], classes,
        tuple(np.asarray(tree.paths)[train]), tree.skipped, source=source,
    )


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class _Unreadable:
    """An entry of a tree that cannot be read, in place of its bytes; `reason` names it."""

    reason: str


def content_digest(path):
    """SHA-256 of a file's bytes, or of every file's relative path and bytes in a folder.

    A folder's files are read as its decoding reads them, links followed: a file that
    cannot be read counts by the reason, so a cache never holds what decoding would refuse.

    Parameters
    ----------
    path : path
        A folder or an archive.

    Returns
    -------
    digest : str
        Hex digest.
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


# --------------------------------------------------------------------------- decoding


def decode_tree(path, image_size, skip_bad):
    """Decode every image of a folder or archive, hidden files and folders aside.

    Parameters
    ----------
    path : path
        A folder or an archive.
    image_size : tuple of (int, int) or None
        Resize every image to (height, width), bilinearly; None keeps their sizes, which
        must then agree.
    skip_bad : bool
        Skip unreadable files, listing them in ``Tree.skipped``, instead of refusing them.

    Returns
    -------
    tree : Tree

    Raises
    ------
    DataError
        Naming an unreadable file (with ``fix="skip_bad"``), images of two sizes (with
        ``fix="image_size"``), an empty class folder, or a tree without images.
    """
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
                raise DataError(f"{exc} Remove it, or pass skip_bad=True to skip such files.",
                                fix="skip_bad") from None
            skipped.append(str(exc))
    if not arrays:
        raise DataError(f"{path} holds no images" + (f" ({len(skipped)} unreadable files skipped)."
                                                     if skipped else "."))
    paths, folders = _strip_common_folder(paths, folders, is_archive=not path.is_dir())
    _check_no_empty_folders(path, paths, folders)
    return Tree(_stack_images(paths, arrays), tuple(paths), tuple(skipped))


def _decode_image(relative, data, image_size):
    if isinstance(data, _Unreadable):
        raise DataError(data.reason)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image = _eight_bit(image, relative)
            if image_size is not None:
                image = resized_image(image, image_size)
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
            f"{size_b[0]}x{size_b[1]} (height x width). Pass an image_size of (height, width) "
            "to resize them all.",
            fix="image_size",
        )
    if all(array.ndim == 2 for array in arrays):
        return np.stack(arrays)[..., np.newaxis]
    return np.stack([np.dstack([a] * 3) if a.ndim == 2 else a for a in arrays])
