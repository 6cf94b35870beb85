"""Markdown tables of stored records, in the study's layouts, with its figures beside ours."""

import pandas as pd
from tabulate import tabulate

from .reference import STUDY

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
    "probe": (
        "Linear probes on features learned without labels",
        [("test top-1", "test_accuracy"), ("train top-1", "train_accuracy")],
        [("study test top-1", "test_accuracy"), ("study train top-1", "train_accuracy")],
    ),
}
# Columns of every table: the images given to fit (a network inside may learn from fewer,
# see ``max_samples``) and the time it took.
TRAINING = [("train images", "n_train"), ("fit s", "fit_time")]
# Fields that count things, shown as whole numbers.
COUNT_FIELDS = frozenset({"n_train", "epochs", "empty_clusters_train"})
# A study column's cell for a figure the study did not report; an empty cell is one of ours
# that a run failed to fill.
NOT_IN_STUDY = "–"


def _on_cifar10(dataset):
    # The study's dataset: the official batches, a copy named after it (cifar10-jpeg), or a
    # subset of either (cifar10-n5000).
    return dataset == "cifar10" or dataset.startswith(("cifar10-", "cifar10_"))


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
            sections.append(f"## {heading}\n\n{_table(rows, ours + TRAINING, study)}")
            sections.extend(_best_params(rows))
    if frame["dataset"].map(_on_cifar10).any():
        sections.append(
            "Columns headed *study* are the figures the reproduced study reported on CIFAR-10 "
            f"(50,000 train / 10,000 test), {NOT_IN_STUDY} where it reported none; every "
            "other figure was measured by this toolkit on the dataset named in the row."
        )
    sections.append("Figures are means over seeds.")
    sections.extend(_environments(frame))
    if plots:
        sections.append("## Plots\n\n" + "\n\n".join(f"![{name}]({path})" for name, path in plots))
    return "\n\n".join(sections) + "\n"


def _table(rows, ours, study):
    fields = [field for _, field in ours if field in rows]
    summary = rows.groupby(["method", "dataset", "profile"], sort=False).agg(
        **{field: (field, "mean") for field in fields}, seeds=("seed", "nunique"),
        reference=("reference", "first"),
    )
    if not any(_on_cifar10(dataset) for _, dataset, _ in summary.index):
        study = []
    body = []
    for (method, dataset, profile), row in summary.iterrows():
        line = [method, dataset, profile, int(row["seeds"])]
        line += [_number(row.get(field), field) for _, field in ours]
        figures = STUDY.get(row["reference"], {}) if _on_cifar10(dataset) else {}
        line += [_number(figures[field], field) if field in figures else NOT_IN_STUDY
                 for _, field in study]
        body.append(line)
    headers = ["method", "dataset", "profile", "seeds"] + [h for h, _ in ours + study]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


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
    """A list of the machines and software the records were measured with, if recorded."""
    if "environment" not in frame:
        return []
    counts = frame["environment"].dropna().map(describe_environment).value_counts(sort=False)
    lines = [f"- {machine}: {count} record{'s' * (count > 1)}" for machine, count in counts.items()]
    return ["Measured with:\n\n" + "\n".join(lines)] if lines else []


def describe_environment(environment):
    """One line naming a record's accelerator, CPU count and package versions."""
    accelerator = environment.get("accelerator", "accelerator not recorded") or "no GPU"
    versions = ", ".join(f"{name} {environment[name]}"
                         for name in ("torch", "scikit-learn") if environment.get(name))
    return f"{accelerator}, {environment['cpus']} CPUs, Python {environment['python']}, {versions}"


def _number(value, field):
    """A table cell: counts whole, scores (at most 1) to 4 decimals, seconds to 1 or 0."""
    if value is None or pd.isna(value):
        return ""
    if field in COUNT_FIELDS or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.4f}" if abs(value) <= 1 else f"{value:.1f}"
