"""The decoding cache: decoded image trees kept as .npz files, keyed by the source's content."""

import hashlib
import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from results import atomic_write

from .dataset import default_data_dir
from .trees import Tree, content_digest, decode_tree

_CACHE_FORMAT = 2  # 2: grey images of 16 bits scaled, not clipped

log = logging.getLogger(__name__)


def cached_tree(path, cache_dir, image_size, skip_bad):
    """The decoded images of a folder or archive, decoded once for each content and options.

    Parameters
    ----------
    path : path
        A folder or an archive.
    cache_dir : path or None
        Folder of the cache; None: ``cache`` under :func:`default_data_dir`.
    image_size, skip_bad
        As for :func:`~benchmark.datasets.trees.decode_tree`; part of the cache's key.

    Returns
    -------
    tree : Tree
    """
    options = {"format": _CACHE_FORMAT, "image_size": image_size, "skip_bad": skip_bad}
    key = hashlib.sha256(
        (content_digest(path) + json.dumps(options, sort_keys=True)).encode()
    ).hexdigest()
    cache_file = Path(cache_dir or default_data_dir() / "cache") / f"{key}.npz"
    tree = _read_cached_tree(cache_file) if cache_file.exists() else None
    if tree is None:
        tree = decode_tree(path, image_size, skip_bad)
        with atomic_write(cache_file, "wb") as file:
            np.savez(file, images=tree.images, paths=np.array(tree.paths, dtype=str),
                     skipped=np.array(tree.skipped, dtype=str))
    return tree


def _read_cached_tree(cache_file):
    """The tree cached in `cache_file`, or None, with a warning naming it, if unreadable."""
    try:
        with np.load(cache_file, allow_pickle=False) as cached:
            return Tree(cached["images"], tuple(cached["paths"]), tuple(cached["skipped"]))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        log.warning("decoding cache %s cannot be read (%s); decoding the images again and "
                    "rewriting it.", cache_file, exc)
        return None
