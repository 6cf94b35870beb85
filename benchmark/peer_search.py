"""Benchmark the genetic tuner against sklearn-genetic-opt's GASearchCV, on the same spaces.

``pip install -e ".[peers]" && python -m benchmark.peer_search --rf-trees 10,100,200
--out results/peer-search-digits.md``

Both tuners search the same model over the same space with the same folds, population and
generations, on the classical path's features (scale, flatten, PCA 99%, computed once);
each keeps its own operators and defaults, as a user of either would. Per space and seed:
the best cross-validation score, the test score of the refitted best candidate, the number
of fits (candidates x folds, a candidate scored again taken from the tuner's cache), the fits
computed (the toolkit's shared-work estimators compute a fit once for the candidates that are
provably the same model, or a prefix of one; its count includes the refit) and the wall time
of search and refit.
sklearn-genetic-opt is an extra of this script, never a dependency of the toolkit.
"""

import argparse
import os
import random
import sys
import time
from datetime import date

import numpy as np
from sklearn.model_selection import StratifiedKFold

from search import FloatRange, GASearchCV, search_space, structured

from .arguments import DATA_FLAGS, seed_list, with_flags
from .datasets import DataError, load_dataset
from .harness import cpu_model
from .markdown import command_line, load_sentence, markdown_table, write_report
from .registry import CLASSICAL_MODELS
from .search_benchmark import counted_fit

# The continuous space: an RBF SVM's C and gamma over orders of magnitude.
CONTINUOUS_SVM = {"kernel": ["rbf"], "C": FloatRange(1e-2, 1e3, log=True),
                  "gamma": FloatRange(1e-5, 1e-1, log=True)}


def spaces(rf_trees):
    """Space name -> (model name, space): the study's kNN, SVM and RF grids, and SVM's ranges.

    The random forest's grid takes `rf_trees` as its ``n_estimators``.
    """
    forest = search_space("rf", "paper")
    forest["n_estimators"] = list(rf_trees)
    return {
        "knn": ("knn", search_space("knn", "paper")),
        "svm": ("svm", search_space("svm", "paper")),
        "rf": ("rf", forest),
        "svm-continuous": ("svm", CONTINUOUS_SVM),
    }


def peer_space(space):
    """`space` in sklearn-genetic-opt's terms: lists become categories, ranges continuous."""
    from sklearn_genetic.space import Categorical, Continuous

    def dimension(values):
        if isinstance(values, FloatRange):
            return Continuous(values.low, values.high,
                              distribution="log-uniform" if values.log else "uniform")
        return Categorical(list(values))

    return {name: dimension(values) for name, values in space.items()}


def run_ours(model, space, X, y, X_test, y_test, *, folds, population, generations, seed):
    """Our GASearchCV on the shared-work twin of `model`: scores, fits and seconds."""
    search = GASearchCV(structured(model), space, cv=folds, population_size=population,
                        generations=generations, random_state=seed)
    fits, computed, seconds = counted_fit(search, X, y)
    return _outcome(search, X_test, y_test, fits=fits, computed=computed, seconds=seconds)


def run_peer(model, space, X, y, X_test, y_test, *, folds, population, generations, seed):
    """sklearn-genetic-opt's GASearchCV on `model`: scores, fits and seconds.

    It draws from Python's and NumPy's global generators, seeded here with `seed`.
    """
    from sklearn_genetic import GASearchCV as PeerGASearchCV

    random.seed(seed)
    np.random.seed(seed)
    search = PeerGASearchCV(model, cv=folds, param_grid=peer_space(space),
                            population_size=population, generations=generations, verbose=False)
    start = time.perf_counter()
    search.fit(X, y)
    seconds = time.perf_counter() - start
    fits = len(search.fitness_cache) * search.n_splits_
    return _outcome(search, X_test, y_test, fits=fits, computed=fits, seconds=seconds)


def _outcome(search, X_test, y_test, *, fits, computed, seconds):
    return {
        "best CV score": search.best_score_,
        "test score": search.score(X_test, y_test),
        "fits": fits,
        "fits computed": computed,
        "seconds": seconds,
        "best params": _rounded(search.best_params_),
    }


def _rounded(params):
    return {name: float(f"{value:.3g}") if isinstance(value, float) else value
            for name, value in params.items()}


TUNERS = {"toolkit": run_ours, "sklearn-genetic-opt": run_peer}


def compare(space_name, model_name, space, data, *, seeds, folds, population, generations):
    """One row per tuner and seed on one space."""
    model = CLASSICAL_MODELS[model_name][1](0, None)
    rows = []
    for seed in seeds:
        for tuner, run in TUNERS.items():
            outcome = run(model, space, *data, folds=folds, population=population,
                          generations=generations, seed=seed)
            rows.append({"space": space_name, "tuner": tuner, "seed": seed, **outcome})
            print(f"{space_name} {tuner} seed {seed}: {outcome}", file=sys.stderr, flush=True)
    return rows


def summary(rows):
    """Per space and tuner: three-seed means of score, test score, fits and seconds."""
    keys = ("best CV score", "test score", "fits", "fits computed", "seconds")
    groups = {}
    for row in rows:
        groups.setdefault((row["space"], row["tuner"]), []).append(row)
    return [
        {"space": space, "tuner": tuner, "seeds": len(group),
         **{key: _mean_std([row[key] for row in group]) for key in keys}}
        for (space, tuner), group in groups.items()
    ]


def _mean_std(values):
    return f"{np.mean(values):.4g} ± {np.std(values):.2g}"


def main(argv=None):
    """Run the comparison and write its markdown report."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.peer_search",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", help="as for run --dataset (digits)")
    parser.add_argument("--limit", type=int, help="keep N training images (seeded, stratified)")
    parser.add_argument("--spaces", default="knn,svm,rf,svm-continuous",
                        help="spaces to search (knn,svm,rf,svm-continuous)")
    parser.add_argument("--seeds", default=[0, 1, 2], type=seed_list,
                        help="seeds of both tuners (0,1,2)")
    parser.add_argument("--folds", type=int, default=3, help="cross-validation folds (3)")
    parser.add_argument("--population", type=int, default=10, help="population size (10)")
    parser.add_argument("--generations", type=int, default=10, help="generations (10)")
    parser.add_argument("--rf-trees", default="10,100,200,500",
                        help="n_estimators of the RF grid (the study's 1000 and 5000 left out)")
    parser.add_argument("--out", required=True, help="markdown file to write")
    args = parser.parse_args(argv)

    available = spaces(int(n) for n in args.rf_trees.split(","))
    chosen = args.spaces.split(",")
    unknown = [name for name in chosen if name not in available]
    if unknown:
        parser.error(f"unknown spaces {unknown}; valid: {', '.join(available)}")
    try:
        dataset = load_dataset(args.dataset, limit=args.limit)
    except DataError as exc:
        parser.error(with_flags(exc, {name: DATA_FLAGS[name] for name in ("limit", "source")}))
    load_before = os.getloadavg()[0]
    X, y, X_test, y_test = test_features(dataset)
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=0)
    rows = []
    for name in chosen:
        model_name, space = available[name]
        rows += compare(name, model_name, space, (X, y, X_test, y_test), seeds=args.seeds,
                        folds=folds, population=args.population, generations=args.generations)
    write_report(args.out, [
        f"# Genetic search: the toolkit against sklearn-genetic-opt, {dataset.name}",
        command_line("peer_search", argv),
        f"Measured {date.today()} on {cpu_model()} ({os.cpu_count()} CPUs), {len(X)} training "
        f"and {len(X_test)} test images, {X.shape[1]} PCA features, "
        f"{args.folds}-fold CV, population {args.population}, {args.generations} generations, "
        "each tuner with its own operators (the toolkit: crossover 0.5, mutation 0.2, "
        "patience 5 generations; sklearn-genetic-opt: eaMuPlusLambda, crossover 0.2, "
        "mutation 0.8). The toolkit searches the shared-work twin of each model; its *fits "
        "computed* include the refit. "
        + load_sentence(load_before),
        "## Means over seeds",
        markdown_table(summary(rows)),
        "## Every run",
        markdown_table(rows),
    ])


def test_features(dataset, seed=0):
    """Training and test images through the classical path's PCA, fitted on training images."""
    from features import ImageFlattener, make_pca

    flatten = ImageFlattener()
    pca = make_pca(random_state=seed)
    X = pca.fit_transform(flatten.fit_transform(dataset.X_train))
    X_test = pca.transform(flatten.transform(dataset.X_test))
    return X, dataset.y_train, X_test, dataset.y_test


if __name__ == "__main__":
    main()
