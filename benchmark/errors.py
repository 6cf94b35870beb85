"""Errors the command line reports in one line, with exit status 2, instead of a traceback."""


class DataError(ValueError):
    """A dataset that cannot be read as asked; the message names the culprit and the fix.

    Parameters
    ----------
    message : str
        What is wrong and how to fix it, in the library's terms (parameters, not flags).
    fix : str or tuple of str, default=()
        The parameters of :func:`~benchmark.datasets.load_dataset` whose change the message
        advises (``"limit"``, ``"skip_bad"``, ``"image_size"``, ``"data_dir"``,
        ``"source"``), so that a command line can name its flags for them.

    Attributes
    ----------
    fix : tuple of str
        The parameters named by ``fix``.
    """

    def __init__(self, message, *, fix=()):
        super().__init__(message)
        self.fix = (fix,) if isinstance(fix, str) else tuple(fix)
