"""Scikit-learn transformers on image arrays of shape (n_images, height, width, channels)."""

from .images import ImageFlattener, check_images, make_pca

__all__ = ["ImageFlattener", "check_images", "make_pca"]
