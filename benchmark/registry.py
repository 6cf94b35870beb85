"""The method registry: every row of every family of methods, by name.

The rows are data, one module per family in :mod:`benchmark.methods` (see
:class:`benchmark.methods.row.Method` for what a row holds, and
:func:`benchmark.methods.row.build` for the one builder that makes its estimator). This
module gathers the families in a fixed order. Adding a family is adding one module there
and naming it in `FAMILIES`.

Profiles are data here, never branches in estimator code: ``smoke`` runs in seconds for
tests, ``quick`` fits a 2-core CPU in minutes, ``paper`` is the study's settings.
"""

from .methods import (
    classical,
    cnn,
    deepcluster,
    kmeans,
    learned,
    networks,
    pseudolabel,
    selfsupervised,
)
from .methods.row import (
    HARNESS_SETTINGS,
    N_CLUSTERS,
    N_JOBS,
    PROFILES,
    SEED,
    Method,
    Tuner,
    UnknownNameError,
    classical_pipeline,
    learned_features_pipeline,
    unknown_name_message,
)

__all__ = [
    "CLASSICAL_MODELS", "CNN_ARCHITECTURES", "FAMILIES", "HARNESS_SETTINGS", "METHODS",
    "N_CLUSTERS", "N_JOBS", "PROBE_PENALTIES", "PROFILES", "SEED", "Method", "Tuner",
    "UnknownNameError", "check_profile", "classical_pipeline", "describe_method",
    "get_methods", "in_borrowing_order", "learned_features_pipeline", "register",
    "unknown_name_message",
]

# The families, in the order of ``python -m benchmark list``; within it, each row that
# borrows a network comes right after the row it borrows from.
FAMILIES = (classical, cnn, pseudolabel, selfsupervised, learned, deepcluster, kmeans)
# name -> (title, ``make(seed, n_jobs)``) of each classical model.
CLASSICAL_MODELS = {name: (model.title, model.make) for name, model in classical.MODELS.items()}
# name -> (architecture, title, fixed parameters) of each network.
CNN_ARCHITECTURES = networks.ARCHITECTURES
PROBE_PENALTIES = pseudolabel.PENALTIES

METHODS = {}


def register(method):
    """Add a method to the registry.

    A name can be registered once, and after the row it borrows a network from.

    Parameters
    ----------
    method : Method
        The row.

    Returns
    -------
    method : Method
        The same row.
    """
    if method.name in METHODS:
        raise ValueError(f"Method {method.name!r} is already registered.")
    if method.borrows is not None and method.borrows not in METHODS:
        raise ValueError(f"Method {method.name!r} borrows the network of {method.borrows!r}, "
                         "which is not registered before it.")
    METHODS[method.name] = method
    return method


def get_methods(names):
    """The registered methods named, in order; an unknown name raises UnknownNameError."""
    for name in names:
        if name not in METHODS:
            raise UnknownNameError(unknown_name_message("method", name, list(METHODS)))
    return [METHODS[name] for name in names]


def check_profile(profile):
    """Raise UnknownNameError unless ``profile`` is a known profile."""
    if profile not in PROFILES:
        raise UnknownNameError(unknown_name_message("profile", profile, list(PROFILES)))


def in_borrowing_order(methods):
    """`methods` in the order to run them: each right after the row it borrows from.

    A row that borrows the network of a row among `methods` comes right after that row
    (after the rows that borrow it and came before); rows that borrow from one row not
    among them come together, where the first of them stood. The other rows keep their
    order. A run then still holds a network fitted by one row when the next row that would
    train it the same way comes (see :class:`benchmark.harness.BackboneCache`).

    Parameters
    ----------
    methods : list of Method
        Rows, each once.

    Returns
    -------
    ordered : list of Method
        The same rows.
    """
    chosen = {method.name for method in methods}
    borrowers = {}
    for method in methods:
        if method.borrows is not None:
            borrowers.setdefault(method.borrows, []).append(method)
    ordered = []

    def place(group):
        for method in group:
            ordered.append(method)
            place(borrowers.pop(method.name, []))

    for method in methods:
        if method.borrows is None:
            place([method])
        elif method.borrows not in chosen:
            place(borrowers.pop(method.borrows, []))
    if len(ordered) != len(methods):
        placed = {method.name for method in ordered}
        circle = [method.name for method in methods if method.name not in placed]
        raise ValueError(f"Rows that borrow from each other in a circle: {', '.join(circle)}.")
    return ordered


def describe_method(method, profile, *, seed=0, n_jobs=-1, n_classes=None):
    """What a row runs under `profile`: its harness settings, borrowed row and estimator.

    Builds the estimator (which imports scikit-learn, and torch for the networks) and
    lists every one of its parameters, nested estimators' too, resolved.

    Parameters
    ----------
    method : Method
        The row.
    profile : str
        The profile.
    seed, n_jobs, n_classes : int or None
        As a run passes them (a run's defaults: seed 0, ``--n-jobs -1``; 10 clusters).

    Returns
    -------
    text : str
        One line per setting and parameter.
    """
    estimator = method.estimator(profile, seed=seed, n_jobs=n_jobs, n_classes=n_classes)
    read = f"layer {method.layer}" if method.layer else "the penultimate features"
    borrows = f"{method.borrows} (the row reads {read} of its network)" if method.borrows else None
    run = f"seed {seed}, n_jobs {n_jobs}, {n_classes or 10} classes"
    lines = [
        f"{method.name} under profile {profile} ({run})",
        f"  {method.description}",
        f"  table: {method.table}, reference: {method.reference}, supervised: {method.supervised}",
        *(f"  {name}: {method.settings(profile).get(name)} (harness)"
          for name in HARNESS_SETTINGS),
        f"  borrows: {borrows}",
        *_parameter_lines("estimator", estimator, indent="  "),
    ]
    return "\n".join(lines)


def _parameter_lines(name, value, *, indent):
    """``name: value`` lines, an estimator's parameters (or a pipeline's steps) below it."""
    if hasattr(value, "get_params") and not isinstance(value, type):
        head = f"{name}: {type(value).__name__}"
        children = sorted(value.get_params(deep=False).items())
    elif _is_steps(value):
        head, children = f"{name}:", value
    else:
        return [f"{indent}{name}: {value!r}"]
    inner = indent + "  "
    return [f"{indent}{head}",
            *(line for child in children for line in _parameter_lines(*child, indent=inner))]


def _is_steps(value):
    """Whether `value` is a pipeline's steps: (name, estimator) pairs."""
    return isinstance(value, list) and bool(value) and all(
        isinstance(step, tuple) and len(step) == 2 and hasattr(step[1], "get_params")
        for step in value)


for _method in in_borrowing_order([row for family in FAMILIES for row in family.ROWS]):
    register(_method)
