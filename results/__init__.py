"""The results store, the study's reference figures, and markdown tables of stored records."""

from .reference import STUDY
from .store import ResultStore, record_key
from .tables import render_report, runs_table

__all__ = ["STUDY", "ResultStore", "record_key", "render_report", "runs_table"]
