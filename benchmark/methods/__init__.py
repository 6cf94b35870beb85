"""The rows of the method registry, one module per family of methods.

Each family module holds ``ROWS``, a list of :class:`~benchmark.methods.row.Method` written
as data; :mod:`benchmark.registry` gathers the families in a fixed order. ``row`` holds what
a row is and the one builder that turns a row into an estimator.
"""
