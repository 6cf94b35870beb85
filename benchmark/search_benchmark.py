"""Benchmark the tuners on the study's grids: GA vs exhaustive, structure-aware vs plain.

``python -m benchmark.search_benchmark --dataset digits --out results/search-digits.md``

Features are the classical path's (scale, flatten, PCA 99%), computed once per dataset so
that only the searches are timed. Every search uses the same stratified folds.
"""

import argparse
import os
import platform
import time
from datetime import date

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold

from features import ImageFlattener, make_pca
from search import SEARCH_SPACES, GASearchCV, clear_cache, count_fits, search_space, structured

from .arguments import DATA_FLAGS, names_among, with_flags
from .datasets import DataError, load_dataset
from .markdown import command_line, load_sentence, markdown_table, write_report
from .registry import CLASSICAL_MODELS


def pca_features(dataset, seed=0):
    """Training images as the classical path sees them: scaled, flattened, PCA(99%)."""
    flat = ImageFlattener().fit_transform(dataset.X_train)
    return make_pca(random_state=seed).fit_transform(flat), dataset.y_train


def counted_fit(search, X, y):
    """Fit a search from a cold cache; return its fits (candidates x folds), the fits its
    shared-work estimators computed (all of them for other estimators) and its wall time."""
    clear_cache()
    with count_fits() as shared:
        start = time.perf_counter()
        search.fit(X, y)
        seconds = time.perf_counter() - start
    fits = len(search.cv_results_["params"]) * search.n_splits_
    return fits, shared.computed if shared.requested else fits, seconds


def timed_search(search, X, y):
    """Fit a search; return its best CV score, number of fits, fits computed and wall time.

    The search runs without its refit on the whole training set, which every tuner pays
    once: what is counted and timed is the search itself.
    """
    search.set_params(refit=False)
    fits, computed, seconds = counted_fit(search, X, y)
    return {
        "best CV score": search.best_score_,
        "fits": fits,
        "fits computed": computed,
        "seconds": seconds,
        "best params": search.best_params_,
    }


def structured_versus_plain(X, y, model_name, *, folds, grid):
    """Rows comparing plain GridSearchCV with the shared-work estimators on one grid."""
    model = CLASSICAL_MODELS[model_name][1](0, None)
    plain_search = GridSearchCV(clone(model), grid, cv=folds)
    shared_search = GridSearchCV(structured(model), grid, cv=folds)
    plain, shared = timed_search(plain_search, X, y), timed_search(shared_search, X, y)
    identical = all(
        np.array_equal(plain_search.cv_results_[key], shared_search.cv_results_[key])
        for key in plain_search.cv_results_ if key.startswith("split") or key == "mean_test_score"
    )
    return [
        {"model": model_name, "search": "plain", **plain},
        {"model": model_name, "search": "structure-aware", **shared,
         "identical scores": identical, "speed-up": plain["seconds"] / shared["seconds"]},
    ]


def ga_versus_grid(X, y, model_name, *, seeds, folds, ga_settings):
    """Rows comparing exhaustive search with the GA (one row per GA seed) on the paper grid."""
    model = CLASSICAL_MODELS[model_name][1](0, None)
    grid = search_space(model_name, "paper")
    exhaustive = timed_search(GridSearchCV(structured(model), grid, cv=folds), X, y)
    rows = [{"model": model_name, "search": "exhaustive", "seed": "", **exhaustive}]
    # a population of about the square root of the grid keeps the GA well under its size
    population = ga_settings["population_size"] or max(3, round(len(ParameterGrid(grid)) ** 0.5))
    for seed in seeds:
        ga = GASearchCV(structured(model), grid, cv=folds, random_state=seed,
                        **{**ga_settings, "population_size": population})
        result = timed_search(ga, X, y)
        result["gap to exhaustive"] = exhaustive["best CV score"] - result["best CV score"]
        result["fits / exhaustive"] = result["fits"] / exhaustive["fits"]
        rows.append({"model": model_name, "search": "GA", "seed": seed, **result})
    return rows


MODEL_NAMES = names_among(SEARCH_SPACES, "model")


def _model_names_or_none(text):
    return MODEL_NAMES(text) if text else []


def main(argv=None):
    """Run the benchmark and write its markdown report."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.search_benchmark",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", help="as for run --dataset (digits)")
    parser.add_argument("--limit", type=int, help="keep N training images (seeded, stratified)")
    parser.add_argument("--models", default=["svm", "knn"], type=MODEL_NAMES,
                        help="models tuned by both the GA and the grid (default svm,knn)")
    parser.add_argument("--seeds", default="0,1,2", help="GA seeds, comma-separated (0,1,2)")
    parser.add_argument("--folds", type=int, default=3, help="cross-validation folds (3)")
    parser.add_argument("--population", type=int, help="default: sqrt of the grid's size")
    parser.add_argument("--generations", type=int, default=8, help="GA generations at most (8)")
    parser.add_argument("--patience", type=int, default=2,
                        help="GA generations without a better score before it stops (2)")
    parser.add_argument("--structured", default=["knn", "rf"],
                        type=_model_names_or_none,
                        help="models whose paper grid is searched plain and structure-aware "
                             '(default knn,rf; "" for none)')
    parser.add_argument("--rf-trees", default="10,100,200,500",
                        help="n_estimators of the RF grid in the structured comparison")
    parser.add_argument("--out", required=True, help="markdown file to write")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    try:
        dataset = load_dataset(args.dataset, limit=args.limit)
    except DataError as exc:
        parser.error(with_flags(exc, {name: DATA_FLAGS[name] for name in ("limit", "source")}))
    X, y = pca_features(dataset)
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=0)
    ga_settings = {"population_size": args.population, "generations": args.generations,
                   "patience": args.patience}
    rows = []
    for model_name in args.models:
        rows += ga_versus_grid(X, y, model_name, seeds=[int(s) for s in args.seeds.split(",")],
                               folds=folds, ga_settings=ga_settings)
    structured_rows = []
    for model_name in args.structured:
        grid = search_space(model_name, "paper")
        if model_name == "rf":
            grid["n_estimators"] = [int(n) for n in args.rf_trees.split(",")]
        structured_rows += structured_versus_plain(X, y, model_name, folds=folds, grid=grid)
    structured_section = [
        "## Structure-aware vs plain GridSearchCV (paper grids)",
        f"Random forest grid with n_estimators {args.rf_trees} (the study's 1000 and 5000 "
        "trees are left out to keep the plain search affordable).",
        markdown_table(structured_rows),
    ] if structured_rows else []
    write_report(args.out, [
        f"# Tuners on the study's grids: {dataset.name}",
        command_line("search_benchmark", argv),
        f"Measured {date.today()} on {platform.machine()} with {os.cpu_count()} CPUs, "
        f"{len(X)} training images, {X.shape[1]} PCA features, {args.folds}-fold CV. "
        f"GA: population {args.population or 'sqrt(grid size)'}, at most "
        f"{args.generations} generations, patience {args.patience}. {load_sentence(load_before)}",
        "## GA vs exhaustive search (paper grids)",
        "Both searches use the structure-aware estimators; *fits* counts candidates x folds, "
        "*fits computed* the fits that work sharing could not avoid. The GA scores each model "
        "once: a candidate that differs from a scored one only where the model cannot "
        "(kNN's `algorithm`, a linear SVM's `gamma`) takes its score without a fit.",
        markdown_table(rows),
        *structured_section,
    ])


if __name__ == "__main__":
    main()
