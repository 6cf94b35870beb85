"""The method registry: each name maps to an estimator factory and its profile settings.

Profiles are data here, never branches in estimator code: ``smoke`` runs in seconds for
tests, ``quick`` fits a 2-core CPU in minutes, ``paper`` is the study's settings.
"""

import difflib
import importlib
from dataclasses import dataclass, field
from types import MappingProxyType

# scikit-learn, search and torch are imported when a row is built, not here: listing the
# methods then takes a fraction of a second.
import estimators
import features

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
    from sklearn.pipeline import Pipeline

    return Pipeline([
        ("flatten", features.ImageFlattener()),
        ("pca", features.make_pca(variance=0.99, random_state=seed)),
        ("model", model),
    ])


def _model_factory(path, *, seeded=True, parallel=False):
    """``make(seed, n_jobs)``: a new model of the class at ``module:Class``.

    `seeded` models take ``random_state=seed``, `parallel` ones ``n_jobs``.
    """
    module, name = path.split(":")

    def make(seed, n_jobs):
        model_class = getattr(importlib.import_module(module), name)
        return model_class(**({"random_state": seed} if seeded else {}),
                           **({"n_jobs": n_jobs} if parallel else {}))

    return make


CLASSICAL_MODELS = {
    "rf": ("Random forest",
           _model_factory("sklearn.ensemble:RandomForestClassifier", parallel=True)),
    "knn": ("k-nearest neighbours", _model_factory(
        "sklearn.neighbors:KNeighborsClassifier", seeded=False, parallel=True)),
    "logreg": ("Logistic regression (lbfgs)",
               _model_factory("sklearn.linear_model:LogisticRegression")),
    "svm": ("RBF support vector machine", _model_factory("sklearn.svm:SVC")),
}
# An RBF SVM's fit grows with the square of the training set.
SVM_TRAIN_LIMITS = {"smoke": 500, "quick": 10_000}
# `search_limit`: the folds are drawn from at most this many training images, and the best
# candidate is refitted on all of them (search.SubsetKFold).
SEARCH_SETTINGS = {
    "smoke": {"space": "smoke", "cv": 2, "search_limit": None, "population_size": 4,
              "generations": 3},
    "quick": {"space": "quick", "cv": 3, "search_limit": 10_000, "population_size": 8,
              "generations": 10},
    "paper": {"space": "paper", "cv": 5, "search_limit": None, "population_size": 20,
              "generations": 30},
}


def _default_model(name):
    def build(*, seed, n_jobs, n_classes):
        return classical_pipeline(CLASSICAL_MODELS[name][1](seed, n_jobs), seed=seed)

    return build


def tuned_search(name, tuner, *, seed, n_jobs, space, cv, search_limit, population_size,
                 generations):
    """A search over the space of classical model `name`, by grid ("grid") or GA ("ga")."""
    from sklearn.model_selection import GridSearchCV

    from search import GASearchCV, SubsetKFold, search_space, structured

    # candidates run in parallel, so each model fits on one core
    model = structured(CLASSICAL_MODELS[name][1](seed, None))
    grid = search_space(name, space)
    cv = SubsetKFold(cv, max_samples=search_limit, random_state=seed)
    if tuner == "grid":
        return GridSearchCV(model, grid, cv=cv, n_jobs=n_jobs)
    return GASearchCV(model, grid, cv=cv, n_jobs=n_jobs, random_state=seed,
                      population_size=population_size, generations=generations)


def _tuned_model(name, tuner):
    def build(*, seed, n_jobs, n_classes, **search_settings):
        search = tuned_search(name, tuner, seed=seed, n_jobs=n_jobs, **search_settings)
        # The study's pipeline: PCA is fitted once, on every training image, and the search
        # tunes the model on its output. The validation folds took part in that PCA, so
        # cv_score is a little optimistic; the test images never did.
        return classical_pipeline(search, seed=seed)

    return build


def _with_train_limit(name, settings):
    return {
        profile: {**values, "train_limit": SVM_TRAIN_LIMITS[profile]}
        if name == "svm" and profile in SVM_TRAIN_LIMITS else dict(values)
        for profile, values in settings.items()
    }


def _kmeans_clusterer(*, seed, n_classes, n_init):
    """k-means with one cluster per class (10 when the data has no labels)."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=n_classes or 10, n_init=n_init, random_state=seed)


def _kmeans(*, seed, n_jobs, n_classes, n_init=1):
    return classical_pipeline(_kmeans_clusterer(seed=seed, n_classes=n_classes, n_init=n_init),
                              seed=seed)


for _name, (_title, _) in CLASSICAL_MODELS.items():
    register(Method(
        _name, f"{_title}, default parameters, on PCA(99%) pixels", _default_model(_name),
        "classical",
        profiles=_with_train_limit(_name, {profile: {} for profile in PROFILES}),
    ))
for _tuner, _how in (("grid", "exhaustive grid search"), ("ga", "genetic search (DEAP)")):
    for _name, (_title, _) in CLASSICAL_MODELS.items():
        register(Method(
            f"{_name}-{_tuner}", f"{_title} tuned by {_how} on the study's grid",
            _tuned_model(_name, _tuner), "classical", reference=_name,
            profiles=_with_train_limit(_name, SEARCH_SETTINGS),
        ))
# --------------------------------------------------------------------------- supervised CNNs

CNN_ARCHITECTURES = {
    "fast": ("fast", "a small fast CIFAR network in the spirit of airbench", {}),
    "alexnet": ("alexnet", "AlexNet adapted to small images, input enlarged 2x (32x32 to 64x64)",
                {"upsample": 2}),
    "resnet18": ("resnet18", "ResNet18 with a 3x3 stem for small images", {}),
    "vgg16bn": ("vgg16_bn", "VGG16 with batch norm, for small images", {}),
}
# The study's optimiser settings (SPEC section 3), shared by every deep method's paper profile.
PAPER_TRAINING = {
    "optimizer": "sgd", "momentum": 0.9, "batch_size": 256, "weight_decay": 1e-4,
    "module__dropout": 0.5, "lr": 1e-4, "epochs": 500, "lr_schedule": "step",
    "lr_milestones": [400], "lr_gamma": 0.1, "label_smoothing": 0.0, "tta_flip": False,
}
# airbench's light augmentation (flips, mild crops, no colour jitter): with only ten epochs,
# the study's stronger policy costs 7 points of CIFAR-10 accuracy (0.63 vs 0.70, 5 epochs
# on 10,000 images).
LIGHT_AUGMENTATION = {
    "augment__brightness": None, "augment__contrast": None, "augment__saturation": None,
    "augment__hue": None, "augment__crop_scale": (0.6, 1.0),
}
CNN_PROFILES = {
    "fast": {
        "smoke": {"epochs": 1, "batch_size": 64, "module__widths": (16, 32, 32),
                  "train_limit": 256},
        "quick": {"epochs": 10, "optimizer__nesterov": True, **LIGHT_AUGMENTATION},
        "paper": PAPER_TRAINING,
    },
    **{name: {
        "smoke": {"epochs": 1, "batch_size": 32, "train_limit": 64},
        # a few epochs on 10,000 images: what a 2-core CPU trains in about 20 minutes
        "quick": {"epochs": 4, "train_limit": 10_000, "lr": 0.05},
        "paper": PAPER_TRAINING,
    } for name in ("alexnet", "resnet18", "vgg16bn")},
}


def _cnn(arch, fixed):
    def build(*, seed, n_jobs, n_classes, **settings):
        return estimators.TorchCNNClassifier(arch, random_state=seed, **fixed, **settings)

    return build


for _name, (_arch, _title, _fixed) in CNN_ARCHITECTURES.items():
    register(Method(
        f"cnn-{_name}", f"{_title[0].upper()}{_title[1:]}, trained with labels (softmax "
        "cross-entropy)",
        _cnn(_arch, _fixed), "cnn", reference=f"cnn-{_name}", profiles=CNN_PROFILES[_name],
    ))

# --------------------------------------------------------------------------- clustering

# DeepCluster's own published settings; the study's lr of 1e-4 cannot train a head that is
# re-initialised every epoch.
DEEPCLUSTER_PAPER = {
    "optimizer": "sgd", "momentum": 0.9, "batch_size": 256, "weight_decay": 1e-5, "lr": 0.05,
    "lr_schedule": "constant", "epochs": 200, "module__dropout": 0.5, "pca_dim": 256,
    "label_smoothing": 0.0,
}
DEEPCLUSTER_PROFILES = {
    name: {**profiles, "paper": DEEPCLUSTER_PAPER} for name, profiles in CNN_PROFILES.items()
}


# The study's settings without test-time flips, which only the supervised CNN takes.
UIC_PAPER = {name: value for name, value in PAPER_TRAINING.items() if name != "tta_flip"}
UIC_PROFILES = {
    "fast": {
        "smoke": {"epochs": 1, "batch_size": 64, "module__widths": (16, 32, 32),
                  "train_limit": 256},
        # without the balanced sampler a few clusters swallow the rest (NMI 0.50 on digits)
        "quick": {"epochs": 50, "balanced_sampler": True, "module__widths": (32, 64, 64),
                  "train_limit": 10_000},
        "paper": UIC_PAPER,
    },
    **{name: {
        "smoke": {"epochs": 1, "batch_size": 32, "train_limit": 64},
        "quick": {"epochs": 4, "train_limit": 10_000, "lr": 0.05, "balanced_sampler": True},
        "paper": UIC_PAPER,
    } for name in ("alexnet", "resnet18", "vgg16bn")},
}
# Layers the study probed (SPEC section 6), and the fast network's middle stage.
PROBE_LAYERS = {
    "fast": ("stage2",),
    "alexnet": ("conv3", "conv5"),
    "resnet18": ("block3", "block5"),
    "vgg16bn": ("conv",),
}


def _torch_clusterer(class_name, arch, fixed, input):
    def build(*, seed, n_jobs, n_classes, **settings):
        estimator_class = getattr(estimators, class_name)
        return estimator_class(arch, n_clusters=n_classes or 10, input=input,
                               random_state=seed, **fixed, **settings)

    return build


# Strengths of a probe's L2 penalty, chosen by cross-validation as a tuned row's parameters
# are: with C=1 alone, probes trained on 50,000 CIFAR-10 images reached 0.92-0.98 train top-1
# for 0.59-0.60 test top-1.
PROBE_PENALTIES = {"C": [1e-4, 1e-3, 1e-2, 0.1, 1]}


def _probe(arch, fixed, input, layer):
    backbone = _torch_clusterer("TorchPseudoLabelClassifier", arch, fixed, input)

    def build(*, seed, n_jobs, n_classes, search, **settings):
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV

        from search import SubsetKFold

        network = backbone(seed=seed, n_jobs=n_jobs, n_classes=n_classes, **settings)
        cv = SubsetKFold(search["cv"], max_samples=search["search_limit"], random_state=seed)
        penalty = GridSearchCV(LogisticRegression(max_iter=1000), PROBE_PENALTIES, cv=cv,
                               n_jobs=n_jobs)
        return estimators.LinearProbe(network, layer, classifier=penalty)

    return build


# --------------------------------------------------------------------------- learned features

# Whose features the classical models and k-means read: a network trained without labels,
# end to end on its own pseudo-labels (a uic row), at its probed layer. Sobel input: the fast
# network clusters better and its linear probe scores higher from it than from colour
# (results/cifar10-jpeg-quick/).
LEARNED_FEATURES = {"arch": "fast", "input": "sobel", "layer": "stage2"}


def learned_features_pipeline(backbone, model, *, layer, seed=0):
    """Images -> activations of `layer` of `backbone` -> PCA keeping 99% -> ``model``."""
    from sklearn.pipeline import Pipeline

    return Pipeline([
        ("features", features.DeepFeatures(backbone, layer)),
        ("pca", features.make_pca(variance=0.99, random_state=seed)),
        ("model", model),
    ])


def _on_learned_features(make_model):
    """Builder of `make_model`'s model on learned features; other settings go to the backbone.

    ``make_model(seed=, n_jobs=, n_classes=, search=)`` returns the final step.
    """
    arch, _, fixed = CNN_ARCHITECTURES[LEARNED_FEATURES["arch"]]
    backbone = _torch_clusterer("TorchPseudoLabelClassifier", arch, fixed,
                                LEARNED_FEATURES["input"])

    def build(*, seed, n_jobs, n_classes, search=None, **backbone_settings):
        network = backbone(seed=seed, n_jobs=n_jobs, n_classes=n_classes, **backbone_settings)
        model = make_model(seed=seed, n_jobs=n_jobs, n_classes=n_classes, search=search)
        return learned_features_pipeline(network, model, layer=LEARNED_FEATURES["layer"],
                                         seed=seed)

    return build


def _default(name):
    def make(*, seed, n_jobs, n_classes, search):
        return CLASSICAL_MODELS[name][1](seed, n_jobs)

    return make


def _grid_tuned(name):
    def make(*, seed, n_jobs, n_classes, search):
        return tuned_search(name, "grid", seed=seed, n_jobs=n_jobs, **search)

    return make


def _kmeans_model(*, seed, n_jobs, n_classes, search):
    return _kmeans_clusterer(seed=seed, n_classes=n_classes, n_init=3)


def _register_learned_feature_rows():
    """Classical models, default and grid-tuned, and k-means, on learned features.

    Called right after the backbone's own rows are registered, so that a run lends the
    SVM rows the network it has just trained; the other rows share the one network the
    first of them trains (see :func:`_learned_profiles`).
    """
    backbone_row = f"uic-{LEARNED_FEATURES['arch']}-{LEARNED_FEATURES['input']}"
    source = f"{LEARNED_FEATURES['layer']} features of {backbone_row} (learned without labels)"
    for name, (title, _) in CLASSICAL_MODELS.items():
        profiles = _learned_profiles(name)
        tuned_profiles = _with_search_settings(profiles)
        register(Method(
            f"learned-{name}", f"{title}, default parameters, on {source}",
            _on_learned_features(_default(name)), "learned", profiles=profiles,
        ))
        register(Method(
            f"learned-{name}-grid", f"{title} tuned by exhaustive grid search, on {source}",
            _on_learned_features(_grid_tuned(name)), "learned", profiles=tuned_profiles,
        ))
    register(Method(
        "learned-kmeans", f"k-means on {source}, K = number of classes",
        _on_learned_features(_kmeans_model), "clustering", supervised=False,
        profiles=_learned_profiles("kmeans"),
    ))


def _learned_profiles(name):
    """Profiles of a learned-feature row whose final step is model `name`.

    The network learns from as many images as its uic row (its ``train_limit`` becomes the
    network's ``max_samples``), and the model on top from as many as the same model on
    pixels: all of them, except for an SVM, which keeps its uic row's training set (its
    limit on pixels is no smaller) and so borrows that row's network.
    """
    profiles = UIC_PROFILES[LEARNED_FEATURES["arch"]]
    return profiles if name == "svm" else _limits_as_max_samples(profiles)


def _with_search_settings(profiles):
    """`profiles` with each profile's ``search`` settings (see `SEARCH_SETTINGS`)."""
    return {profile: {**settings, "search": SEARCH_SETTINGS[profile]}
            for profile, settings in profiles.items()}


def _limits_as_max_samples(profiles):
    """`profiles` with each ``train_limit`` turned into the network's ``max_samples``.

    The network then learns without labels from as many images as before, and what is
    trained on top of it with labels sees every training image.
    """
    converted = {}
    for profile, settings in profiles.items():
        settings = dict(settings)
        limit = settings.pop("train_limit", None)
        converted[profile] = settings if limit is None else {**settings, "max_samples": limit}
    return converted


for _name, (_arch, _title, _fixed) in CNN_ARCHITECTURES.items():
    for _input in ("rgb", "sobel"):
        _uic = f"uic-{_name}-{_input}"
        register(Method(
            _uic, f"End-to-end pseudo-labels (Chen et al. 2020) on {_title}, {_input} input",
            _torch_clusterer("TorchPseudoLabelClassifier", _arch, _fixed, _input), "clustering",
            supervised=False, reference=_uic, profiles=UIC_PROFILES[_name],
        ))
        for _layer in PROBE_LAYERS[_name]:
            _probe_name = f"probe-{_name}-{_input}-{_layer}"
            register(Method(
                _probe_name, f"Linear probe on {_layer} of {_uic}, trained without labels",
                _probe(_arch, _fixed, _input, _layer), "probe", reference=_probe_name,
                profiles=_with_search_settings(_limits_as_max_samples(UIC_PROFILES[_name])),
            ))
        if (_name, _input) == (LEARNED_FEATURES["arch"], LEARNED_FEATURES["input"]):
            _register_learned_feature_rows()


for _name, (_arch, _title, _fixed) in CNN_ARCHITECTURES.items():
    for _input in ("rgb", "sobel"):
        register(Method(
            f"deepcluster-{_name}-{_input}",
            f"DeepCluster (k-means pseudo-labels) on {_title}, {_input} input",
            _torch_clusterer("DeepClusterClassifier", _arch, _fixed, _input), "deepcluster",
            supervised=False,
            reference="deepercluster" if _name == "vgg16bn" else None,
            profiles=DEEPCLUSTER_PROFILES[_name],
        ))

register(Method(
    "kmeans", "k-means on PCA(99%) pixels, K = number of classes (10 when unlabelled)",
    _kmeans, "clustering", supervised=False,
    profiles={"smoke": {}, "quick": {"n_init": 3}, "paper": {"n_init": 10}},
))
