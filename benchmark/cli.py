"""Command line: ``python -m benchmark list | run | cluster | report``."""

import argparse
import logging
import shutil
import sys
from pathlib import Path

from tqdm.auto import tqdm

from results.store import RecordError, ResultStore, atomic_write
from search.backends import BACKENDS, SchedulerError, parallel_backend

from .arguments import (
    MAX_SEED,
    comma_separated,
    integer,
    positive_int,
    seed_list,
    seed_number,
    with_flags,
)
from .errors import DataError
from .registry import (
    METHODS,
    PROFILES,
    UnknownNameError,
    check_profile,
    describe_method,
    get_methods,
    in_borrowing_order,
)

log = logging.getLogger("benchmark")
USAGE_ERROR = 2
INTERRUPTED = 130
NOTES_FILE = "notes.md"
# Seeds go to numpy's and scikit-learn's generators, which take 32-bit unsigned integers.
# Seed of the draws that make the dataset (a hold-out split, --limit's subset).
DATA_SEED = 0
DATASET_HELP = {
    "digits": "scikit-learn's 1,797 8x8 grey digits, embedded (the default)",
    "cifar10": "CIFAR-10 python batches under --data-dir, downloaded where the network allows",
    "PATH": "a class-folder tree or .tar/.tar.gz/.zip of one, or an .npz with X and y",
}


def main(argv=None):
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return args.command(args)
    except (UnknownNameError, DataError, RecordError, SchedulerError) as exc:
        print(f"error: {with_flags(exc)}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted.", file=sys.stderr)
        return INTERRUPTED


def _parser():
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list methods, datasets and profiles")
    listing.add_argument("--show", metavar="NAME",
                         help="print what method NAME runs: its estimator with every parameter, "
                              "its training limit and the row whose network it borrows")
    listing.add_argument("--profile", default="quick",
                         help=f"with --show: one of {', '.join(PROFILES)} (default quick)")
    listing.set_defaults(command=list_command)

    run = commands.add_parser("run", help="run methods on a dataset and record the results")
    chosen = run.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--all", action="store_true", help="every registered method")
    chosen.add_argument("--methods", type=comma_separated, help="comma-separated method names")
    run.add_argument("--dataset", default="digits", help="digits, cifar10 or a PATH")
    run.add_argument("--data-dir", type=Path, help="where CIFAR-10 is found or downloaded")
    run.add_argument("--cache-dir", type=Path, help="where decoded image trees are cached")
    run.add_argument("--profile", default="quick", help=f"one of {', '.join(PROFILES)}")
    run.add_argument("--out", type=Path, help="run folder (default runs/<dataset>-<profile>)")
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=seed_number, default=0, help=f"0 to {MAX_SEED} (default 0)")
    seeds.add_argument("--seeds", type=seed_list, metavar="S1,S2,...",
                       help="fit every row once per seed, each its own record; tables show "
                            "mean and standard deviation over seeds")
    run.add_argument("--n-jobs", type=_n_jobs, default=-1,
                     help="parallel jobs (default -1: all cores; -2: all but one)")
    run.add_argument("--backend", choices=BACKENDS,
                     help="where parallel jobs run: threads (the default) or processes here, "
                          "or a Dask cluster (which also runs the methods side by side)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="Dask scheduler address; implies --backend dask "
                          "(default: a local cluster)")
    run.add_argument("--limit", type=positive_int,
                     help="keep N training images (seeded, stratified)")
    run.add_argument("--image-size", type=_image_size, metavar="HxW",
                     help="resize every image instead of refusing mixed sizes")
    run.add_argument("--skip-bad", action="store_true",
                     help="skip unreadable image files and list them, instead of stopping")
    run.add_argument("--force", action="store_true", help="recompute finished records")
    run.set_defaults(command=run_command)

    cluster = commands.add_parser(
        "cluster", help="cluster a folder or archive of images, labelled or not")
    cluster.add_argument("path", type=Path, metavar="PATH")
    cluster.add_argument("--method", required=True, help="a clustering method, such as kmeans")
    cluster.add_argument("--clusters", type=positive_int,
                         help="default: the number of classes, or 10")
    cluster.add_argument("--profile", default="quick", help=f"one of {', '.join(PROFILES)}")
    cluster.add_argument("--out", type=Path, help="default runs/<dataset>-cluster-<method>")
    cluster.add_argument("--seed", type=seed_number, default=0, help=f"0 to {MAX_SEED} (default 0)")
    cluster.add_argument("--cache-dir", type=Path, help="where decoded image trees are cached")
    cluster.add_argument("--image-size", type=_image_size, metavar="HxW",
                         help="resize every image instead of refusing mixed sizes")
    cluster.add_argument("--skip-bad", action="store_true", help="skip unreadable image files")
    cluster.set_defaults(command=cluster_command)

    report = commands.add_parser(
        "report", help="write and print results.md of a run folder (its notes.md first)")
    report.add_argument("run_dir", type=Path, metavar="DIR")
    report.set_defaults(command=report_command)
    return parser


def _n_jobs(text):
    return integer(text, accept=lambda n: n != 0, expected="a non-zero integer (-1: all cores)")


def _image_size(text):
    try:
        height, width = (int(n) for n in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 32x32, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return height, width


def list_command(args):
    """Print methods, datasets and profiles, one line each; or, with --show, one method."""
    if args.show is not None:
        check_profile(args.profile)
        (method,) = get_methods([args.show])
        print(describe_method(method, args.profile))
        return 0
    width = max(map(len, [*METHODS, *DATASET_HELP, *PROFILES]))
    print("methods:")
    for name, method in METHODS.items():
        print(f"  {name:<{width}}  {method.description}")
    print("datasets:")
    for name, text in DATASET_HELP.items():
        print(f"  {name:<{width}}  {text}")
    print("profiles:")
    for name, text in PROFILES.items():
        print(f"  {name:<{width}}  {text}")
    return 0


def run_command(args):
    """Run the chosen methods, skipping finished records, then print the report."""
    from .datasets import load_dataset
    from .harness import check_runnable

    check_profile(args.profile)
    backend = _backend(args)
    methods = list(METHODS.values()) if args.all else get_methods(args.methods)
    # Seeds vary the methods, never the images: every seed sees one split and one --limit.
    dataset = load_dataset(
        args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir,
        image_size=args.image_size, skip_bad=args.skip_bad, limit=args.limit, seed=DATA_SEED,
    )
    for skipped in dataset.skipped:
        log.warning("skipped: %s", skipped)
    if args.all and not dataset.labelled:
        log.info("%s has no labels: running the clustering methods only.", dataset.name)
        methods = [method for method in methods if not method.supervised]
    for method in methods:  # before any runs, not after the first hours
        check_runnable(method, dataset)
    store = ResultStore(args.out or Path("runs") / f"{dataset.name}-{args.profile}")
    _check_run_folder(store, args.dataset)
    _check_same_dataset(store, dataset)
    with parallel_backend(backend, scheduler=args.scheduler):
        failures = _run_all(methods, dataset, store, args, on_cluster=backend == "dask")
    print(write_report(store, title=f"{dataset.name}, profile {args.profile}"))
    for name, error in failures:
        print(f"error: {name} failed: {error}", file=sys.stderr)
    return 1 if failures else 0


def _backend(args):
    if args.scheduler is None:
        return args.backend or "threads"
    if args.backend not in (None, "dask"):
        raise DataError(f"--scheduler sends work to a Dask cluster; it cannot go with --backend "
                        f"{args.backend}.")
    return "dask"


def _run_all(methods, dataset, store, args, *, on_cluster=False):
    """Run the unfinished methods, writing each record as it comes; return the failures.

    Rows run seed by seed: every method at the first seed, then at the next. Here, rows
    run one after another, each right after the row it borrows a network from (its
    ``borrows``, see :func:`~benchmark.registry.in_borrowing_order`), and takes the network
    that row just trained where it would train it the same way: same class, settings,
    seed and images. On a Dask cluster, rows run side by side on its workers (each
    trains what it needs): results are written in the order they finish.
    """
    from joblib import Parallel, delayed

    from .harness import BackboneCache

    jobs = []  # (method, seed, its checkpoint folder) of each row still to run
    for seed in run_seeds(args):
        for method in in_borrowing_order(methods):
            key = (method.name, dataset.name, args.profile, seed)
            if store.has(*key) and not args.force:
                log.info("%s, seed %d: finished earlier, kept (--force recomputes)",
                         method.name, seed)
            else:
                jobs.append((method, seed, store.checkpoint_dir(*key)))
    if on_cluster:
        outcomes = Parallel(n_jobs=-1, return_as="generator_unordered")(
            delayed(_run_row)(method, dataset, args, seed, checkpoints)
            for method, seed, checkpoints in jobs
        )
    else:
        backbones = BackboneCache()
        outcomes = (_run_row(method, dataset, args, seed, checkpoints, backbones)
                    for method, seed, checkpoints in jobs)
    failures = []
    progress = tqdm(outcomes, total=len(jobs), desc="rows", unit="row", disable=None)
    try:
        for name, seed, checkpoints, record, error in progress:
            progress.set_postfix_str(f"{name}, seed {seed}")
            if error is not None:
                failures.append((f"{name} (seed {seed})", error))
                continue
            store.write(record)
            _remove_checkpoints(checkpoints)
            log.info("%s, seed %d: done in %.1f s", name, seed, record["fit_time"])
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished records are kept in {store.root}; run the same command "
              "again to resume.", file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None
    return failures


def _remove_checkpoints(folder):
    """Delete a finished row's checkpoints, and the checkpoints folder once it is empty."""
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.parent.rmdir()
    except OSError:  # other rows' checkpoints are still there
        pass


def _check_run_folder(store, source):
    """Refuse, before anything runs, a run folder that cannot hold the run's records.

    It cannot where it, or a folder above it, is a file; nor inside the dataset's own
    folder, whose images it would join at the next load.
    """
    from .datasets import BUILTIN_DATASETS

    root = store.root.absolute()
    blocking = next((path for path in (root, *root.parents) if path.exists()), root)
    if not blocking.is_dir():
        raise DataError(f"--out {store.root}: {blocking} is a file; give a folder for the "
                        "run's records.")
    if source in BUILTIN_DATASETS or not Path(source).is_dir():
        return
    images = Path(source).resolve()
    if root.resolve().is_relative_to(images):
        raise DataError(f"Run folder {store.root} lies inside the dataset folder {images}, whose "
                        "images it would join. Pass --out DIR outside it.")


def _check_same_dataset(store, dataset):
    """Refuse to add to a run folder that holds records of other images of the same name."""
    for record in store.records():
        if record["dataset"] == dataset.name and record.get(
                "dataset_digest", dataset.digest) != dataset.digest:
            raise DataError(
                f"{store.root} holds a record of {record['method']} on another dataset also "
                f"named {dataset.name!r}: its images or labels differ from these. Pass --out "
                "DIR to keep both runs apart, or delete that folder's records to start over."
            )


def run_seeds(args):
    """The seeds a ``run`` fits every row with: ``--seeds``, or the one ``--seed``."""
    return args.seeds or [args.seed]


def _run_row(method, dataset, args, seed, checkpoints, backbones=None):
    """One row at one seed: (name, seed, checkpoint folder, record or None, error or None)."""
    from .harness import run_method

    try:
        record = run_method(method, dataset, profile=args.profile, seed=seed,
                            n_jobs=args.n_jobs, checkpoint_dir=checkpoints,
                            fitted_backbones=backbones)
    except Exception as exc:  # one failing method must not stop the others
        log.debug("%s failed", method.name, exc_info=True)
        return method.name, seed, checkpoints, None, f"{type(exc).__name__}: {exc}"
    return method.name, seed, checkpoints, record, None


def cluster_command(args):
    """Cluster the images of a folder or archive and write assignments and contact sheets."""
    from .cluster import cluster_images
    from .datasets import load_images

    check_profile(args.profile)
    (method,) = get_methods([args.method])
    dataset = load_images(args.path, cache_dir=args.cache_dir, image_size=args.image_size,
                          skip_bad=args.skip_bad)
    out_dir = args.out or Path("runs") / f"{dataset.name}-cluster-{method.name}"
    summary = cluster_images(method, dataset, out_dir=out_dir, profile=args.profile,
                             seed=args.seed, n_clusters=args.clusters)
    learned = (f" (the method learned from {summary['n_fitted']} of them, the profile's limit)"
               if summary["n_fitted"] < summary["n_images"] else "")
    print(f"{summary['n_images']} images in {summary['n_clusters']} clusters{learned}, written "
          f"to {out_dir}: assignments.csv, cluster-NN.png, cluster-sizes.png")
    print(f"cluster sizes: {summary['sizes']}")
    if "nmi" in summary:
        print("against the class folders: " + ", ".join(
            f"{name.upper()} {summary[name]:.4f}" for name in ("nmi", "ari", "acc")))
    return 0


def report_command(args):
    """Write ``results.md`` of a run folder and print it."""
    store = ResultStore(args.run_dir)
    if not store.records_dir.is_dir():
        raise DataError(f"{args.run_dir} holds no records folder; is it a run folder?")
    print(write_report(store, title=args.run_dir.name))
    return 0


def write_report(store, *, title):
    """Render the plots and tables of a run folder into its ``results.md``; return the text.

    The text of the folder's ``notes.md``, if it has one (how the records were made, say),
    opens the report: ``results.md`` itself is rewritten from the records every time.
    """
    from results import render_plots, render_report

    store.root.mkdir(parents=True, exist_ok=True)
    plots = render_plots(store.records(), store.root)
    report = render_report(store.to_frame(), title=title, plots=plots)
    notes = store.root / NOTES_FILE
    if notes.is_file():
        report = f"{notes.read_text().rstrip()}\n\n{report}"
    with atomic_write(store.root / "results.md") as file:
        file.write(report)
    return report
