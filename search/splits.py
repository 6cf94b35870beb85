"""Cross-validation on a subset: tune on part of a large training set, refit on all of it."""

from numbers import Integral

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.utils import check_random_state

from ._sklearn_compat import _num_samples

__all__ = ["SubsetKFold"]


class SubsetKFold:
    """Stratified k-fold cross-validation on a seeded, stratified subset of the data.

    A search given this splitter scores its candidates on at most `max_samples` rows,
    then refits the best candidate on all of them: on 50,000 CIFAR-10 images the
    ranking of a grid costs a fraction of the full cross-validation, and the final model
    still learns from every image. With no more rows than `max_samples`, it is
    :class:`~sklearn.model_selection.StratifiedKFold` with shuffling.

    Parameters
    ----------
    n_splits : int, default=3
        Number of folds, at least 2.
    max_samples : int or None, default=10000
        Largest number of rows the folds are drawn from; None uses every row.
    random_state : int, RandomState instance or None, default=None
        Seeds the subset and the shuffling of the folds; an int gives the same folds at
        every call, which a search needs to compare its candidates fairly.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = np.zeros((100, 2)), np.arange(100) % 2
    >>> cv = SubsetKFold(n_splits=2, max_samples=40, random_state=0)
    >>> [(len(train), len(test)) for train, test in cv.split(X, y)]
    [(20, 20), (20, 20)]
    """

    def __init__(self, n_splits=3, *, max_samples=10_000, random_state=None):
        if not isinstance(n_splits, Integral) or n_splits < 2:
            raise ValueError(f"n_splits must be an integer of at least 2; got {n_splits!r}.")
        if max_samples is not None and (not isinstance(max_samples, Integral)
                                        or max_samples < n_splits):
            raise ValueError(
                f"max_samples must be None or an integer of at least n_splits ({n_splits}); "
                f"got {max_samples!r}."
            )
        self.n_splits = n_splits
        self.max_samples = max_samples
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splits.

        Parameters
        ----------
        X, y, groups : object
            Ignored; present for API compatibility.

        Returns
        -------
        n_splits : int
            The number of folds.
        """
        return self.n_splits

    def split(self, X, y, groups=None):
        """Indices of the training and test rows of each fold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data; only its length is read.
        y : array-like of shape (n_samples,)
            Classes, which the subset and the folds keep in proportion.
        groups : object
            Ignored; present for API compatibility.

        Yields
        ------
        train, test : ndarray of int
            Row indices into `X`, all within the subset.
        """
        y = np.asarray(y)
        rows = np.arange(_num_samples(X))
        # One integer seed for both draws, so that every call gives the same folds.
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        if self.max_samples is not None and len(rows) > self.max_samples:
            rows = np.sort(train_test_split(
                rows, train_size=self.max_samples, stratify=y, random_state=seed
            )[0])
        folds = StratifiedKFold(self.n_splits, shuffle=True, random_state=seed)
        for train, test in folds.split(rows, y[rows]):
            yield rows[train], rows[test]

    def __repr__(self):
        return (f"SubsetKFold(n_splits={self.n_splits}, max_samples={self.max_samples}, "
                f"random_state={self.random_state!r})")
