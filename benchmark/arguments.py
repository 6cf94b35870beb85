"""Argument types and error hints shared by the command line and the benchmark scripts."""

import argparse

from .registry import unknown_name_message

# The flag of ``python -m benchmark run`` that sets each parameter of load_dataset a
# DataError's ``fix`` names.
DATA_FLAGS = {
    "limit": "--limit N",
    "skip_bad": "--skip-bad",
    "image_size": "--image-size HxW",
    "data_dir": "--data-dir DIR",
    "source": "--dataset PATH",
}


# Seeds numpy's legacy RandomState takes.
MAX_SEED = 2**32 - 1


def integer(text, *, accept, expected):
    """An integer parsed from `text` that `accept` takes, or an argparse error naming `expected`."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not accept(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text):
    """An argparse type: an integer of at least 1."""
    return integer(text, accept=lambda n: n >= 1, expected="a positive integer")


def seed_number(text):
    """An argparse type: a seed, from 0 to `MAX_SEED`."""
    return integer(text, accept=lambda n: 0 <= n <= MAX_SEED,
                   expected=f"an integer from 0 to {MAX_SEED}")


def seed_list(text):
    """An argparse type: comma-separated seeds, each once, in order."""
    return list(dict.fromkeys(seed_number(name) for name in comma_separated(text)))


def comma_separated(text):
    """An argparse type: comma-separated names, each once, in order; blanks dropped."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def names_among(valid, kind):
    """An argparse type: comma-separated names, each one of `valid` (a `kind` of thing)."""

    def parse(text):
        names = comma_separated(text)
        for name in names:
            if name not in valid:
                raise argparse.ArgumentTypeError(unknown_name_message(kind, name, list(valid)))
        return names

    return parse


def with_flags(error, flags=DATA_FLAGS):
    """The message of `error`, then the command-line flags that apply the fix it names.

    Parameters
    ----------
    error : Exception
        An error; a :class:`~benchmark.errors.DataError` names in ``fix`` the parameters
        that fix it.
    flags : dict, default=DATA_FLAGS
        Parameter -> the flag that sets it, of the command that failed; parameters it lacks
        are left unnamed.

    Returns
    -------
    message : str
    """
    named = [flags[name] for name in getattr(error, "fix", ()) if name in flags]
    return f"{error} On the command line: {', '.join(named)}." if named else str(error)
