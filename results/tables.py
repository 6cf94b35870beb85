"""Markdown tables of stored records, in the study's layouts, with its figures beside ours."""

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from tabulate import tabulate

from .reference import STUDY
from .schema import dataset_source

# Each table: its title, and (column header, record field) pairs; study columns read the
# same field from the study's figures for the record's ``reference``.
TABLES = {
    "classical": (
        "Classical models (scale, flatten, PCA 99%)",
        [("precision", "precision"), ("recall", "recall"), ("F1", "f1"),
         ("test acc", "test_accuracy"), ("train acc", "train_accuracy")],
        [("study test acc", "test_accuracy"), ("study train acc", "train_accuracy"),
         ("study F1", "f1")],
    ),
    "learned": (
        "Classical models on features learned without labels (PCA 99%)",
        [("precision", "precision"), ("recall", "recall"), ("F1", "f1"),
         ("test acc", "test_accuracy"), ("train acc", "train_accuracy")],
        [],
    ),
    "cnn": (
        "Supervised CNNs",
        [("test top-1", "test_accuracy"), ("train top-1", "train_accuracy")],
        [("study test top-1", "test_accuracy"), ("study train top-1", "train_accuracy")],
    ),
    "clustering": (
        "Clustering without labels",
        [("NMI test", "nmi_test"), ("NMI train", "nmi_train"), ("ARI test", "ari_test"),
         ("ACC test", "acc_test"), ("empty clusters", "empty_clusters_train")],
        [("study NMI test", "nmi_test"), ("study NMI train", "nmi_train")],
    ),
    "deepcluster": (
        "DeepCluster / DeeperCluster (k-means pseudo-labels)",
        [("NMI test", "nmi_test"), ("NMI train", "nmi_train"), ("ARI test", "ari_test"),
         ("ACC test", "acc_test"), ("epochs", "epochs"),
         ("pseudo-label train acc", "pseudo_label_accuracy")],
        [("study epochs", "epochs"), ("study pseudo-label train acc", "pseudo_label_accuracy")],
    ),
    "encoders": (
        "Self-supervised encoders (features learned without labels)",
        [("kNN test acc", "knn_accuracy"), ("20-NN same class", "neighbour_accuracy"),
         ("epochs", "epochs")],
        [],
    ),
    "probe": (
        "Linear probes on features learned without labels",
        [("test top-1", "test_accuracy"), ("train top-1", "train_accuracy")],
        [("study test top-1", "test_accuracy"), ("study train top-1", "train_accuracy")],
    ),
}
# The figure each table ranks its rows by.
RANKED_BY = {"classical": "test_accuracy", "learned": "test_accuracy", "cnn": "test_accuracy",
             "clustering": "nmi_test", "deepcluster": "nmi_test", "encoders": "knn_accuracy",
             "probe": "test_accuracy"}
# Two-sided Welch's t-test on the seeds' figures: a row is "tied" with the best when the
# test cannot tell them apart at this level.
TIE_LEVEL = 0.05
# Columns of every table: the images given to fit (a network inside may learn from fewer,
# see ``max_samples``) and the time it took.
TRAINING = [("train images", "n_train"), ("fit s", "fit_time")]
# Fields that count things, shown as whole numbers.
COUNT_FIELDS = frozenset({"n_train", "epochs", "empty_clusters_train"})
# A study column's cell for a figure the study did not report; an empty cell is one of ours
# that a run failed to fill.
NOT_IN_STUDY = "–"


def _on_cifar10(frame):
    """Whether each record's images are CIFAR-10's, the study's dataset."""
    return frame.apply(dataset_source, axis=1) == "cifar10"


def render_report(frame, *, title="Results", plots=()):
    """Markdown report: one table per kind of method present in the records, then plots.

    Parameters
    ----------
    frame : pandas.DataFrame
        Records, as :meth:`results.ResultStore.to_frame` returns them.
    title : str, default="Results"
        Heading of the report.
    plots : sequence of (str, str), default=()
        (title, path relative to the report) of each plot to show.

    Returns
    -------
    markdown : str
    """
    sections = [f"# {title}"]
    if frame.empty:
        return sections[0] + "\n\nNo finished records yet.\n"
    for table, (heading, ours, study) in TABLES.items():
        rows = frame[frame["table"] == table]
        if not rows.empty:
            sections.append(f"## {heading}\n\n{_table(rows, ours + TRAINING, study, table)}")
            sections.extend(_best_params(rows))
    if _on_cifar10(frame).any():
        sections.append(
            "Columns headed *study* are the figures the reproduced study reported on CIFAR-10 "
            f"(50,000 train / 10,000 test), {NOT_IN_STUDY} where it reported none; every "
            "other figure was measured by this toolkit on the dataset named in the row."
        )
    sections.append(
        "Figures are mean ± standard deviation over the seeds the *seeds* column counts "
        "(one seed: the figure alone). *vs best* compares each row with the best of its "
        "table on the same dataset and profile (by test accuracy; by test NMI for "
        "clustering; by kNN accuracy for encoders), by a two-sided Welch's t-test on the "
        f"seeds' figures: *tied* where p >= {TIE_LEVEL} (the seeds cannot tell the two "
        f"apart), *below* where p < "
        f"{TIE_LEVEL}, *untested* where either row has a single seed."
    )
    sections.extend(_environments(frame))
    if plots:
        sections.append("## Plots\n\n" + "\n\n".join(f"![{name}]({path})" for name, path in plots))
    return "\n\n".join(sections) + "\n"


def _table(rows, ours, study, table):
    fields = [field for _, field in ours if field in rows]
    groups = rows.assign(on_cifar10=_on_cifar10(rows)).groupby(["method", "dataset", "profile"],
                                                                 sort=False)
    summary = groups.agg(
        **{f"{field}_mean": (field, "mean") for field in fields},
        **{f"{field}_std": (field, "std") for field in fields},
        seeds=("seed", "nunique"), reference=("reference", "first"),
        on_cifar10=("on_cifar10", "any"),
    )
    verdicts = _versus_best(groups, RANKED_BY[table])
    if not summary["on_cifar10"].any():
        study = []
    body = []
    for key, row in summary.iterrows():
        method, dataset, profile = key
        line = [method, dataset, profile, int(row["seeds"]), verdicts.get(key, "")]
        line += [_cell(row.get(f"{field}_mean"), row.get(f"{field}_std"), field)
                 for _, field in ours]
        figures = STUDY.get(row["reference"], {}) if row["on_cifar10"] else {}
        line += [_number(figures[field], field) if field in figures else NOT_IN_STUDY
                 for _, field in study]
        body.append(line)
    headers = ["method", "dataset", "profile", "seeds", "vs best"] + [h for h, _ in ours + study]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def _versus_best(groups, field):
    """Each row's standing against the best row of its dataset and profile, by `field`.

    Returns
    -------
    verdicts : dict
        (method, dataset, profile) -> "best", "tied (p=...)", "below (p=...)" or
        "untested"; rows without `field` are left out.
    """
    if field not in groups.obj:
        return {}
    seeds = {key: group[field].dropna().to_numpy() for key, group in groups}
    seeds = {key: values for key, values in seeds.items() if len(values)}
    verdicts = {}
    for (dataset, profile), keys in _by_dataset_and_profile(seeds).items():
        best = max(keys, key=lambda key: seeds[key].mean())
        for key in keys:
            if key == best:
                verdicts[key] = "best"
            elif min(len(seeds[key]), len(seeds[best])) < 2:
                verdicts[key] = "untested"
            else:
                p = welch_p_value(seeds[key], seeds[best])
                verdicts[key] = f"{'tied' if p >= TIE_LEVEL else 'below'} (p={p:.2g})"
    return verdicts


def _by_dataset_and_profile(keys):
    grouped = {}
    for key in keys:
        grouped.setdefault(key[1:], []).append(key)
    return grouped


def welch_p_value(a, b):
    """Two-sided p-value of Welch's t-test that samples `a` and `b` share a mean.

    Seeds that all give the same figure have no spread: the test then says 1 where the
    two figures are equal and 0 where they differ.

    Parameters
    ----------
    a, b : array-like of shape (n_seeds,)
        A figure of two methods, one per seed; at least 2 seeds each.

    Returns
    -------
    p : float
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.var() == 0 and b.var() == 0:
        return float(a.mean() == b.mean())
    with warnings.catch_warnings():
        # nearly equal figures lose precision in the variance; the p-value is then ~1 anyway
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def _best_params(rows):
    """A list of the best parameters of the tuned rows among `rows`, if any (first seed's)."""
    if "best_params" not in rows:
        return []
    tuned = rows.dropna(subset=["best_params"]).drop_duplicates(["method", "dataset", "profile"])
    if tuned.empty:
        return []
    lines = [f"- {row.method} ({row.dataset}): `{row.best_params}`" for row in tuned.itertuples()]
    return ["Best parameters found by the tuned rows:\n\n" + "\n".join(lines)]


def _environments(frame):
    """A list of the machines, software and commits the records were measured with."""
    if "environment" not in frame:
        return []
    counts = frame["environment"].dropna().map(describe_environment).value_counts(sort=False)
    lines = [f"- {machine}: {count} record{'s' * (count > 1)}" for machine, count in counts.items()]
    return ["Measured with:\n\n" + "\n".join(lines)] if lines else []


def describe_environment(environment):
    """One line naming a record's machine, package versions and commit.

    The machine: CPU model, logical cores (and torch's threads, where recorded), the
    instruction set torch's CPU kernels use and whether bfloat16 is native there, and the
    GPU, if any.
    """
    cpu = environment.get("cpu", "CPU model not recorded")
    if "cpu_capability" in environment:
        native = "native" if environment.get("cpu_bfloat16") else "no native"
        cpu += f" ({environment['cpu_capability']}, {native} bfloat16)"
    accelerator = environment.get("accelerator", "accelerator not recorded") or "no GPU"
    versions = [f"{name} {environment[name]}"
                for name in ("torch", "scikit-learn") if environment.get(name)]
    commit = environment.get("commit")
    # a short hash, and "+changes" where the code differed from it
    commit = f"commit {commit[:12]}{commit[40:]}" if commit else "commit not recorded"
    cpus = f"{environment['cpus']} CPUs"
    if "torch_threads" in environment:
        cpus += f" ({environment['torch_threads']} torch threads)"
    return ", ".join([cpu, cpus, accelerator, f"Python {environment['python']}", *versions,
                      commit])


def _cell(mean, std, field):
    """``mean ± std`` over seeds, both to the mean's decimals, or the mean alone (one seed,
    or a count that every seed gave alike)."""
    text = _number(mean, field)
    if not text or std is None or pd.isna(std) or (field in COUNT_FIELDS and std == 0):
        return text
    return f"{text} ± {std:.{_decimals(mean, field)}f}"


def _number(value, field):
    """A table cell: counts whole, scores (at most 1) to 4 decimals, seconds to 1 or 0."""
    if value is None or pd.isna(value):
        return ""
    return f"{value:.{_decimals(value, field)}f}"


def _decimals(value, field):
    if field in COUNT_FIELDS or abs(value) >= 100:
        return 0
    return 4 if abs(value) <= 1 else 1
