"""The harness: the only place that fits, times, scores and records a method."""

import copy
import functools
import hashlib
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from sklearn.base import is_clusterer
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from sklearn.pipeline import Pipeline

from estimators import cluster_sizes, clustering_scores
from estimators.neighbours import mine_neighbours, neighbour_accuracy, weighted_knn_accuracy
from estimators.training import training_params
from features.deep import learns_without_labels
from results.schema import checked_record
from search import clear_cache, count_fits

from .datasets import DataError, subsample

# Most training images a supervised row's train accuracy, and an encoder's neighbour
# accuracy, are measured on.
TRAIN_SCORE_LIMIT = 10_000
# Neighbours per image of an encoder's neighbour accuracy: SCAN's mining.
N_NEIGHBOURS_SCORED = 20
# Fitted attributes worth keeping in a record, and the fields (results.schema) they fill.
FITTED_SUMMARY = {
    "n_components_": "pca_components",
    "best_params_": "best_params",
    "best_score_": "cv_score",
    "stop_reason_": "stop_reason",
}


def run_method(method, dataset, *, profile, seed=0, n_jobs=None, checkpoint_dir=None,
               fitted_backbones=None, monitor=False):
    """Fit one method on a dataset's training part and score it on both parts.

    Parameters
    ----------
    method : benchmark.registry.Method
        What to run.
    dataset : benchmark.datasets.Dataset
        Where to run it.
    profile : str
        Settings profile of the method.
    seed : int, default=0
        Seed of the estimator and of any training subset.
    n_jobs : int, default=None
        Parallel jobs for estimators that take them.
    checkpoint_dir : path, default=None
        Where estimators that checkpoint their training save it, and resume it from.
    fitted_backbones : BackboneCache, default=None
        Torch estimators fitted by earlier rows of a run. A probe or learned-features row
        whose ``backbone`` would train exactly as one of them (same class, parameters and
        training images) uses it instead of training it again; a row whose training begins
        with the whole of one of theirs (SCAN with self-labelling after SCAN) goes on from
        it. The row then records ``backbone_reused``.
    monitor : bool, default=False
        Give every part of the estimator that takes an ``eval_set`` the test images and
        labels, which it scores after every epoch (``eval_nmi`` and the like in the
        record's history) and never trains on.

    Returns
    -------
    record : dict
        Key fields (method, dataset, profile, seed), what was run, timings and scores: the
        fields of :data:`results.schema.FIELDS`.
    """
    check_runnable(method, dataset)
    train = training_part(dataset, method.train_limit(profile), seed)
    estimator = method.estimator(profile, seed=seed, n_jobs=n_jobs, n_classes=dataset.n_classes,
                                 n_train=len(train.X_train))
    if checkpoint_dir is not None:
        _route_checkpoints(estimator, checkpoint_dir)
    record = {
        "method": method.name, "dataset": dataset.name, "profile": profile, "seed": seed,
        "dataset_digest": dataset.digest, "dataset_source": dataset.source,
        "table": method.table, "reference": method.reference,
        "n_train": len(train.X_train),
        "n_test": 0 if dataset.X_test is None else len(dataset.X_test),
        "estimator": repr(estimator),
        "environment": environment(),
    }
    if monitor and dataset.X_test is not None:
        _monitor_test_images(estimator, dataset)
    lent, continued = [], False
    if fitted_backbones is not None:
        lent = fitted_backbones.lend(estimator, train.X_train)
        estimator, continued = fitted_backbones.continued(estimator, train.X_train)
    if lent or continued:
        record["backbone_reused"] = True
    fit_args = (train.X_train, train.y_train) if method.supervised else (train.X_train,)
    fit_seconds, shared = timed_fit(estimator, *fit_args)
    # a resumed or continued network's earlier epochs were timed when they ran, by its
    # history; a lent network was not trained by this row at all
    resumed_epochs, resumed_seconds = resumed_training(estimator, lent=lent)
    record["fit_time"] = fit_seconds + resumed_seconds
    if resumed_epochs:
        record["resumed_epochs"] = resumed_epochs
    if shared.requested:
        # counts cover this process: all of a search's fits under the threads backend
        record.update(fits_computed=shared.computed, fits_saved=shared.saved)
    if shared.trees_requested:
        record.update(trees_requested=shared.trees_requested, trees_grown=shared.trees_grown)
    if fitted_backbones is not None:
        fitted_backbones.keep(estimator, train.X_train)
    if is_clusterer(estimator):
        record.update(clustering_record(estimator, train, dataset))
    elif is_encoder(estimator):
        record.update(encoder_record(estimator, train, dataset, seed=seed))
    else:
        record.update(supervised_record(estimator, train, dataset, seed=seed))
    record.update(fitted_summary(estimator))
    return checked_record(record)


def check_runnable(method, dataset):
    """Refuse a method that cannot learn from a dataset.

    Raises
    ------
    DataError
        If `method` is supervised and `dataset` has no labels, or one class only.
    """
    if not method.supervised:
        return
    if not dataset.labelled:
        raise DataError(
            f"{method.name} is supervised and needs labels, but {dataset.name} is a folder of "
            "images without class sub-folders. Run a clustering method on it instead."
        )
    if dataset.n_classes < 2:
        raise DataError(f"{method.name} is supervised and needs at least 2 classes, but "
                        f"{dataset.name} has one ({dataset.classes[0]!r}).")


def environment():
    """Machine, versions and commit a record was made with, so a figure can be traced back.

    Returns
    -------
    environment : dict
        ``cpu`` (model name), ``cpus`` (logical cores), ``torch_threads`` (torch's
        intra-op threads: a network's figures depend on them, as its kernels split sums
        by thread), ``cpu_capability`` (the vector instruction set torch's kernels use),
        ``cpu_bfloat16`` (whether the CPU computes bfloat16 natively: AMX or
        AVX512_BF16), ``accelerator`` (GPU name or None),
        ``python`` and package versions, and ``commit`` (the toolkit's git commit, with
        ``+changes`` when its files differ from it; None outside a git checkout).
    """
    import torch  # loaded only when a row is recorded

    from estimators.training import has_native_bfloat16

    packages = ("unlabelled-image-benchmark", "scikit-learn", "numpy", "torch")
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bfloat16": has_native_bfloat16(torch.device("cpu")),
        "accelerator": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        **{name: _installed_version(name) for name in packages},
        "commit": source_commit(),
    }


@functools.cache
def cpu_model():
    """The CPU's model name, as the operating system reports it."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_commit():
    """The git commit of the toolkit's code, ``+changes`` appended if files differ from it.

    Returns
    -------
    commit : str or None
        None where the toolkit is not a git checkout (an installed wheel) or git is missing.
    """
    root = Path(__file__).resolve().parent.parent

    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+changes" if changed else commit


def _installed_version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


class BackboneCache:
    """The last few torch networks a run fitted without labels, lent to the rows that would
    train them again.

    Training is seeded, so a backbone with the same class, parameters (checkpoint folders
    aside) and training images trains to the same network: lending the fitted one changes
    no result and saves its whole training.

    Parameters
    ----------
    size : int, default=2
        How many fitted estimators to keep; a run puts each row that borrows a network
        right after the row it borrows from (`benchmark.registry.in_borrowing_order`).
    """

    def __init__(self, size=2):
        self.size = size
        self._fitted = {}

    def keep(self, estimator, X):
        """Remember the torch networks fitted on `X` without labels: `estimator`, or its
        fitted backbones.

        A backbone (a ``backbone`` parameter, nested ones too) is kept under its unfitted
        parameters, so that :meth:`lend` finds it for the next row that would train it.
        """
        fitted = [(estimator, estimator)]
        params = estimator.get_params(deep=True)
        for name, template in params.items():
            if name == "backbone" or name.endswith("__backbone"):
                owner = params[name.removesuffix("__backbone")] if "__" in name else estimator
                fitted.append((template, getattr(owner, "backbone_", None)))
        for template, network in fitted:
            if hasattr(network, "module_") and learns_without_labels(network):
                key = self._key(template, X)
                # the most recently used network is the last one evicted
                self._fitted.pop(key, None)
                self._fitted[key] = network
        while len(self._fitted) > self.size:
            del self._fitted[next(iter(self._fitted))]

    def lend(self, estimator, X):
        """Give each ``backbone`` of ``estimator`` (nested ones too) a fitted twin if one matches.

        Returns the fitted networks lent.
        """
        lent = {}
        for name, value in estimator.get_params(deep=True).items():
            if name == "backbone" or name.endswith("__backbone"):
                fitted = self._fitted.get(self._key(value, X))
                if fitted is not None:
                    lent[name] = fitted
        estimator.set_params(**lent)
        return list(lent.values())

    def continued(self, estimator, X):
        """A kept fit of the training `estimator` begins with, set to go on as `estimator`.

        An estimator whose ``first_step()`` names an unfitted estimator (SCAN with
        self-labelling: the same without it) begins by training exactly what that one
        trains. Where a fit of that one on `X` is kept, a copy of it takes the parameters
        of `estimator` and ``warm_start=True``: fitting it then trains only the epochs
        left, and ends as `estimator` would.

        Returns
        -------
        estimator : estimator
            The copy, or `estimator` itself where nothing kept matches.
        continued : bool
            Whether it is the copy.
        """
        first_step = getattr(estimator, "first_step", None)
        first = first_step() if callable(first_step) else None
        fitted = None if first is None else self._fitted.get(self._key(first, X))
        if fitted is None:
            return estimator, False
        copied = copy.deepcopy(fitted)
        return copied.set_params(**{**estimator.get_params(deep=False), "warm_start": True}), True

    @staticmethod
    def _key(estimator, X):
        # checkpoint folders, devices and the like aside, nested backbones by their own
        params = training_params(estimator)
        # A network may draw no more images than it is given: it then trains on them all,
        # exactly as one without the limit.
        if (params.get("max_samples") or 0) >= len(X):
            params["max_samples"] = None
        data = hashlib.blake2b(np.ascontiguousarray(X).data, digest_size=16).hexdigest()
        return type(estimator).__name__, repr(sorted(params.items())), X.shape, data


def _monitor_test_images(estimator, dataset):
    """Give every part of an estimator that takes an ``eval_set`` the test images."""
    estimator.set_params(**{
        name: (dataset.X_test, dataset.y_test)
        for name in estimator.get_params()
        if name == "eval_set" or name.endswith("__eval_set")
    })


def _route_checkpoints(estimator, checkpoint_dir):
    """Give every torch part of an estimator a checkpoint folder of its own."""
    estimator.set_params(**{
        name: str(Path(checkpoint_dir) / name)
        for name in estimator.get_params()
        if name == "checkpoint_dir" or name.endswith("__checkpoint_dir")
    })


def fitted_parts(estimator, held):
    """The estimator, its pipeline steps, and the fitted estimator each holds as `held`.

    Parameters
    ----------
    estimator : estimator
        A fitted estimator or pipeline.
    held : str
        Name of a fitted attribute holding an estimator: ``"backbone_"`` (a network a probe
        or deep-feature step read), ``"classifier_"`` (a probe's classifier).

    Returns
    -------
    parts : list of estimator
        Each once, in that order.
    """
    parts = [estimator]
    if isinstance(estimator, Pipeline):
        parts += [step for _, step in estimator.steps]
    parts += [getattr(part, held) for part in parts if getattr(part, held, None) is not None]
    return list({id(part): part for part in parts}.values())


def resumed_training(estimator, lent=()):
    """(epochs, seconds) of training that checkpoints supplied to this fit.

    A fit resumed from a checkpoint trains only the epochs after it; the earlier ones, and
    their times, come back in the network's history. The networks in `lent`, trained by
    another row, count for nothing.
    """
    epochs, seconds = 0, 0.0
    lent = {id(network) for network in lent}
    for part in fitted_parts(estimator, "backbone_"):
        resumed = 0 if id(part) in lent else getattr(part, "n_resumed_epochs_", 0)
        if resumed:
            epochs += resumed
            seconds += float(sum(part.history_["seconds"][:resumed]))
    return epochs, seconds


def training_part(dataset, limit, seed):
    """The images a method learns from: a seeded subset of at most `limit` training images.

    Parameters
    ----------
    dataset : benchmark.datasets.Dataset
        Where the method runs.
    limit : int or None
        Most training images the method's profile lets it learn from; None: all of them.
    seed : int
        Seed of the draw, stratified where the images have classes.

    Returns
    -------
    train : benchmark.datasets.Dataset
        `dataset` itself where the limit keeps every image.
    """
    return dataset if limit is None else subsample(dataset, limit, seed=seed)


def timed_fit(estimator, *fit_args):
    """Fit `estimator` and time the fit, counting the fits a search shared.

    Work shared earlier is cleared first, so that a search shares work within this fit
    only and its time is its own.

    Parameters
    ----------
    estimator : estimator
        What to fit.
    *fit_args
        Passed to ``estimator.fit``: the images, and their labels for a supervised one.

    Returns
    -------
    seconds : float
        Wall-clock seconds of the fit.
    shared : search.FitStats
        Fits a search asked for, computed and took from equivalent candidates.
    """
    clear_cache()
    start = time.perf_counter()
    with count_fits() as shared:
        estimator.fit(*fit_args)
    return time.perf_counter() - start, shared


def supervised_record(estimator, train, dataset, *, seed=0):
    """Test accuracy, weighted precision / recall / F1, train accuracy, predict time.

    Train accuracy is measured on a seeded, stratified sample of at most
    ``TRAIN_SCORE_LIMIT`` training images (``n_train_scored``): a kNN or an SVM predicts
    its own 50,000 training images far slower than it trains, for a diagnostic figure
    that 10,000 images pin to within about half a point.
    """
    start = time.perf_counter()
    y_pred = estimator.predict(dataset.X_test)
    predict_time = time.perf_counter() - start
    precision, recall, f1, _ = precision_recall_fscore_support(
        dataset.y_test, y_pred, average="weighted", zero_division=0
    )
    scored = subsample(train, TRAIN_SCORE_LIMIT, seed=seed)
    return {
        "test_accuracy": accuracy_score(dataset.y_test, y_pred),
        "train_accuracy": accuracy_score(scored.y_train, estimator.predict(scored.X_train)),
        "n_train_scored": len(scored.X_train),
        "precision": precision, "recall": recall, "f1": f1,
        "predict_time": predict_time,
    }


def is_encoder(estimator):
    """Whether `estimator` learns features, neither classifying nor clustering images."""
    return hasattr(estimator, "transform") and not hasattr(estimator, "predict")


def encoder_record(estimator, train, dataset, *, seed=0):
    """How well an encoder's features sort images by class, where labels exist to tell.

    ``knn_accuracy``: weighted kNN (k = 200, cosine) of the test images against the
    training images (:func:`estimators.neighbours.weighted_knn_accuracy`);
    ``neighbour_accuracy``: the share of the 20 nearest neighbours of each of at most
    ``TRAIN_SCORE_LIMIT`` training images (a seeded, stratified sample) that share its
    class, what bounds SCAN's neighbour clustering. Labels only score the features: the
    encoder never saw them.
    """
    if train.y_train is None:
        return {}
    train_features = estimator.transform(train.X_train)
    record = {}
    if dataset.X_test is not None:
        record["knn_accuracy"] = weighted_knn_accuracy(
            train_features, train.y_train, estimator.transform(dataset.X_test), dataset.y_test)
    scored = subsample(train, TRAIN_SCORE_LIMIT, seed=seed)
    scored_features = (train_features if scored is train
                       else estimator.transform(scored.X_train))
    neighbours = mine_neighbours(scored_features, N_NEIGHBOURS_SCORED)
    record["neighbour_accuracy"] = neighbour_accuracy(neighbours, scored.y_train)
    return record


def clustering_record(estimator, train, dataset):
    """NMI, ARI, Hungarian accuracy and cluster sizes on both parts, where labels exist."""
    n_clusters = requested_clusters(estimator)
    parts = {"train": (train.y_train, _training_labels(estimator, train.X_train))}
    if dataset.X_test is not None:
        start = time.perf_counter()
        test_labels = estimator.predict(dataset.X_test)
        parts["test"] = (dataset.y_test, test_labels)
        predict_time = time.perf_counter() - start
    record = {"n_clusters": n_clusters}
    for part, (y_true, labels) in parts.items():
        scores = cluster_scores(labels, y_true, n_clusters)
        record.update({f"{name}_{part}": value for name, value in scores.items()})
    if "test" in parts:
        record["predict_time"] = predict_time
    return record


def cluster_scores(labels, y_true, n_clusters):
    """Cluster sizes, empty clusters and, where classes are known, NMI, ARI and accuracy.

    Parameters
    ----------
    labels : array-like of shape (n_images,)
        Cluster of each image.
    y_true : array-like of shape (n_images,) or None
        Class of each image; None for unlabelled images.
    n_clusters : int
        Clusters asked for, empty ones included.

    Returns
    -------
    scores : dict
        ``cluster_sizes`` (a list), ``empty_clusters`` and, with classes, ``nmi``, ``ari``
        and ``acc``.
    """
    sizes = cluster_sizes(labels, n_clusters)
    scores = {"cluster_sizes": sizes.tolist(), "empty_clusters": int((sizes == 0).sum())}
    if y_true is not None:
        measured = clustering_scores(y_true, labels, n_clusters=n_clusters)
        scores.update({name: measured[name] for name in ("nmi", "ari", "acc")})
    return scores


def _training_labels(estimator, X_train):
    labels = getattr(estimator, "labels_", None)
    return estimator.predict(X_train) if labels is None else np.asarray(labels)


def requested_clusters(estimator):
    """The ``n_clusters`` parameter of an estimator, or of the last step of its pipeline.

    The last step labels the images; a network earlier in the pipeline (learned features)
    may have been trained on another number of clusters.
    """
    final = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    return final.get_params(deep=False).get("n_clusters")


def fitted_summary(estimator):
    """Fitted attributes worth recording, from the estimator, every pipeline step, and a
    probe's classifier."""
    summary = {}
    for part in fitted_parts(estimator, "classifier_"):
        for attribute, key in FITTED_SUMMARY.items():
            value = getattr(part, attribute, None)
            if value is not None and key not in summary:
                summary[key] = _plain(value)
        if hasattr(part, "history_") and "history" not in summary:
            summary["history"] = [_plain(epoch) for epoch in part.history_]
            summary["epochs"] = len(part.history_)
            summary["seconds_per_epoch"] = float(np.mean(part.history_["seconds"]))
            if is_clusterer(part):
                # how well the network fits its own last pseudo-labels (augmented batches)
                summary["pseudo_label_accuracy"] = part.history_[-1].get("accuracy")
        if hasattr(part, "cv_results_"):
            summary["n_candidates"] = len(part.cv_results_["params"])
            summary["n_fits"] = summary["n_candidates"] * part.n_splits_
    return summary


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return repr(value)
