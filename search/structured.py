"""Structure-aware evaluation: equivalent candidates of a search share one fit.

An exhaustive grid fits every candidate on every fold, although many candidates
are provably the same model, or a prefix of one:

- a random forest's first ``k`` trees are the ``k``-tree forest of the same
  integer seed, and a warm start draws the seeds of the trees it already has
  before growing new ones, so one forest grown to the largest ``n_estimators``
  serves every smaller one;
- ``min_samples_split`` and ``min_samples_leaf`` reach the tree builder as
  ``(max(split, 2 * leaf), leaf)`` after fractions become counts, so e.g.
  ``min_samples_leaf=0.3`` makes every ``min_samples_split`` in the study's grid
  the same forest;
- every ``n_neighbors`` and ``weights`` of a kNN reads one neighbour query per
  metric, and ``algorithm`` only chooses how that query runs;
- ``C`` is ignored without a penalty, and an L-BFGS fit that stopped before
  ``max_iter`` is the fit of every larger ``max_iter``;
- an SVC's ``gamma``, ``coef0`` and ``degree`` are ignored by kernels that do
  not use them.

The classes here are drop-in subclasses of the scikit-learn estimators that
share that work through a bounded, process-local memo cache, keyed by a
fingerprint of the data and the parameters that can change the result. A
cache miss recomputes, so correctness never depends on the cache, and any
search built on :class:`~sklearn.model_selection._search.BaseSearchCV`
(:class:`~sklearn.model_selection.GridSearchCV`, ``GASearchCV``) uses them
unchanged: pass ``structured(estimator)`` as the search's estimator.
:func:`count_fits` tells how much work was done and how much was saved.
"""

import copy
import hashlib
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from math import ceil
from numbers import Integral

import joblib
import numpy as np
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC
from sklearn.utils import get_tags
from sklearn.utils.extmath import weighted_mode
from sklearn.utils.validation import check_is_fitted, validate_data

from ._sklearn_compat import _all_with_any_reduction_axis_1, _get_weights, _mode, _num_samples

__all__ = [
    "FitStats",
    "SharedForestClassifier",
    "SharedLogisticRegression",
    "SharedNeighborsClassifier",
    "SharedSVC",
    "clear_cache",
    "count_fits",
    "model_key",
    "set_cache_limit",
    "structured",
]

# Bytes of one tree node besides its class counts: sizeof(Node) in
# sklearn/tree/_tree.pxd.
_NODE_BYTES = 64
# Neighbours fetched by the first query of a (train, query, metric): fetching
# more costs almost nothing next to the distances, and covers a whole
# n_neighbors axis with one query.
_MIN_QUERY_K = 32
# Solvers whose result depends on `random_state`.
_RANDOM_SOLVERS = ("liblinear", "sag", "saga")
# Kernel parameters each SVC kernel reads (libsvm's kernel functions).
_KERNEL_PARAMS = {
    "linear": (),
    "poly": ("gamma", "coef0", "degree"),
    "rbf": ("gamma",),
    "sigmoid": ("gamma", "coef0"),
    "precomputed": (),
}


# --------------------------------------------------------------------------
# Fingerprints, the cache, the counters
# --------------------------------------------------------------------------


def _fingerprint(a):
    """Digest that is equal only for equal data, layout and type."""
    if a is None:
        return None
    if isinstance(a, np.ndarray) and not a.dtype.hasobject:
        fortran = a.flags.f_contiguous and not a.flags.c_contiguous
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr((a.shape, a.dtype.str, fortran)).encode())
        # Bytes in logical order, copied only for arrays in neither layout.
        digest.update(a.T if fortran else np.ascontiguousarray(a))
        return digest.hexdigest()
    return joblib.hash(a)


def _data_key(X, y, sample_weight):
    # sklearn reads `y` through np.asarray, so a list and its array are one y.
    return _fingerprint(X), _fingerprint(np.asarray(y)), _fingerprint(sample_weight)


def _params_key(estimator, ignore=(), **overrides):
    """Hash of the parameters, less `ignore`, with `overrides` applied."""
    params = estimator.get_params(deep=False)
    params.update(overrides)
    kept = {name: value for name, value in params.items() if name not in ignore}
    return type(estimator).__name__, joblib.hash(kept)


class _Memo:
    """Thread-safe least-recently-used map bounded by an estimate of its bytes."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._entries = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def put(self, key, value, nbytes):
        with self._lock:
            self._discard(key)
            if nbytes > self.max_bytes:
                return
            self._entries[key] = value, nbytes
            self._nbytes += nbytes
            self._shrink()

    def resize(self, max_bytes):
        with self._lock:
            self.max_bytes = max_bytes
            self._shrink()

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def _discard(self, key):
        if key in self._entries:
            self._nbytes -= self._entries.pop(key)[1]

    def _shrink(self):
        while self._nbytes > self.max_bytes:
            self._nbytes -= self._entries.popitem(last=False)[1][1]


_MEMO = _Memo(max_bytes=2 * 2**30)


def clear_cache():
    """Drop every shared fit and neighbour query held by this process."""
    _MEMO.clear()


def set_cache_limit(max_bytes):
    """Bound the memory the shared fits may hold in this process.

    Parameters
    ----------
    max_bytes : int
        Estimated bytes of the fitted models and neighbour queries kept.
        The default is 2 GiB. A result larger than the limit is not kept, so
        its equivalents are computed again, as without sharing.

    Returns
    -------
    previous : int
        The limit before this call.
    """
    previous = _MEMO.max_bytes
    _MEMO.resize(max_bytes)
    return previous


@dataclass
class FitStats:
    """Work done by the shared estimators while :func:`count_fits` was open.

    Attributes
    ----------
    requested : int
        Fits asked of shared estimators; for
        :class:`SharedNeighborsClassifier`, neighbour readouts (one per
        ``predict`` or ``predict_proba``), since its fit stores the data.

    computed : int
        Of those, the ones that did new work: fitted a model, grew at least
        one tree, or ran a neighbour query.

    trees_requested : int
        Trees in the forests asked for.

    trees_grown : int
        Trees actually grown.
    """

    requested: int = 0
    computed: int = 0
    trees_requested: int = 0
    trees_grown: int = 0

    @property
    def saved(self):
        """Requests answered wholly from shared work."""
        return self.requested - self.computed


_COUNTERS = []
_COUNTERS_LOCK = threading.Lock()


@contextmanager
def count_fits():
    """Count the work of shared estimators in this process while open.

    Yields
    ------
    stats : FitStats
        Updated live; may be nested with other counters.

    Notes
    -----
    Only work done in this process is seen: with ``n_jobs > 1`` in a search
    the fits run in worker processes, which count (and share) on their own.
    Use ``n_jobs=1`` or a threading backend to record a search's totals.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import GridSearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> clear_cache()
    >>> grid = {"n_neighbors": [1, 3, 5], "algorithm": ["kd_tree", "brute"]}
    >>> search = GridSearchCV(SharedNeighborsClassifier(), grid, cv=3, refit=False)
    >>> with count_fits() as stats:
    ...     _ = search.fit(X, y)
    >>> stats.requested, stats.computed
    (18, 3)
    """
    stats = FitStats()
    with _COUNTERS_LOCK:
        _COUNTERS.append(stats)
    try:
        yield stats
    finally:
        with _COUNTERS_LOCK:
            _COUNTERS.remove(stats)


def _record(computed, trees_requested=0, trees_grown=0):
    with _COUNTERS_LOCK:
        for stats in _COUNTERS:
            stats.requested += 1
            stats.computed += int(computed)
            stats.trees_requested += trees_requested
            stats.trees_grown += trees_grown


# --------------------------------------------------------------------------
# Fitted state
# --------------------------------------------------------------------------


def _fitted_state(estimator, unfitted):
    """The attributes that `fit` set on a never-fitted `estimator`.

    `unfitted` is a copy of ``vars(estimator)`` taken before `fit`: what fit
    added or rebound is its state.
    """
    return {
        name: value
        for name, value in vars(estimator).items()
        if name not in unfitted or unfitted[name] is not value
    }


def _state_nbytes(state):
    return sum(value.nbytes for value in state.values() if isinstance(value, np.ndarray))


def _forest_nbytes(state):
    per_node = _NODE_BYTES + 8 * state["n_outputs_"] * np.max(state["n_classes_"])
    return per_node * sum(tree.tree_.node_count for tree in state["estimators_"])


# --------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------


class _SharedFitMixin:
    """Fit once per cache key; equal keys take the cached fitted state.

    A subclass writes ``_share_key(X, y, sample_weight)``, returning None
    where the fit cannot be shared, and ``_irrelevant_params()``: the parameters
    that cannot change the fitted model, which both its cache key and
    :func:`model_key` leave out.
    """

    def fit(self, X, y, sample_weight=None):
        """Fit the model, or take the fit of an equivalent one.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : array-like of shape (n_samples,)
            Target values.

        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        self._validate_params()
        key = self._share_key(X, y, sample_weight)
        if key is None:
            super().fit(X, y, sample_weight)
            _record(True)
            return self
        state = self._cached_state(key)
        computed = state is None
        if computed:
            state = self._fit_twin(X, y, sample_weight)
            self._store_state(key, state)
        vars(self).update(state)
        _record(computed)
        return self

    def _fit_twin(self, X, y, sample_weight):
        """Fitted state of an unfitted clone, fitted by the parent class."""
        # A never-fitted twin: on `self`, a refit could rebind an attribute to
        # the very object it held, which the state would then miss.
        twin = clone(self)
        unfitted = dict(vars(twin))
        super(_SharedFitMixin, twin).fit(X, y, sample_weight)
        return _fitted_state(twin, unfitted)

    def _cached_state(self, key):
        return _MEMO.get(key)

    def _store_state(self, key, state):
        _MEMO.put(key, state, _state_nbytes(state))


class SharedForestClassifier(RandomForestClassifier):
    """Random forest whose equivalent fits share trees.

    Same parameters and results as
    :class:`~sklearn.ensemble.RandomForestClassifier`. With an integer
    `random_state`, fits on the same data whose parameters differ only in
    `n_estimators`, `n_jobs`, `verbose`, or in `min_samples_split` and
    `min_samples_leaf` values that the tree builder reads as the same counts,
    share one forest: its first `n_estimators` trees, grown further with a warm
    start when it has fewer.

    Parameters
    ----------
    **params
        Those of :class:`~sklearn.ensemble.RandomForestClassifier`.

    Attributes
    ----------
    estimators_ : list of DecisionTreeClassifier
        The trees; each is a shallow copy carrying this forest's
        `min_samples_split` and `min_samples_leaf`, whose fitted ``tree_`` may
        be shared with other forests.

    See Also
    --------
    structured : Swap a plain estimator for its shared twin.
    count_fits : Count the fits and trees saved.

    Notes
    -----
    Fits are not shared when `random_state` is not an integer, with
    `warm_start` or `oob_score`, or with a "balanced" `class_weight` preset
    (sklearn warns when those are warm-started). Shared trees are read-only,
    as every fitted tree is in scikit-learn.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> big = SharedForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    >>> small = SharedForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    >>> small.estimators_[4].tree_ is big.estimators_[4].tree_
    True
    """

    def fit(self, X, y, sample_weight=None):
        """Build the forest, reading or growing an equivalent one.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values.

        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        self._validate_params()
        key = self._share_key(X, y, sample_weight)
        if key is None:
            super().fit(X, y, sample_weight)
            _record(True, self.n_estimators, self.n_estimators)
            return self
        forest = _MEMO.get(key)
        n_cached = 0 if forest is None else len(forest["estimators_"])
        n_grown = max(0, self.n_estimators - n_cached)
        if n_grown:
            forest = self._grow(forest, X, y, sample_weight)
            _MEMO.put(key, forest, _forest_nbytes(forest))
        _record(n_grown > 0, self.n_estimators, n_grown)
        return self._take_trees(forest)

    def _share_key(self, X, y, sample_weight):
        seeded = isinstance(self.random_state, Integral)
        preset = isinstance(self.class_weight, str)
        if not seeded or preset or self.warm_start or self.oob_score:
            return None
        split, leaf = self._min_samples(_num_samples(X))
        # a forest of fewer trees is a prefix of the one grown for the largest
        ignore = ("n_estimators", *self._irrelevant_params())
        params = _params_key(self, ignore, min_samples_split=split, min_samples_leaf=leaf)
        return params, _data_key(X, y, sample_weight)

    def _irrelevant_params(self):
        """Parameters that cannot change the forest: parallelism and logging."""
        return ("n_jobs", "verbose")

    def _min_samples(self, n_samples):
        """(min_samples_split, min_samples_leaf) as the tree builder reads them.

        Mirrors ``BaseDecisionTree._fit``; every tree of a forest sees all
        `n_samples` rows (bootstrap draws are sample weights).
        """
        leaf = self.min_samples_leaf
        if not isinstance(leaf, Integral):
            leaf = ceil(leaf * n_samples)
        split = self.min_samples_split
        if not isinstance(split, Integral):
            split = max(2, ceil(split * n_samples))
        return max(split, 2 * leaf), leaf

    def _grow(self, forest, X, y, sample_weight):
        """Fitted state of a plain forest of `n_estimators` trees extending `forest`."""
        warm = forest is not None
        grower = RandomForestClassifier(**{**self.get_params(deep=False), "warm_start": warm})
        unfitted = dict(vars(grower))
        if warm:
            # A copy: the warm start appends to the list it is given.
            grower.estimators_ = list(forest["estimators_"])
        grower.fit(X, y, sample_weight)
        return _fitted_state(grower, unfitted)

    def _take_trees(self, forest):
        """Take the fitted state `forest`, cut to the first `n_estimators` trees."""
        own = {"min_samples_split": self.min_samples_split,
               "min_samples_leaf": self.min_samples_leaf}
        trees = forest["estimators_"][: self.n_estimators]
        vars(self).update(forest, estimators_=[_with_params(tree, own) for tree in trees])
        return self


def _with_params(tree, params):
    """Shallow copy of a fitted tree (sharing its ``tree_``) with `params` set."""
    tree = copy.copy(tree)
    vars(tree).update(params)
    return tree


class SharedNeighborsClassifier(KNeighborsClassifier):
    """k-nearest neighbours whose candidates share one neighbour query.

    Same parameters and results as
    :class:`~sklearn.neighbors.KNeighborsClassifier`. ``predict`` and
    ``predict_proba`` read the votes of every `n_neighbors` and `weights` off
    one brute-force neighbour query per (training data, query data, metric),
    whatever the `algorithm`; a query fetches at least 32 neighbours, and is
    re-run with twice as many when a larger `n_neighbors` asks for more.

    Parameters
    ----------
    **params
        Those of :class:`~sklearn.neighbors.KNeighborsClassifier`.

    See Also
    --------
    structured : Swap a plain estimator for its shared twin.
    count_fits : Count the neighbour queries run and saved.

    Notes
    -----
    The algorithms of scikit-learn find the same neighbours, except among
    points at exactly equal distances (duplicates, or integer-valued data
    under the L1 metric), which each algorithm orders its own way, and their
    Euclidean distances differ in the last bits (brute force goes through the
    Gram matrix). There the shared query answers as ``algorithm="brute"``,
    which ``"auto"`` also picks for more than 15 features. ``kneighbors`` is
    unchanged. Precomputed distances and ``predict(None)`` are not shared.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> knn = SharedNeighborsClassifier(n_neighbors=5, algorithm="kd_tree")
    >>> round(knn.fit(X, y).score(X, y), 3)
    0.967
    """

    def _irrelevant_params(self):
        """Parameters that cannot change a prediction: how the shared query runs."""
        return ("algorithm", "leaf_size", "n_jobs")

    def fit(self, X, y):
        """Fit the k-nearest neighbours classifier from the training data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values.

        Returns
        -------
        self : SharedNeighborsClassifier
            The fitted classifier.
        """
        super().fit(X, y)
        shared = self.metric != "precomputed"
        self._fit_X_key = _fingerprint(self._fit_X) if shared else None
        return self

    def predict(self, X):
        """Predict the class labels for the provided data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features)
            Test samples.

        Returns
        -------
        y : ndarray of shape (n_queries,) or (n_queries, n_outputs)
            Class labels for each data sample.
        """
        neighbours = self._shared_kneighbors(X)
        if neighbours is None:
            return super().predict(X)
        neigh_dist, neigh_ind = neighbours
        weights = self._weights(neigh_dist)
        outputs = self._labels_per_output()
        y_pred = np.empty((len(neigh_ind), len(outputs)), dtype=outputs[0][1].dtype)
        for k, (y_k, classes_k) in enumerate(outputs):
            if weights is None:
                mode, _ = _mode(y_k[neigh_ind], axis=1)
            else:
                mode, _ = weighted_mode(y_k[neigh_ind], weights, axis=1)
            y_pred[:, k] = classes_k.take(np.asarray(mode.ravel(), dtype=np.intp))
        return y_pred if self.outputs_2d_ else y_pred.ravel()

    def predict_proba(self, X):
        """Return probability estimates for the test data X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features)
            Test samples.

        Returns
        -------
        p : ndarray of shape (n_queries, n_classes), or a list of n_outputs \
                of such arrays if n_outputs > 1
            The class probabilities of the input samples, classes in
            lexicographic order.
        """
        neighbours = self._shared_kneighbors(X)
        if neighbours is None:
            return super().predict_proba(X)
        neigh_dist, neigh_ind = neighbours
        weights = self._weights(neigh_dist)
        if weights is None:
            weights = np.ones_like(neigh_ind)
        rows = np.arange(len(neigh_ind))
        probabilities = []
        for y_k, classes_k in self._labels_per_output():
            proba_k = np.zeros((len(neigh_ind), classes_k.size))
            # Add one neighbour rank at a time: repeated labels in a row must
            # all count, which one fancy-indexed `+=` would not do.
            for i, labels in enumerate(y_k[neigh_ind].T):
                proba_k[rows, labels] += weights[:, i]
            proba_k /= proba_k.sum(axis=1)[:, np.newaxis]
            probabilities.append(proba_k)
        return probabilities if self.outputs_2d_ else probabilities[0]

    def _labels_per_output(self):
        """(encoded training labels, classes) of each output."""
        if not self.outputs_2d_:
            return [(self._y, self.classes_)]
        return [(self._y[:, k], classes_k) for k, classes_k in enumerate(self.classes_)]

    def _weights(self, neigh_dist):
        """Neighbour weights as ``KNeighborsClassifier`` computes and checks them."""
        weights = _get_weights(neigh_dist, self.weights)
        if weights is not None and _all_with_any_reduction_axis_1(weights, value=0):
            raise ValueError(
                "All neighbors of some sample is getting zero weights. "
                "Please modify 'weights' to avoid this case if you are "
                "using a user-defined function."
            )
        return weights

    def _shared_kneighbors(self, X):
        """(distances, indices) of the `n_neighbors` nearest, or None if unshared."""
        check_is_fitted(self, "_fit_method")
        k = self.n_neighbors
        if X is None or self._fit_X_key is None or k > self.n_samples_fit_:
            return None
        allow_nan = get_tags(self).input_tags.allow_nan
        X = validate_data(self, X, ensure_all_finite="allow-nan" if allow_nan else True,
                          accept_sparse="csr", reset=False, order="C")
        key = ("neighbours", self._fit_X_key, _fingerprint(X), self.effective_metric_,
               joblib.hash(self.effective_metric_params_))
        cached = _MEMO.get(key)
        k_cached = 0 if cached is None else cached[1].shape[1]
        if k_cached < k:
            k_query = min(max(k, _MIN_QUERY_K, 2 * k_cached), self.n_samples_fit_)
            cached = self._brute_kneighbors(X, k_query)
            _MEMO.put(key, cached, cached[0].nbytes + cached[1].nbytes)
        _record(k_cached < k)
        # Copies, so that a weights callable cannot write into the cache.
        return cached[0][:, :k].copy(), cached[1][:, :k].copy()

    def _brute_kneighbors(self, X, k):
        searcher = NearestNeighbors(
            n_neighbors=k, algorithm="brute", metric=self.metric, p=self.p,
            metric_params=self.metric_params, n_jobs=self.n_jobs,
        )
        return searcher.fit(self._fit_X).kneighbors(X)


class SharedLogisticRegression(_SharedFitMixin, LogisticRegression):
    """Logistic regression whose equivalent fits are fitted once.

    Same parameters and results as
    :class:`~sklearn.linear_model.LogisticRegression`. Fits on the same data
    share one result when their parameters differ only in `verbose`,
    `n_jobs`, in `C` under ``penalty=None`` (which ignores it), or, for the
    "lbfgs" solver, in a `max_iter` above the iterations that an equivalent
    fit needed to stop: L-BFGS reads `max_iter` only to stop.

    Parameters
    ----------
    **params
        Those of :class:`~sklearn.linear_model.LogisticRegression`.

    See Also
    --------
    structured : Swap a plain estimator for its shared twin.
    count_fits : Count the fits saved.

    Notes
    -----
    Not shared: `warm_start` fits, and the "liblinear", "sag" and "saga"
    solvers without an integer `random_state`. A fit read from the cache
    emits no warnings: the fit it copies did.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> first = SharedLogisticRegression(max_iter=500).fit(X, y)
    >>> later = SharedLogisticRegression(max_iter=10000).fit(X, y)
    >>> later.coef_ is first.coef_
    True
    """

    def _share_key(self, X, y, sample_weight):
        drawn = self.solver in _RANDOM_SOLVERS
        if self.warm_start or (drawn and not isinstance(self.random_state, Integral)):
            return None
        # a fit that stopped before max_iter is the fit of every larger max_iter
        params = _params_key(self, ("max_iter", *self._irrelevant_params()))
        return params, _data_key(X, y, sample_weight)

    def _irrelevant_params(self):
        """Parameters that cannot change the fit: logging, parallelism, and C without a
        penalty."""
        # penalty=None is deprecated but still honoured by scikit-learn 1.9.
        unused = ("C",) if self.penalty is None else ()
        return ("verbose", "n_jobs", *unused)

    def _cached_state(self, key):
        exact = _MEMO.get((key, self.max_iter))
        if exact is not None or self.solver != "lbfgs":
            return exact
        stopped = _MEMO.get((key, "stopped early"))
        if stopped is not None and _n_iter(stopped) < self.max_iter:
            return stopped
        return None

    def _store_state(self, key, state):
        nbytes = _state_nbytes(state)
        _MEMO.put((key, self.max_iter), state, nbytes)
        if _n_iter(state) < self.max_iter:
            _MEMO.put((key, "stopped early"), state, nbytes)


def _n_iter(state):
    return int(np.max(state["n_iter_"]))


class SharedSVC(_SharedFitMixin, SVC):
    """Support vector classifier whose equivalent fits are fitted once.

    Same parameters and results as :class:`~sklearn.svm.SVC`. Fits on the same
    data share one result when their parameters differ only in `verbose`,
    `cache_size`, or in kernel parameters their kernel does not read:
    `gamma` for "linear" and "precomputed"; `coef0` except for "poly" and
    "sigmoid"; `degree` except for "poly".

    Parameters
    ----------
    **params
        Those of :class:`~sklearn.svm.SVC`.

    See Also
    --------
    structured : Swap a plain estimator for its shared twin.
    count_fits : Count the fits saved.

    Notes
    -----
    With ``probability=True`` fits are shared only for an integer
    `random_state` (Platt scaling draws folds). A shared linear fit keeps the
    private ``_gamma`` of the fit it came from, which its kernel never reads.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> a = SharedSVC(kernel="linear", gamma=1e-3).fit(X, y)
    >>> b = SharedSVC(kernel="linear", gamma=1e-4).fit(X, y)
    >>> b.dual_coef_ is a.dual_coef_
    True
    """

    def _irrelevant_params(self):
        """Parameters that cannot change the fit: logging, cache, and unread kernel ones."""
        used = _KERNEL_PARAMS[self.kernel] if isinstance(self.kernel, str) else ()
        unused = tuple(name for name in ("gamma", "coef0", "degree") if name not in used)
        return ("verbose", "cache_size", *unused)

    def _share_key(self, X, y, sample_weight):
        # `probability` is deprecated and defaults to "deprecated" (False).
        if self.probability is True and not isinstance(self.random_state, Integral):
            return None
        params = _params_key(self, self._irrelevant_params())
        return params, _data_key(X, y, sample_weight)


_TWINS = {
    KNeighborsClassifier: SharedNeighborsClassifier,
    LogisticRegression: SharedLogisticRegression,
    RandomForestClassifier: SharedForestClassifier,
    SVC: SharedSVC,
}


def model_key(estimator, params):
    """What of `params` can change the model `estimator` fits, as a hashable key.

    Two parameter sets with equal keys fit the same model on any data, so a
    search that has scored one need not score the other: the keys drop what
    each shared twin's ``_irrelevant_params`` names, the parameters its fit
    cache ignores too (kNN's `algorithm`, `leaf_size` and `n_jobs`; an SVC's
    `verbose`, `cache_size` and the kernel parameters its kernel does not
    read; a logistic regression's `C` without a penalty; everyone's logging
    and parallelism). Only the shared twins (:func:`structured`) are read this
    way; for any other estimator the key is the parameters themselves.

    Parameters
    ----------
    estimator : estimator instance
        The searched estimator: a shared twin, or a pipeline ending in one.

    params : dict
        Parameter name -> value, as a search sets them (with a pipeline's
        step prefix).

    Returns
    -------
    key : str
        Equal for parameter sets that fit the same model.

    Examples
    --------
    >>> knn = SharedNeighborsClassifier()
    >>> model_key(knn, {"n_neighbors": 3, "algorithm": "kd_tree"}) == model_key(
    ...     knn, {"n_neighbors": 3, "algorithm": "brute"})
    True
    """
    model, prefix = estimator, ""
    if isinstance(estimator, Pipeline):
        name, model = estimator.steps[-1]
        prefix = f"{name}__"
    own = {name[len(prefix):]: value for name, value in params.items()
           if name.startswith(prefix) and "__" not in name[len(prefix):]}
    ignored = ()
    if hasattr(model, "_irrelevant_params"):
        ignored = clone(model).set_params(**own)._irrelevant_params()
    kept = {name: value for name, value in params.items()
            if not (name.startswith(prefix) and name[len(prefix):] in ignored)}
    return joblib.hash(kept)


def structured(estimator):
    """Swap an estimator, or a pipeline's final step, for its shared twin.

    Parameters
    ----------
    estimator : estimator instance
        A :class:`~sklearn.ensemble.RandomForestClassifier`,
        :class:`~sklearn.neighbors.KNeighborsClassifier`,
        :class:`~sklearn.linear_model.LogisticRegression`,
        :class:`~sklearn.svm.SVC`, or a :class:`~sklearn.pipeline.Pipeline`
        ending in one. Other estimators are returned as unfitted clones.

    Returns
    -------
    estimator : estimator instance
        An unfitted copy whose model is the shared twin with the same
        parameters, so the same search grid applies.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.svm import SVC
    >>> structured(make_pipeline(StandardScaler(), SVC(C=10)))[-1]
    SharedSVC(C=10)
    """
    if isinstance(estimator, Pipeline):
        name, last = estimator.steps[-1]
        return clone(estimator).set_params(**{name: structured(last)})
    twin = _TWINS.get(type(estimator))
    if twin is None:
        return clone(estimator)
    return twin(**estimator.get_params(deep=False))
