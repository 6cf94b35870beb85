"""The results store, the study's reference figures, and markdown tables of stored records."""

from .plots import render_plots
from .reference import STUDY
from .store import RecordError, ResultStore, atomic_write, record_key
from .tables import render_report

__all__ = [
    "STUDY", "RecordError", "ResultStore", "atomic_write", "record_key", "render_plots",
    "render_report",
]
