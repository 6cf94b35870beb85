"""The private scikit-learn helpers the search package relies on, imported in one place.

Private names may move between scikit-learn releases; when one does, this is the only
file to change.
"""

from sklearn.model_selection._search import BaseSearchCV
from sklearn.neighbors._base import _get_weights
from sklearn.utils._param_validation import Interval
from sklearn.utils.arrayfuncs import _all_with_any_reduction_axis_1
from sklearn.utils.fixes import _mode
from sklearn.utils.validation import _num_samples

__all__ = [
    "BaseSearchCV", "Interval", "_all_with_any_reduction_axis_1", "_get_weights", "_mode",
    "_num_samples",
]
