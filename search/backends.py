"""Run searches, and any joblib work, on local processes or on a Dask cluster."""

import os
from contextlib import ExitStack, contextmanager

import joblib
from joblib.parallel import ThreadingBackend
from threadpoolctl import threadpool_limits

BACKENDS = ("threads", "loky", "dask")


class SchedulerError(ConnectionError):
    """The Dask scheduler named cannot be reached."""


class SharedCoresThreadingBackend(ThreadingBackend):
    """joblib's threads, with BLAS left each thread's share of the cores while they run.

    Each thread of a parallel call otherwise runs BLAS (OpenBLAS, MKL) on every core: on 2
    cores, a probe's logistic-regression search took 24 s instead of 3 with its 2 threads'
    BLAS threads waiting on each other. loky's processes get this limit from joblib.
    """

    _limits = None

    def configure(self, n_jobs=1, parallel=None, **backend_kwargs):
        n_jobs = super().configure(n_jobs, parallel, **backend_kwargs)
        if n_jobs > 1:
            self._limits = threadpool_limits(max(1, os.cpu_count() // n_jobs), user_api="blas")
        return n_jobs

    def terminate(self):
        if self._limits is not None:
            self._limits.restore_original_limits()
            self._limits = None
        super().terminate()


joblib.register_parallel_backend("shared-cores-threading", SharedCoresThreadingBackend)


@contextmanager
def parallel_backend(backend="threads", *, scheduler=None):
    """Route joblib work (``n_jobs`` of searches and estimators) to a backend.

    Parameters
    ----------
    backend : {"threads", "loky", "dask"}, default="threads"
        ``"threads"``: threads of this process, so the shared-work estimators of
        :mod:`search.structured` share (and count) every fit of a search; the heavy
        numeric work releases the GIL, and BLAS keeps to each thread's share of the cores
        (:class:`SharedCoresThreadingBackend`). ``"loky"``: local worker processes, each sharing
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
        name = "shared-cores-threading" if backend == "threads" else "loky"
        with joblib.parallel_backend(name):
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
