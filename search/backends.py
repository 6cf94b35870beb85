"""Run searches, and any joblib work, on local processes or on a Dask cluster."""

from contextlib import ExitStack, contextmanager

import joblib

BACKENDS = ("threads", "loky", "dask")


class SchedulerError(ConnectionError):
    """The Dask scheduler named cannot be reached."""


@contextmanager
def parallel_backend(backend="threads", *, scheduler=None):
    """Route joblib work (``n_jobs`` of searches and estimators) to a backend.

    Parameters
    ----------
    backend : {"threads", "loky", "dask"}, default="threads"
        ``"threads"``: threads of this process, so the shared-work estimators of
        :mod:`search.structured` share (and count) every fit of a search; the heavy
        numeric work releases the GIL. ``"loky"``: local worker processes, each sharing
        work only with itself. ``"dask"``: a Dask cluster, reached at ``scheduler``, or a
        :class:`dask.distributed.LocalCluster` started here and closed on exit.
    scheduler : str, default=None
        Address of a running Dask scheduler, such as ``"tcp://10.0.0.5:8786"``.

    Yields
    ------
    client : dask.distributed.Client or None
        The Dask client, or None for threads and loky.

    Raises
    ------
    SchedulerError
        If the Dask scheduler at `scheduler` cannot be reached.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.svm import SVC
    >>> X, y = load_digits(return_X_y=True)
    >>> with parallel_backend("threads"):
    ...     GridSearchCV(SVC(), {"C": [1, 10]}, n_jobs=2).fit(X, y).best_params_
    {'C': 10}
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    if backend != "dask":
        if scheduler is not None:
            raise ValueError("A scheduler address needs backend='dask'.")
        with joblib.parallel_backend("threading" if backend == "threads" else "loky"):
            yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise ImportError(
            "The dask backend needs dask.distributed: pip install 'unlabelled-image-benchmark[dask]'."
        ) from exc
    with ExitStack() as stack:
        cluster = scheduler or stack.enter_context(LocalCluster(dashboard_address=None))
        try:
            client = stack.enter_context(Client(cluster))
        except OSError as exc:
            raise SchedulerError(
                f"Cannot reach the Dask scheduler at {scheduler} ({exc}).") from exc
        stack.enter_context(joblib.parallel_backend("dask"))
        yield client
