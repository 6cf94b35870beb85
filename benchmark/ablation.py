"""Ablation of the guards against collapsing pseudo-labels, one at a time and combined.

``python -m benchmark.ablation --dataset digits --seeds 0,1,2 --out results/ablation-digits``

Each variant is a registered pseudo-label row (``uic-<arch>-<input>``) with some of
:class:`~estimators.TorchPseudoLabelClassifier`'s guards switched on, at the row's budget of
images seen (K views fill a batch of the same size, so they cost nothing more). Every variant
runs through the harness like a row of ``run``, scoring the test images after every epoch for
the per-epoch NMI plots (never training on them), into one run folder whose report the
standard tables and plots render.
"""

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from results import ResultStore

from .arguments import comma_separated, positive_int, seed_list, with_flags
from .cli import DATA_SEED, write_report
from .datasets import DataError, load_dataset
from .harness import run_method
from .registry import get_methods

log = logging.getLogger(__name__)

# Each guard alone, as issue 17 names them, with its setting; variants join them with "+".
GUARDS = {
    "views": {"n_views": 4},
    "sinkhorn": {"assignment": "sinkhorn"},
    "entropy": {"entropy_weight": 1.0},
    "teacher": {"teacher_momentum": 0.5},
    # IIC's over-clustering heads are 5 to 7 times K wide: 5 times the 10 classes here
    "overcluster": {"n_overclusters": 50},
}
# The study's configuration: the registered row without the balanced sampler.
STUDY = "study"
PLAIN = "plain"
DEFAULT_VARIANTS = (STUDY, PLAIN, *GUARDS)


def variant_settings(name):
    """Settings a variant adds to its row: "plain" none, "study" no balanced sampler, else
    the guards its name joins with "+" ("sinkhorn+entropy").

    Parameters
    ----------
    name : str
        The variant.

    Returns
    -------
    settings : dict
        Parameters of the estimator.

    Examples
    --------
    >>> variant_settings("sinkhorn+views")
    {'assignment': 'sinkhorn', 'n_views': 4}
    """
    if name == PLAIN:
        return {}
    if name == STUDY:
        return {"balanced_sampler": False}
    settings = {}
    for guard in name.split("+"):
        if guard not in GUARDS:
            raise DataError(f"Unknown guard {guard!r} in variant {name!r}; guards: "
                            f"{', '.join(GUARDS)}, joined by '+', or {STUDY!r} or {PLAIN!r}.")
        settings.update(GUARDS[guard])
    return settings


def variant(method, name, profile):
    """Row `method` with variant `name`'s settings added to its `profile` settings."""
    settings = {**method.settings(profile), **variant_settings(name)}
    return replace(method, name=f"{method.name}+{name}",
                   description=f"{method.description}; variant {name}",
                   profiles={**method.profiles, profile: settings})


def main(argv=None):
    """Run every variant of every row at every seed; write the report; 0 on success."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        rows = get_methods(args.rows)
        variants = [variant(row, name, args.profile) for row in rows for name in args.variants]
        dataset = load_dataset(args.dataset, cache_dir=args.cache_dir, limit=args.limit,
                               seed=DATA_SEED)
    except (DataError, KeyError) as error:
        print(f"error: {with_flags(error)}", file=sys.stderr)
        return 2
    store = ResultStore(args.out)
    for seed in args.seeds:
        for method in variants:
            key = (method.name, dataset.name, args.profile, seed)
            if store.has(*key):
                log.info("%s, seed %d: finished earlier, kept", method.name, seed)
                continue
            record = run_method(method, dataset, profile=args.profile, seed=seed,
                                checkpoint_dir=store.checkpoint_dir(*key), monitor=True)
            store.write(record)
            log.info("%s, seed %d: NMI %.3f in %.0f s", method.name, seed, record["nmi_test"],
                     record["fit_time"])
    print(write_report(store, title=f"Guards against collapse: {dataset.name}, {args.profile}"))
    return 0


def _parser():
    parser = argparse.ArgumentParser(prog="python -m benchmark.ablation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=comma_separated, default=["uic-fast-sobel"],
                        help="pseudo-label rows to vary (default uic-fast-sobel)")
    parser.add_argument("--variants", type=comma_separated, default=list(DEFAULT_VARIANTS),
                        help=f"variants: {STUDY}, {PLAIN}, or guards joined by '+' "
                             f"({', '.join(GUARDS)}); default each alone")
    parser.add_argument("--seeds", type=seed_list, default=[0],
                        help="comma-separated seeds (default 0)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--dataset", default="digits", help="digits, cifar10 or a PATH")
    parser.add_argument("--cache-dir", type=Path, help="where decoded image trees are cached")
    parser.add_argument("--limit", type=positive_int, help="training images at most")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
