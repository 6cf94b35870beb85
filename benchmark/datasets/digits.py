"""scikit-learn's digits, embedded: 1,797 8x8 grey images of ten classes."""

import numpy as np
from sklearn.datasets import load_digits as _sklearn_digits

from .dataset import class_names, hold_out


def load_digits(seed=0, test_size=0.2):
    """The digits as 8-bit grey images, split by a seeded, stratified hold-out.

    Parameters
    ----------
    seed : int, default=0
        Seed of the split.
    test_size : float, default=0.2
        Share of the images held out for testing.

    Returns
    -------
    dataset : Dataset
        Images of shape (8, 8, 1), scaled from 0-16 to 0-255; ``source`` "digits".
    """
    digits = _sklearn_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)[..., np.newaxis]
    return hold_out("digits", images, digits.target.astype(np.int64),
                    class_names(digits.target_names), seed, test_size, source="digits")
