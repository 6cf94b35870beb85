"""Scikit-learn transformers on image arrays of shape (n_images, height, width, channels).

Names are imported on first use: the pixel transformers do not wait for torch to load.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "augment": ["RandomAugment", "Sobel", "make_input_transform"],
        "deep": ["DeepFeatures"],
        "images": ["ImageFlattener", "check_images", "make_pca"],
    },
)
