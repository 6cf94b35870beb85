"""What a row of the method registry holds, and the one builder that makes its estimator.

A row is data: the class of the estimator it fits (a ``"module:Class"`` path, imported only
when the row is built, so that listing the methods loads neither torch nor scikit-learn),
its fixed parameters, its settings under every profile, what the estimator is wrapped in,
the search that tunes it and the row whose trained network it reads. Values known only
when a row is built stand in its parameters as placeholders: `SEED`, `N_JOBS`,
`N_CLUSTERS`.
"""

import copy
import difflib
import enum
import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# scikit-learn, search and torch are imported when a row is built, not here.
import estimators
import features

PROFILES = MappingProxyType({
    "smoke": "seconds, for tests",
    "quick": "minutes on a 2-core CPU",
    "gpu": "each network row in about 2 minutes on one data-centre GPU; other rows as quick",
    "paper": "the study's settings",
})
# Settings the harness reads; every other setting of a profile is a parameter of the estimator.
HARNESS_SETTINGS = ("train_limit",)


class UnknownNameError(KeyError):
    """A method, dataset or profile name that is not registered."""

    def __str__(self):
        return self.args[0]


def unknown_name_message(kind, name, valid):
    """Error text naming the unknown ``name``, close matches, and every valid choice."""
    close = difflib.get_close_matches(name, valid, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"Unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}."


class Runtime(enum.Enum):
    """A parameter's value that is known only when the row is built."""

    SEED = "the run's seed"
    N_JOBS = "the run's parallel jobs (None for a model that a search tunes)"
    N_CLUSTERS = "the number of classes, or 10 for images without labels"
    N_TRAIN = "the number of images the estimator trains on, if known"

    def __repr__(self):
        return self.name


SEED, N_JOBS, N_CLUSTERS, N_TRAIN = Runtime


@dataclass(frozen=True)
class EpochBudget:
    """A number of epochs written as a number of training images to show the network.

    A network then trains about as long on a large dataset as on a small one: 200,000
    images are 4 epochs of 50,000 CIFAR-10 images and, capped by `at_most`, fewer than
    the 139 epochs of 1,437 digits they would be.

    Attributes
    ----------
    images : int
        Images to show the network, counting each epoch's whole training set.
    at_most : int
        Most epochs, whatever the training set's size; also the epochs of a build that
        does not know it (``list --show``).
    """

    images: int
    at_most: int

    def epochs(self, n_train):
        """Epochs for a training set of `n_train` images (None: unknown): at least 1."""
        if n_train is None:
            return self.at_most
        return max(1, min(self.at_most, math.ceil(self.images / n_train)))


def runtime_values(*, seed=0, n_jobs=None, n_classes=None, n_train=None):
    """The value of each placeholder in a build with these arguments."""
    return {SEED: seed, N_JOBS: n_jobs, N_CLUSTERS: n_classes or 10, N_TRAIN: n_train}


def resolved(params, runtime):
    """`params` with each placeholder replaced by its value in `runtime`."""
    return {name: _resolved_value(value, runtime) for name, value in params.items()}


def _resolved_value(value, runtime):
    if isinstance(value, Runtime):
        return runtime[value]
    if isinstance(value, EpochBudget):
        return value.epochs(runtime[N_TRAIN])
    return value


def load(path):
    """The class (or function) at ``"module:Name"``, imported now."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def instantiate(path, params, runtime):
    """A new instance of the class at `path` with `params`, placeholders resolved."""
    return load(path)(**resolved(params, runtime))


@dataclass(frozen=True)
class Tuner:
    """How a row's search space is searched.

    Attributes
    ----------
    estimator_class : str
        ``"module:Class"`` of the search, called as ``Class(model, space, cv=..., **params)``.
    params : mapping
        Its fixed parameters, placeholders allowed.
    profiles : mapping
        Per profile: ``cv`` (the number of folds), ``search_limit`` (the folds are drawn
        from at most this many training images and the best candidate is refitted on all
        of them, see :class:`search.SubsetKFold`; None: all) and any further parameters
        of the search.
    shared : bool, default=True
        Whether the search tunes the model's shared-work twin (:func:`search.structured`),
        which computes once what equivalent candidates have in common.
    """

    estimator_class: str
    params: Mapping
    profiles: Mapping
    shared: bool = True

    def search(self, model, space, profile, runtime):
        """A search over `space` for `model`, with this tuner's settings of `profile`."""
        from search import SubsetKFold, structured

        settings = dict(self.profiles[profile])
        cv = SubsetKFold(settings.pop("cv"), max_samples=settings.pop("search_limit"),
                         random_state=runtime[SEED])
        return load(self.estimator_class)(
            structured(model) if self.shared else model, copy.deepcopy(space), cv=cv,
            **resolved(self.params, runtime), **settings,
        )


@dataclass(frozen=True)
class Method:
    """A registered method: one row of data, and the estimator it builds under each profile.

    Attributes
    ----------
    name : str
        Registry name, as given to ``--methods``.
    description : str
        One line for ``python -m benchmark list``.
    estimator_class : str
        ``"module:Class"`` of the estimator the row fits (inside its `pipeline`, and
        inside its `tuner`'s search when it has one).
    table : str
        Which table of the report the records belong to.
    profiles : dict
        Settings per profile, every profile of `PROFILES` written out. ``train_limit`` (a
        number of training images, drawn seeded and stratified) is read by the harness;
        every other setting is a parameter of the estimator.
    params : mapping, default={}
        Fixed parameters of the estimator, placeholders (`SEED`, `N_JOBS`, `N_CLUSTERS`)
        allowed.
    reference : str or None, default=None
        Key of the study's figures for this method, if the study reported any.
    supervised : bool, default=True
        Whether fitting needs labels.
    pipeline : {None, "pixels", "learned-features", "linear-probe", "backbone"}, default=None
        What the estimator is wrapped in: nothing (it takes the images), scaled and
        flattened pixels reduced by PCA(99%), the activations of `layer` of the borrowed
        network reduced by PCA(99%), or a linear probe of `layer` of the borrowed network
        (the estimator is its classifier); "backbone": nothing, the estimator takes the
        borrowed network as its ``backbone`` parameter.
    borrows : str or None, default=None
        Name of the row whose network this row reads. The row builds that row's network
        under the same profile and seed; a run trains it once and lends it (see
        :func:`benchmark.registry.in_borrowing_order`).
    layer : str or None, default=None
        The borrowed network's layer that the row reads; None: its penultimate features
        (a contrastive encoder's representation).
    search_space : mapping or None, default=None
        Per profile, the parameters of the estimator that `tuner` searches and their values.
    tuner : Tuner or None, default=None
        The search that tunes the estimator over `search_space`.
    """

    name: str
    description: str
    estimator_class: str
    table: str
    profiles: dict
    params: Mapping = field(default_factory=dict)
    reference: str | None = None
    supervised: bool = True
    pipeline: str | None = None
    borrows: str | None = None
    layer: str | None = None
    search_space: Mapping | None = None
    tuner: Tuner | None = None

    def __post_init__(self):
        for kind, profiles in (("settings", self.profiles), ("search_space", self.search_space),
                               ("tuner", self.tuner and self.tuner.profiles)):
            missing = [profile for profile in PROFILES if profiles is not None
                       and profile not in profiles]
            if missing:
                raise ValueError(f"{self.name}: {kind} misses profiles {missing}.")
        if (self.search_space is None) != (self.tuner is None):
            raise ValueError(f"{self.name}: a search_space goes with a tuner.")
        if self.pipeline is not None and self.pipeline not in PIPELINES:
            raise ValueError(f"{self.name}: unknown pipeline {self.pipeline!r}; valid: "
                             f"{', '.join(PIPELINES)}.")
        if (self.borrows is None) != (self.pipeline not in NETWORK_READERS):
            raise ValueError(f"{self.name}: pipelines {NETWORK_READERS} read the network of "
                             "the row named by borrows, and only they do.")
        # Each row owns its settings: changing one row's leaves every other row's as it is.
        object.__setattr__(self, "profiles", {profile: dict(settings)
                                              for profile, settings in self.profiles.items()})

    def settings(self, profile):
        """All settings of ``profile``."""
        if profile not in self.profiles:
            raise UnknownNameError(unknown_name_message("profile", profile, list(self.profiles)))
        return dict(self.profiles[profile])

    def train_limit(self, profile):
        """Largest training set the method trains on under ``profile`` (None: all of it)."""
        return self.settings(profile).get("train_limit")

    def estimator(self, profile, *, seed=0, n_jobs=None, n_classes=None, n_train=None):
        """A new, unfitted estimator with the settings of ``profile`` (see `build`)."""
        return build(self, profile, seed=seed, n_jobs=n_jobs, n_classes=n_classes,
                     n_train=n_train)


def build(method, profile, *, seed=0, n_jobs=None, n_classes=None, n_train=None):
    """The estimator that row `method` runs under `profile`: new, unfitted, nothing trained.

    The estimator of ``method.estimator_class`` takes the row's fixed parameters and the
    profile's settings (harness settings aside); a row with a tuner searches it, each
    candidate on one core; the row's pipeline wraps the result.

    Parameters
    ----------
    method : Method
        The row.
    profile : str
        One of `PROFILES`.
    seed : int, default=0
        Resolves `SEED`.
    n_jobs : int, default=None
        Resolves `N_JOBS`.
    n_classes : int, default=None
        Resolves `N_CLUSTERS` (10 where None).
    n_train : int, default=None
        Images the estimator will train on: resolves each `EpochBudget` (None: its most
        epochs).

    Returns
    -------
    estimator : estimator instance
    """
    settings = method.settings(profile)
    for name in HARNESS_SETTINGS:
        settings.pop(name, None)
    runtime = runtime_values(seed=seed, n_jobs=n_jobs, n_classes=n_classes, n_train=n_train)
    searched = method.tuner is not None
    model = load(method.estimator_class)(
        **resolved(method.params, {**runtime, N_JOBS: None} if searched else runtime),
        **resolved(settings, runtime),
    )
    if searched:
        model = method.tuner.search(model, method.search_space[profile], profile, runtime)
    if method.pipeline is None:
        return model
    backbone = (borrowed_network(method, profile, seed=seed, n_jobs=n_jobs, n_classes=n_classes,
                                 n_train=n_train)
                if method.borrows else None)
    return PIPELINES[method.pipeline](model, backbone=backbone, layer=method.layer, seed=seed)


def borrowed_network(method, profile, *, seed=0, n_jobs=None, n_classes=None, n_train=None):
    """The unfitted network of the row that `method` borrows, as `method` trains it.

    It learns from as many images as in its own row: where `method` trains on another
    number of images (every labelled one, say), the network draws its row's limit of
    them (``max_samples``).
    """
    from ..registry import get_methods  # the registry gathers the rows of every family

    (lender,) = get_methods([method.borrows])
    limit = lender.train_limit(profile)
    if limit is not None and n_train is not None:
        n_train = min(n_train, limit)
    network = lender.estimator(profile, seed=seed, n_jobs=n_jobs, n_classes=n_classes,
                               n_train=n_train)
    if limit is not None and limit != method.train_limit(profile):
        network.set_params(max_samples=limit)
    return network


# --------------------------------------------------------------------------- pipelines


def classical_pipeline(model, *, seed=0):
    """Scale -> flatten -> PCA keeping 99% of the variance -> ``model``."""
    from sklearn.pipeline import Pipeline

    return Pipeline([
        ("flatten", features.ImageFlattener()),
        ("pca", features.make_pca(variance=0.99, random_state=seed)),
        ("model", model),
    ])


def learned_features_pipeline(backbone, model, *, layer, seed=0):
    """Images -> activations of `layer` of `backbone` -> PCA keeping 99% -> ``model``."""
    from sklearn.pipeline import Pipeline

    return Pipeline([
        ("features", features.DeepFeatures(backbone, layer)),
        ("pca", features.make_pca(variance=0.99, random_state=seed)),
        ("model", model),
    ])


def _on_pixels(model, *, backbone, layer, seed):
    return classical_pipeline(model, seed=seed)


def _on_learned_features(model, *, backbone, layer, seed):
    return learned_features_pipeline(backbone, model, layer=layer, seed=seed)


def _linear_probe(model, *, backbone, layer, seed):
    return estimators.LinearProbe(backbone, layer, classifier=model)


def _on_backbone(model, *, backbone, layer, seed):
    return model.set_params(backbone=backbone)


PIPELINES = {
    "pixels": _on_pixels,
    "learned-features": _on_learned_features,
    "linear-probe": _linear_probe,
    "backbone": _on_backbone,
}
# The pipelines that read a borrowed network.
NETWORK_READERS = ("learned-features", "linear-probe", "backbone")
