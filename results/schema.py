"""The record schema: the fields a result record holds, and the history keys plots read.

A record is one JSON object per (method, dataset, profile, seed): plain numbers, strings,
lists and dicts. :mod:`benchmark.harness` writes every record through
:func:`checked_record`; :mod:`results.tables` and :mod:`results.plots` read the fields and
history keys named here. A figure a row does not measure is absent from its record.
"""

# The fields that name a record; its file name is made of them (results.store.record_key).
KEY_FIELDS = ("method", "dataset", "profile", "seed")

# The families a record's ``dataset_source`` names.
DATASET_SOURCES = {
    "cifar10": "CIFAR-10: the official batches, a copy of them (cifar10-jpeg), or a subset",
    "digits": "scikit-learn's embedded 8x8 digits, or a subset",
    "other": "any other images",
}

_CLUSTERING_SCORES = {"nmi": "normalised mutual information", "ari": "adjusted Rand index",
                      "acc": "Hungarian accuracy"}
_PARTS = {"train": "the training images fitted", "test": "the test images"}

# Every field a record may hold, and what it means.
FIELDS = {
    # which row, on what
    "method": "name of the registry row that ran",
    "dataset": "name of the dataset; a subset's is <name>-n<training images>",
    "profile": "settings profile: smoke, quick or paper",
    "seed": "seed of the method (the images are drawn with seed 0 whatever it is)",
    "dataset_digest": "hex digest of the images and labels: tells apart datasets of one name",
    "dataset_source": f"family of the images, one of {', '.join(DATASET_SOURCES)}; null where "
                      "the dataset did not say, absent in older records (see dataset_source())",
    "table": "the report table the row is shown in",
    "reference": "key of the study's figures shown beside the row (results.reference), or null",
    "n_train": "training images given to fit (a network inside may draw fewer)",
    "n_test": "test images scored",
    "estimator": "the estimator's repr, with every parameter",
    "environment": "machine, Python and package versions, git commit of the code",
    "backbone_reused": "true where the row took the network an earlier row of the run trained, "
                       "or went on from it",
    # timings
    "fit_time": "seconds of fit, with the epochs a checkpoint resumed (as they were timed)",
    "resumed_epochs": "epochs of training a checkpoint, or the earlier row's fit it went on "
                      "from, supplied to this fit",
    "predict_time": "seconds to predict the test images",
    "seconds_per_epoch": "mean seconds of a network's training epoch",
    # work a search shared between its candidates
    "fits_computed": "fits a search computed",
    "fits_saved": "fits a search took from an equivalent candidate instead",
    "trees_requested": "random-forest trees a search asked for",
    "trees_grown": "random-forest trees a search grew",
    # supervised scores
    "test_accuracy": "accuracy on the test images",
    "train_accuracy": "accuracy on at most 10,000 training images (n_train_scored)",
    "n_train_scored": "training images the train accuracy is measured on",
    "precision": "precision on the test images, weighted by class",
    "recall": "recall on the test images, weighted by class",
    "f1": "F1 on the test images, weighted by class",
    # an encoder's features, scored with labels it never saw
    "knn_accuracy": "weighted kNN accuracy (k=200, cosine) of the test images' features "
                    "against the training images'",
    "neighbour_accuracy": "share of the 20 nearest neighbours of each of at most 10,000 "
                          "training images, in the features, that share its class",
    # clustering scores, per part
    "n_clusters": "clusters the method was asked for",
    **{f"cluster_sizes_{part}": f"images in each cluster, of {images}"
       for part, images in _PARTS.items()},
    **{f"empty_clusters_{part}": f"clusters left empty, of {images}"
       for part, images in _PARTS.items()},
    **{f"{score}_{part}": f"{meaning} of the clusters of {images} against their classes"
       for score, meaning in _CLUSTERING_SCORES.items() for part, images in _PARTS.items()},
    # what the fitted estimator holds
    "pca_components": "principal components kept (99% of the variance)",
    "best_params": "parameters a search chose",
    "cv_score": "cross-validated score of the chosen parameters",
    "n_candidates": "parameter sets a search scored",
    "n_fits": "candidates times cross-validation folds",
    "stop_reason": "why a network's training or a genetic search stopped",
    "history": "a network's training, one dict per epoch (HISTORY_KEYS)",
    "epochs": "epochs a network trained",
    "pseudo_label_accuracy": "a clustering network's accuracy on its own last pseudo-labels",
}

# Keys of a history's epochs that the plots read. Quality curves are the numeric keys with
# one of QUALITY_SCORES among the parts of their name ("eval_nmi", "nmi_previous").
SIZES_BEFORE, SIZES_AFTER = "sizes_before", "sizes_after"
QUALITY_SCORES = tuple(_CLUSTERING_SCORES)
HISTORY_KEYS = {
    SIZES_BEFORE: "images in each cluster before the pseudo-labels are re-balanced",
    SIZES_AFTER: "images in each cluster after re-balancing",
    "nmi_previous": "NMI between this epoch's clusters and the last epoch's",
    **{f"eval_{score}": f"{meaning} of the clusters of the eval_set images, each epoch"
       for score, meaning in _CLUSTERING_SCORES.items()},
}


def checked_record(record):
    """`record` itself, once every field is known to the schema.

    Parameters
    ----------
    record : dict
        A record about to be written.

    Returns
    -------
    record : dict

    Raises
    ------
    ValueError
        Naming the fields :data:`FIELDS` does not hold, or the key fields missing.
    """
    missing = [name for name in KEY_FIELDS if name not in record]
    unknown = [name for name in record if name not in FIELDS]
    if missing or unknown:
        raise ValueError(f"A record needs the key fields {KEY_FIELDS} and only fields of "
                         f"results.schema.FIELDS; missing {missing}, unknown {unknown}.")
    return record


def is_quality_key(name, value):
    """Whether an epoch's `name`: `value` is a clustering quality to plot per epoch."""
    return (any(part in name.split("_") for part in QUALITY_SCORES)
            and isinstance(value, (int, float)))


def source_by_name(name):
    """The family a dataset's name says it belongs to: "cifar10", else "other".

    The one place the name rule lives. A folder, archive or .npz file cannot say what its
    images are, so their loader falls back on this, and so do the tables for records made
    before ``dataset_source`` was written: "cifar10", a copy named after it
    ("cifar10-jpeg") and a subset of either ("cifar10-n5000") are CIFAR-10; the rule
    knows no other family.

    Parameters
    ----------
    name : str
        A dataset's name.

    Returns
    -------
    source : str
        A key of :data:`DATASET_SOURCES`.
    """
    return "cifar10" if name == "cifar10" or name.startswith(("cifar10-", "cifar10_")) else "other"


def dataset_source(record):
    """The family of a record's images: its ``dataset_source``, else what its name says.

    Parameters
    ----------
    record : mapping
        A record, or a row of a frame of records (where a missing field is NaN).

    Returns
    -------
    source : str
        A key of :data:`DATASET_SOURCES`.
    """
    source = record.get("dataset_source")
    return source if isinstance(source, str) else source_by_name(record["dataset"])
