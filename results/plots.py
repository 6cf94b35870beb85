"""Plots of stored records (PNG, matplotlib): cluster sizes and clustering quality per epoch."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from .schema import SIZES_AFTER, SIZES_BEFORE, is_quality_key  # noqa: E402
from .store import row_key  # noqa: E402


def render_plots(records, out_dir):
    """Write every plot the records allow; return their paths, relative to ``out_dir``.

    Seeds of one method, dataset and profile share a plot: quality per epoch shows one line
    per seed, cluster sizes show the first seed's run.

    Parameters
    ----------
    records : list of dict
        Stored records; those with a per-epoch ``history`` give plots.
    out_dir : path
        Run folder; plots go to its ``plots/`` sub-folder.

    Returns
    -------
    plots : list of (str, str)
        (title, relative path) of each plot written.
    """
    out_dir = Path(out_dir)
    plots = []
    for (method, dataset, profile), runs in _seeds_of_each_row(records).items():
        histories = {record["seed"]: record.get("history") or [] for record in runs}
        key = f"{row_key(method, dataset, profile)}__seeds"
        first = histories[min(histories)]
        if first and all(name in first[0] for name in (SIZES_BEFORE, SIZES_AFTER)):
            path = Path("plots") / f"{key}-cluster-sizes.png"
            plot_cluster_sizes(first, out_dir / path, title=f"{method}, seed {min(histories)}")
            plots.append((f"{method}: cluster sizes", path.as_posix()))
        curves = {seed: quality_curves(history) for seed, history in histories.items()}
        if any(curves.values()):
            path = Path("plots") / f"{key}-quality.png"
            plot_curves(curves, out_dir / path, title=method)
            plots.append((f"{method}: clustering quality per epoch", path.as_posix()))
    return plots


def _seeds_of_each_row(records):
    rows = {}
    for record in sorted(records, key=lambda record: record["seed"]):
        rows.setdefault((record["method"], record["dataset"], record["profile"]), []).append(record)
    return rows


def quality_curves(history):
    """Per-epoch NMI / ARI / ACC series found in a history, by name (see
    :func:`results.schema.is_quality_key`)."""
    names = [name for name, value in (history[0] if history else {}).items()
             if is_quality_key(name, value)]
    return {name: [epoch.get(name) for epoch in history] for name in names}


def plot_cluster_sizes(history, path, *, title):
    """Cluster sizes before and after re-balancing, at the first and at the last epoch."""
    epochs = [0, len(history) - 1] if len(history) > 1 else [0]
    figure, axes = plt.subplots(1, len(epochs), figsize=(5 * len(epochs), 3.2), squeeze=False)
    for axis, epoch in zip(axes[0], epochs):
        before = np.asarray(history[epoch][SIZES_BEFORE])
        after = np.asarray(history[epoch][SIZES_AFTER])
        clusters = np.arange(len(before))
        axis.bar(clusters - 0.2, before, width=0.4, label="before re-balancing")
        axis.bar(clusters + 0.2, after, width=0.4, label="after")
        axis.set(title=f"epoch {epoch + 1}", xlabel="cluster", ylabel="images")
    axes[0][0].legend()
    figure.suptitle(title)
    _save(figure, path)


def plot_curves(curves, path, *, title):
    """One line per metric and seed over the epochs; a metric keeps its colour across seeds.

    Parameters
    ----------
    curves : dict
        seed -> {metric name -> per-epoch values}.
    path : path
        Where to write the PNG.
    title : str
        Title of the plot.
    """
    figure, axis = plt.subplots(figsize=(5, 3.2))
    colours = {}
    styles = ["-", "--", ":", "-."]
    for index, (seed, metrics) in enumerate(curves.items()):
        for name, values in metrics.items():
            colour = colours.setdefault(name, f"C{len(colours)}")
            label = name if len(curves) == 1 else f"{name}, seed {seed}"
            axis.plot(np.arange(1, len(values) + 1), values, styles[index % len(styles)],
                      color=colour, marker="o", markersize=3, label=label)
    axis.set(title=title, xlabel="epoch", ylim=(0, 1))
    axis.legend(fontsize="x-small")
    _save(figure, path)


def _save(figure, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def plot_sizes(sizes, path, *, title):
    """Bar chart of the number of images in each cluster."""
    figure, axis = plt.subplots(figsize=(max(4, 0.35 * len(sizes)), 3.2))
    axis.bar(np.arange(len(sizes)), sizes)
    axis.set(title=title, xlabel="cluster", ylabel="images")
    _save(figure, Path(path))


def contact_sheet(images, path, *, columns=8, scale=2):
    """Images side by side in a grid, as one PNG.

    Parameters
    ----------
    images : ndarray of shape (n_images, height, width, channels), uint8
        Images to show, in reading order.
    path : path
        Where to write the PNG.
    columns : int, default=8
        Images per row.
    scale : int, default=2
        Each pixel becomes a ``scale`` x ``scale`` block, so small images stay visible.
    """
    n, height, width, channels = images.shape
    rows = -(-n // columns)
    sheet = np.full((rows * (height + 1), columns * (width + 1), channels), 255, np.uint8)
    for index, image in enumerate(images):
        top, left = divmod(index, columns)
        sheet[top * (height + 1) : top * (height + 1) + height,
              left * (width + 1) : left * (width + 1) + width] = image
    sheet = sheet.repeat(scale, axis=0).repeat(scale, axis=1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, sheet[..., 0] if channels == 1 else sheet, cmap="gray", vmin=0, vmax=255)
