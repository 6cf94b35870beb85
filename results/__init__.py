"""The record schema, the results store, the study's figures, and tables and plots of records."""

import lazy_loader

# Names are imported on first use: reading a record does not load matplotlib or pandas.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "plots": ["render_plots"],
        "reference": ["STUDY"],
        "schema": ["FIELDS", "KEY_FIELDS", "dataset_source"],
        "store": ["RecordError", "ResultStore", "atomic_write", "record_key"],
        "tables": ["render_report"],
    },
)
