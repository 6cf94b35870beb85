"""Benchmark ways to label images, with and without their labels.

The face of the toolkit: datasets, the method registry, the fit/score harness and the
command line (``python -m benchmark``).
"""

import lazy_loader

# Names are imported on first use: the command line lists methods without loading torch.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "datasets": ["DataError", "Dataset", "load_dataset"],
        "harness": ["run_method"],
        "registry": ["METHODS", "PROFILES", "Method", "get_methods", "register"],
    },
)
