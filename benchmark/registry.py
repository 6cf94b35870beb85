"""The method registry: each name maps to an estimator factory and its profile settings.

Profiles are data here, never branches in estimator code: ``smoke`` runs in seconds for
tests, ``quick`` fits a 2-core CPU in minutes, ``paper`` is the study's settings.
"""

import difflib
from dataclasses import dataclass, field
from types import MappingProxyType

from sklearn.cluster import KMeans
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from features import ImageFlattener, make_pca

PROFILES = MappingProxyType({
    "smoke": "seconds, for tests",
    "quick": "minutes on a 2-core CPU",
    "paper": "the study's settings",
})
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


@dataclass(frozen=True)
class Method:
    """A registered method: how to build its estimator under each profile.

    Attributes
    ----------
    name : str
        Registry name, as given to ``--methods``.
    description : str
        One line for ``python -m benchmark list``.
    build : callable
        ``build(seed=, n_jobs=, n_classes=, **settings)`` returning an unfitted estimator.
    profiles : mapping
        Settings per profile. ``train_limit`` (a number of training images, drawn seeded and
        stratified) is read by the harness; every other setting goes to ``build``.
    table : str
        Which table of the report the records belong to.
    reference : str or None
        Key of the study's figures for this method, if the study reported any.
    supervised : bool
        Whether fitting needs labels.
    """

    name: str
    description: str
    build: object
    table: str
    profiles: dict = field(default_factory=lambda: {p: {} for p in PROFILES})
    reference: str | None = None
    supervised: bool = True

    def settings(self, profile):
        """All settings of ``profile``."""
        if profile not in self.profiles:
            raise UnknownNameError(unknown_name_message("profile", profile, list(self.profiles)))
        return dict(self.profiles[profile])

    def train_limit(self, profile):
        """Largest training set the method trains on under ``profile`` (None: all of it)."""
        return self.settings(profile).get("train_limit")

    def estimator(self, profile, *, seed=0, n_jobs=None, n_classes=None):
        """A new, unfitted estimator with the settings of ``profile``."""
        settings = self.settings(profile)
        for name in HARNESS_SETTINGS:
            settings.pop(name, None)
        return self.build(seed=seed, n_jobs=n_jobs, n_classes=n_classes, **settings)


METHODS = {}


def register(method):
    """Add a method to the registry; a name can be registered once."""
    if method.name in METHODS:
        raise ValueError(f"Method {method.name!r} is already registered.")
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


# --------------------------------------------------------------------------- classical


def classical_pipeline(model, *, seed=0):
    """Scale -> flatten -> PCA keeping 99% of the variance -> ``model``."""
    return Pipeline([
        ("flatten", ImageFlattener()),
        ("pca", make_pca(variance=0.99, random_state=seed)),
        ("model", model),
    ])


def _random_forest(*, seed, n_jobs, n_classes):
    return classical_pipeline(RandomForestClassifier(random_state=seed, n_jobs=n_jobs), seed=seed)


def _knn(*, seed, n_jobs, n_classes):
    return classical_pipeline(KNeighborsClassifier(n_jobs=n_jobs), seed=seed)


def _logistic_regression(*, seed, n_jobs, n_classes):
    return classical_pipeline(LogisticRegression(random_state=seed), seed=seed)


def _svm(*, seed, n_jobs, n_classes):
    return classical_pipeline(SVC(random_state=seed), seed=seed)


def _kmeans(*, seed, n_jobs, n_classes, n_init=1):
    kmeans = KMeans(n_clusters=n_classes or 10, n_init=n_init, random_state=seed)
    return classical_pipeline(kmeans, seed=seed)


register(Method("rf", "Random forest, default parameters, on PCA(99%) pixels",
                _random_forest, "classical", reference="rf"))
register(Method("knn", "k-nearest neighbours, default parameters, on PCA(99%) pixels",
                _knn, "classical", reference="knn"))
register(Method("logreg", "Logistic regression (lbfgs), default parameters, on PCA(99%) pixels",
                _logistic_regression, "classical", reference="logreg"))
register(Method(
    "svm", "RBF support vector machine, default parameters, on PCA(99%) pixels",
    _svm, "classical", reference="svm",
    # an RBF SVM's fit grows with the square of the training set
    profiles={"smoke": {"train_limit": 500}, "quick": {"train_limit": 10_000}, "paper": {}},
))
register(Method(
    "kmeans", "k-means on PCA(99%) pixels, K = number of classes (10 when unlabelled)",
    _kmeans, "clustering", supervised=False,
    profiles={"smoke": {}, "quick": {"n_init": 3}, "paper": {"n_init": 10}},
))
