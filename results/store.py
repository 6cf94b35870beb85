"""One JSON record per (method, dataset, profile, seed), written atomically."""

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .schema import KEY_FIELDS


@contextmanager
def atomic_write(target, mode="w", **open_kwargs):
    """Open a file that replaces `target` only once it is whole.

    What is written goes to a hidden temporary file beside `target` (its folder is
    created), flushed to disk and renamed over `target` when the block ends; if the block
    raises, the temporary file is removed and `target` is left as it was.

    Parameters
    ----------
    target : str or path-like
        The file to write.
    mode : {"w", "wb"}, default="w"
        Text or binary.
    **open_kwargs
        Passed to :func:`open` (``newline=""`` for csv, for instance).

    Yields
    ------
    file : file object
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with open(partial, mode, **open_kwargs) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


class RecordError(ValueError):
    """A record file that cannot be read back; the message names it."""


def record_key(method, dataset, profile, seed):
    """File-name-safe key of one record.

    Parameters
    ----------
    method, dataset, profile : str
        What ran, on what, with which settings.
    seed : int
        Seed of the run.

    Returns
    -------
    key : str
    """
    return f"{row_key(method, dataset, profile)}__seed{int(seed)}"


def row_key(method, dataset, profile):
    """File-name-safe key of one row of a report: a method on a dataset, every seed of it.

    Parameters
    ----------
    method, dataset, profile : str
        What ran, on what, with which settings.

    Returns
    -------
    key : str
    """
    return re.sub(r"[^A-Za-z0-9_.=\-]", "_", f"{method}__{dataset}__{profile}")


class ResultStore:
    """A run folder of result records that survives crashes.

    Each record is one JSON file under ``<root>/records/``, written to a temporary file and
    renamed into place, so a crash leaves either the whole record or none of it.

    Parameters
    ----------
    root : path
        Run folder; created on the first write.

    Examples
    --------
    >>> import tempfile
    >>> store = ResultStore(tempfile.mkdtemp())
    >>> store.write({"method": "svm", "dataset": "digits", "profile": "quick", "seed": 0})
    >>> store.has("svm", "digits", "quick", 0)
    True
    """

    def __init__(self, root):
        self.root = Path(root)

    @property
    def records_dir(self):
        """Folder holding one JSON file per record."""
        return self.root / "records"

    def path(self, method, dataset, profile, seed):
        """Path of the record for these key fields."""
        return self.records_dir / f"{record_key(method, dataset, profile, seed)}.json"

    def checkpoint_dir(self, method, dataset, profile, seed):
        """Folder where an unfinished run keeps its training checkpoints."""
        return self.root / "checkpoints" / record_key(method, dataset, profile, seed)

    def has(self, method, dataset, profile, seed):
        """Whether a finished record exists for these key fields."""
        return self.path(method, dataset, profile, seed).exists()

    def write(self, record):
        """Write one record atomically, replacing any earlier one with the same key.

        Parameters
        ----------
        record : dict
            Plain values (numbers, strings, lists, dicts); must hold every key field.
        """
        missing = [name for name in KEY_FIELDS if name not in record]
        if missing:
            raise ValueError(f"A record needs the key fields {KEY_FIELDS}; missing {missing}.")
        text = json.dumps(record, indent=1, default=_json_default)
        with atomic_write(self.path(*(record[name] for name in KEY_FIELDS))) as file:
            file.write(text)

    def read(self, method, dataset, profile, seed):
        """The record for these key fields, as a dict."""
        return _read_record(self.path(method, dataset, profile, seed))

    def records(self):
        """Every finished record, ordered by file name."""
        return [_read_record(path) for path in sorted(self.records_dir.glob("*.json"))]

    def to_frame(self):
        """Every finished record as a DataFrame, one row per record."""
        import pandas as pd

        return pd.DataFrame.from_records(self.records())


def _read_record(path):
    """The record in `path`: a JSON object holding every key field, or a RecordError."""
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _unreadable(path, exc) from exc
    if not isinstance(record, dict):
        raise _unreadable(path, f"it holds {json.dumps(record)[:40]}, not a JSON object of "
                                f"the key fields {', '.join(KEY_FIELDS)}")
    missing = [name for name in KEY_FIELDS if name not in record]
    if missing:
        raise _unreadable(path, f"it lacks the key field(s) {', '.join(missing)}")
    return record


def _unreadable(path, why):
    return RecordError(f"{path} is not a readable record ({why}); delete it, and a rerun "
                       "computes that row again.")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Cannot store a value of type {type(value).__name__} in a record: {value!r}")
