"""Errors the command line reports in one line, with exit status 2, instead of a traceback."""


class DataError(ValueError):
    """A dataset that cannot be read as asked; the message names the culprit and the fix."""
