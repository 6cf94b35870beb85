"""Scikit-learn transformers on image arrays of shape (n_images, height, width, channels)."""

from .augment import RandomAugment, Sobel, make_input_transform
from .deep import DeepFeatures
from .images import ImageFlattener, check_images, make_pca

__all__ = [
    "DeepFeatures",
    "ImageFlattener",
    "RandomAugment",
    "Sobel",
    "check_images",
    "make_input_transform",
    "make_pca",
]
