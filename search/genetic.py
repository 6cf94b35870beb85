"""Genetic hyper-parameter search, as a scikit-learn search estimator.

:class:`GASearchCV` is :class:`~sklearn.model_selection.GridSearchCV` with a
different ``_run_search``: a DEAP genetic algorithm proposes the candidates, a
generation at a time, and ``BaseSearchCV`` fits, scores and records them.
"""

import math
import random
from dataclasses import dataclass
from numbers import Integral, Real
from operator import attrgetter

import numpy as np
from deap import base, tools
from sklearn.utils import check_random_state

from ._sklearn_compat import BaseSearchCV, Interval
from .structured import model_key

__all__ = ["FloatRange", "GASearchCV", "IntRange"]


class _FitnessMax(base.Fitness):
    weights = (1.0,)


class _Individual(list):
    """A candidate's genes, one per dimension, and its fitness.

    What ``deap.creator.create("Individual", list, fitness=...)`` makes, defined here: the
    creator's classes live in one namespace that other DEAP users (sklearn-genetic-opt)
    redefine and delete.
    """

    def __init__(self, genes=()):
        super().__init__(genes)
        self.fitness = _FitnessMax()

# Scale of a numeric mutation's step, as a fraction of the range.
_MUTATION_SCALE = 0.1
# Mutations tried on an offspring that repeats a seen candidate before it is
# kept as it is (in a nearly exhausted finite space, all may repeat).
_NOVELTY_TRIES = 10


@dataclass(frozen=True)
class IntRange:
    """Integers from `low` to `high`, both included, searched by GASearchCV.

    A gene drawn from it starts uniform over the range and mutates by a
    rounded Cauchy step, clipped to the range.

    Parameters
    ----------
    low : int
        Smallest value.

    high : int
        Largest value, at least `low`.

    Examples
    --------
    >>> IntRange(1, 15)
    IntRange(low=1, high=15)
    """

    low: int
    high: int

    def __post_init__(self):
        if not all(isinstance(v, Integral) for v in (self.low, self.high)):
            raise TypeError(f"IntRange bounds must be integers, got {self}.")
        if self.low > self.high:
            raise ValueError(f"IntRange needs low <= high, got {self}.")

    @property
    def _n_values(self):
        return self.high - self.low + 1

    def _sample(self, rng):
        return rng.randint(self.low, self.high)

    def _mutate(self, gene, rng):
        step = _cauchy_step(rng, max(1.0, _MUTATION_SCALE * (self.high - self.low)))
        return min(max(round(gene + step), self.low), self.high)

    def _decode(self, gene):
        return int(gene)


@dataclass(frozen=True)
class FloatRange:
    """Real numbers from `low` to `high`, searched by GASearchCV.

    A gene drawn from it starts uniform over the range (over its logarithm if
    `log`) and mutates by a Cauchy step on the same scale, clipped to the
    range.

    Parameters
    ----------
    low : float
        Smallest value; positive if `log`.

    high : float
        Largest value, greater than `low`.

    log : bool, default=False
        Search the logarithm of the value: right for scales such as ``C`` or
        ``gamma`` that matter by orders of magnitude.

    Examples
    --------
    >>> FloatRange(1e-3, 1e3, log=True)
    FloatRange(low=0.001, high=1000.0, log=True)
    """

    low: float
    high: float
    log: bool = False

    def __post_init__(self):
        if not all(isinstance(v, Real) for v in (self.low, self.high)):
            raise TypeError(f"FloatRange bounds must be real numbers, got {self}.")
        if not self.low < self.high:
            raise ValueError(f"FloatRange needs low < high, got {self}.")
        if self.log and self.low <= 0:
            raise ValueError(f"FloatRange with log=True needs low > 0, got {self}.")

    _n_values = math.inf

    def _warp(self, value):
        return math.log(value) if self.log else value

    def _unwarp(self, value):
        value = math.exp(value) if self.log else value
        # exp(log(x)) can miss x by an ulp, outside the range.
        return min(max(value, self.low), self.high)

    def _sample(self, rng):
        return self._unwarp(rng.uniform(self._warp(self.low), self._warp(self.high)))

    def _mutate(self, gene, rng):
        low, high = self._warp(self.low), self._warp(self.high)
        step = _cauchy_step(rng, _MUTATION_SCALE * (high - low))
        # Clipped before unwarping: exp of a long step would overflow.
        return self._unwarp(min(max(self._warp(gene) + step, low), high))

    def _decode(self, gene):
        return float(gene)


class _Categorical:
    """A list of options; its gene is an index into the list."""

    def __init__(self, options):
        # cv_results_["params"] should hold plain Python values, not numpy
        # scalars from a user's np.array of options.
        self.options = [v.item() if isinstance(v, np.generic) else v for v in options]

    @property
    def _n_values(self):
        return len(self.options)

    def _sample(self, rng):
        return rng.randrange(len(self.options))

    def _mutate(self, gene, rng):
        """Reset to any other option, drawn uniformly."""
        if len(self.options) == 1:
            return gene
        other = rng.randrange(len(self.options) - 1)
        return other + (other >= gene)

    def _decode(self, gene):
        return self.options[gene]


def _cauchy_step(rng, scale):
    """A step drawn from a Cauchy distribution of the given scale, centred on 0.

    Its heavy tails jump, now and then, across the range: a population that converged on
    a local optimum of a continuous space (an RBF SVM's low-gamma ridge) still reaches
    the better one, which Gaussian steps of the same scale almost never do (Yao, Liu and
    Lin 1999, "Evolutionary programming made faster").
    """
    return scale * math.tan(math.pi * (rng.random() - 0.5))


def _dimension(name, values):
    """Turn one entry of a param_space into the object that handles its gene."""
    if isinstance(values, (IntRange, FloatRange)):
        return values
    if isinstance(values, str) or not isinstance(values, (list, tuple, np.ndarray)):
        raise TypeError(
            f"param_space[{name!r}] must be a list of values, an IntRange or a "
            f"FloatRange, got {values!r}."
        )
    if len(values) == 0:
        raise ValueError(f"param_space[{name!r}] is an empty list.")
    return _Categorical(values)


def _random_individual(dimensions, rng):
    return _Individual(dim._sample(rng) for dim in dimensions)


def _uniform_crossover(first, second, rng):
    """Swap each gene between two individuals with probability 1/2."""
    for i in range(len(first)):
        if rng.random() < 0.5:
            first[i], second[i] = second[i], first[i]
    return first, second


def _mutate_one_gene(individual, dimensions, rng):
    """Mutate one gene, drawn at random, the way its dimension mutates."""
    i = rng.randrange(len(individual))
    individual[i] = dimensions[i]._mutate(individual[i], rng)
    return (individual,)


def _tournament(population, k, tournsize, rng):
    """Select `k` individuals, each the fittest of `tournsize` drawn at random."""
    fittest = attrgetter("fitness")
    return [
        max((rng.choice(population) for _ in range(tournsize)), key=fittest)
        for _ in range(k)
    ]


def _fitness(score):
    """Fitness of a mean test score: the worst if the score is not finite."""
    # A candidate whose fit failed scores error_score, NaN by default: it
    # must lose every tournament rather than compare as unordered.
    return score if math.isfinite(score) else -math.inf


def _score(individual):
    """Score of an individual for the logbook: NaN if its fits failed."""
    score = individual.fitness.values[0]
    return score if math.isfinite(score) else math.nan


def _statistics():
    stats = tools.Statistics(key=_score)
    stats.register("mean", np.nanmean)
    stats.register("std", np.nanstd)
    stats.register("max", np.nanmax)
    return stats


class GASearchCV(BaseSearchCV):
    """Genetic-algorithm search over a model's hyper-parameters.

    A population of candidates evolves by tournament selection, uniform
    crossover and mutation; the best candidates found so far (the elites)
    pass unchanged to the next generation. The fitness of a candidate is its
    mean cross-validated score. Each generation's unseen candidates are
    evaluated together, so ``n_jobs`` and the active joblib backend (local
    processes, or Dask) spread their fits. No candidate is fitted twice, nor
    is a candidate that a structure-aware estimator
    (:func:`~search.structured.structured`) proves to fit the model of one
    already scored (a kNN that differs only in `algorithm`): it takes that
    score and does not appear in ``cv_results_``.

    Everything else (cross-validation, scoring, refit, ``cv_results_``)
    behaves as in :class:`~sklearn.model_selection.GridSearchCV`.

    Parameters
    ----------
    estimator : estimator object
        The estimator to tune; cloned for every fit.

    param_space : dict
        Parameter name -> values to search: a list (or tuple, or 1-d array)
        of options, an :class:`IntRange` or a :class:`FloatRange`. Names of
        a pipeline step's parameters carry its prefix (``"svc__C"``).

    scoring : str, callable, list, tuple or dict, default=None
        As in GridSearchCV. With several metrics, the fitness is the one that
        `refit` names.

    n_jobs : int, default=None
        Number of fits run in parallel; ``None`` means 1 unless in a
        :obj:`joblib.parallel_backend` context, ``-1`` means all processors.

    refit : bool, str or callable, default=True
        As in GridSearchCV. With several metrics it must be the name of the
        metric to maximise.

    cv : int, cross-validation generator or iterable, default=None
        As in GridSearchCV (5-fold by default). A shuffling splitter needs a
        fixed ``random_state``, or each generation is scored on other folds.

    verbose : int, default=0
        Above 0, also print one line of the logbook per generation.

    pre_dispatch : int or str, default="2*n_jobs"
        As in GridSearchCV.

    error_score : "raise" or numeric, default=np.nan
        Score of a fit that fails, or "raise" to raise its error. A candidate
        whose score is not finite has the worst fitness.

    return_train_score : bool, default=False
        As in GridSearchCV.

    population_size : int, default=10
        Number of candidates per generation.

    generations : int, default=20
        Largest number of generations, the first (random) one included.

    crossover_prob : float, default=0.5
        Probability that two consecutive selected candidates mate.

    mutation_prob : float, default=0.2
        Probability that a selected candidate mutates one of its genes:
        a list option is reset to another, a range value takes a Cauchy
        step whose scale is a tenth of the range (of its logarithm if
        ``log=True``; at least 1 for an :class:`IntRange`).

    tournament_size : int, default=3
        Number of candidates drawn for each tournament of the selection.

    elite_size : int, default=1
        Number of best candidates found so far copied unchanged into each
        generation; less than `population_size`.

    patience : int or None, default=5
        Stop after this many generations without a better best score.
        ``None`` runs all `generations`.

    random_state : int, RandomState instance or None, default=None
        Seeds the genetic algorithm (not the estimator nor `cv`): an int
        gives the same search, candidate for candidate, at every fit.

    Attributes
    ----------
    cv_results_ : dict of numpy (masked) ndarrays
        One row per candidate evaluated, in the order evaluated, as in
        GridSearchCV.

    best_estimator_ : estimator
        The estimator refitted on the whole data with the best parameters.
        Only if `refit` is not False.

    best_score_ : float
        Mean cross-validated score of the best candidate.

    best_params_ : dict
        Parameters of the best candidate.

    best_index_ : int
        Row of the best candidate in `cv_results_`.

    scorer_ : function or dict
        The scorer(s) used on held-out data.

    n_splits_ : int
        Number of cross-validation splits.

    refit_time_ : float
        Seconds taken to refit the best estimator.

    multimetric_ : bool
        Whether several metrics were scored.

    classes_ : ndarray of shape (n_classes,)
        Class labels, for a classifier with `refit`.

    n_features_in_ : int
        Number of features seen during fit, when `best_estimator_` has it.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during fit, when `best_estimator_` has it.

    logbook_ : deap.tools.Logbook
        One record per generation: ``gen``, ``n_new`` (candidates fitted for
        the first time), ``best`` (best score so far), and the ``mean``,
        ``std`` and ``max`` scores of the population (failed fits left out).

    n_generations_ : int
        Number of generations run.

    stop_reason_ : {"generations", "patience", "exhausted"}
        Why the search stopped: it ran all `generations`, its best score
        stalled for `patience` generations, or it evaluated every candidate
        of a finite `param_space`.

    See Also
    --------
    sklearn.model_selection.GridSearchCV : Evaluate every candidate of a grid.
    sklearn.model_selection.RandomizedSearchCV : Evaluate random candidates.
    search.grids.search_space : The study's search spaces.

    Notes
    -----
    Each candidate is a list of genes: an index into each list of options
    and a value for each range. Fits are what cost, so a selected offspring
    that repeats a candidate already scored mutates again (up to ten times)
    until it is new; each generation then brings about `population_size`
    minus `elite_size` new candidates, and a finite space is exhausted
    rather than resampled. The search stops early when the best score
    stalls (`patience`) or when a finite space is exhausted, so it may fit
    far fewer candidates than a grid.

    A run is a function of `random_state` and the scores: with a
    deterministic estimator and `cv`, one seed gives the same `cv_results_`
    whatever `n_jobs` or joblib backend.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.svm import SVC
    >>> from search import FloatRange, GASearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> space = {"C": FloatRange(0.1, 100, log=True), "kernel": ["linear", "rbf"]}
    >>> search = GASearchCV(SVC(), space, population_size=6, generations=3,
    ...                     random_state=0).fit(X, y)
    >>> print(search.best_score_ > 0.95)
    True
    >>> sorted(search.best_params_)
    ['C', 'kernel']
    """

    _parameter_constraints: dict = {
        **BaseSearchCV._parameter_constraints,
        "param_space": [dict],
        "population_size": [Interval(Integral, 1, None, closed="left")],
        "generations": [Interval(Integral, 1, None, closed="left")],
        "crossover_prob": [Interval(Real, 0, 1, closed="both")],
        "mutation_prob": [Interval(Real, 0, 1, closed="both")],
        "tournament_size": [Interval(Integral, 1, None, closed="left")],
        "elite_size": [Interval(Integral, 0, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator,
        param_space,
        *,
        scoring=None,
        n_jobs=None,
        refit=True,
        cv=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        error_score=np.nan,
        return_train_score=False,
        population_size=10,
        generations=20,
        crossover_prob=0.5,
        mutation_prob=0.2,
        tournament_size=3,
        elite_size=1,
        patience=5,
        random_state=None,
    ):
        super().__init__(
            estimator=estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_space = param_space
        self.population_size = population_size
        self.generations = generations
        self.crossover_prob = crossover_prob
        self.mutation_prob = mutation_prob
        self.tournament_size = tournament_size
        self.elite_size = elite_size
        self.patience = patience
        self.random_state = random_state

    def _run_search(self, evaluate_candidates):
        """Evolve the population, evaluating each generation's new candidates."""
        names, dimensions = self._check_search()
        space_size = math.prod(dim._n_values for dim in dimensions)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        rng = random.Random(int(seed))
        toolbox = self._toolbox(dimensions, rng)
        # The hall of fame keeps the best score even without elitism.
        hall_of_fame = tools.HallOfFame(max(self.elite_size, 1))
        stats = _statistics()
        logbook = tools.Logbook()
        logbook.header = ["gen", "n_new", "best", "mean", "std", "max"]
        scores = {}  # genes -> mean test score of the fitness metric
        models = {}  # model key -> genes of the candidate that scored it

        population = toolbox.population(n=self.population_size)
        stop_reason, best, stalled = "generations", -math.inf, 0
        for generation in range(self.generations):
            if generation > 0:
                population = self._breed(
                    population, hall_of_fame, set(scores), toolbox, rng
                )
            n_new = self._evaluate(
                population, names, dimensions, scores, models, evaluate_candidates
            )
            hall_of_fame.update(population)
            previous_best, best = best, hall_of_fame[0].fitness.values[0]
            stalled = 0 if best > previous_best else stalled + 1
            logbook.record(
                gen=generation,
                n_new=n_new,
                best=_score(hall_of_fame[0]),
                **stats.compile(population),
            )
            if self.verbose > 0:
                print(logbook.stream)
            if len(scores) == space_size:
                stop_reason = "exhausted"
                break
            if self.patience is not None and stalled >= self.patience:
                stop_reason = "patience"
                break

        self.logbook_ = logbook
        self.n_generations_ = generation + 1
        self.stop_reason_ = stop_reason

    def _check_search(self):
        """Validate what the parameter constraints cannot; return the genes."""
        if self.elite_size >= self.population_size:
            raise ValueError(
                f"elite_size ({self.elite_size}) must be less than "
                f"population_size ({self.population_size})."
            )
        if isinstance(self.scoring, (list, tuple, dict)) and not isinstance(
            self.refit, str
        ):
            raise ValueError(self._multimetric_refit_message())
        names = list(self.param_space)
        dimensions = [_dimension(name, self.param_space[name]) for name in names]
        return names, dimensions

    def _multimetric_refit_message(self):
        return (
            "GASearchCV maximises one metric: with multi-metric scoring, refit "
            f"must name it; got refit={self.refit!r}."
        )

    def _toolbox(self, dimensions, rng):
        """Register the genetic operators, all drawing from `rng`."""
        toolbox = base.Toolbox()
        toolbox.register("individual", _random_individual, dimensions, rng)
        toolbox.register("population", tools.initRepeat, list, toolbox.individual)
        toolbox.register("mate", _uniform_crossover, rng=rng)
        toolbox.register("mutate", _mutate_one_gene, dimensions=dimensions, rng=rng)
        toolbox.register(
            "select", _tournament, tournsize=self.tournament_size, rng=rng
        )
        return toolbox

    def _breed(self, population, hall_of_fame, seen, toolbox, rng):
        """Make the next generation: the elites, then selected offspring.

        An offspring that repeats a candidate in `seen` (or a sibling) mutates
        until it is new: a repeat costs no fit but teaches nothing, and a
        population that only repeats itself would stall the search.
        """
        elites = [toolbox.clone(ind) for ind in hall_of_fame[: self.elite_size]]
        selected = toolbox.select(population, len(population) - len(elites))
        offspring = [toolbox.clone(ind) for ind in selected]
        for first, second in zip(offspring[::2], offspring[1::2]):
            if rng.random() < self.crossover_prob:
                toolbox.mate(first, second)
        for individual in offspring:
            if rng.random() < self.mutation_prob:
                toolbox.mutate(individual)
            for _ in range(_NOVELTY_TRIES):
                if tuple(individual) not in seen:
                    break
                toolbox.mutate(individual)
            seen.add(tuple(individual))
        return elites + offspring

    def _evaluate(self, population, names, dimensions, scores, models, evaluate_candidates):
        """Set the population's fitness, fitting only candidates of unseen models.

        A candidate whose model (:func:`~search.structured.model_key`) was
        already scored, or is in this batch, takes that score. `models` maps
        each model key scored to its candidate's genes. Returns the number of
        candidates fitted.
        """
        new, twins = {}, {}
        for individual in population:
            genes = tuple(individual)
            if genes in scores or genes in new or genes in twins:
                continue
            params = {
                name: dim._decode(gene) for name, dim, gene in zip(names, dimensions, genes)
            }
            key = model_key(self.estimator, params)
            if key in models:
                twins[genes] = models[key]
            else:
                models[key] = genes
                new[genes] = params
        if new:
            results = evaluate_candidates(list(new.values()))
            # Results accumulate over calls: this generation's are the last rows.
            new_scores = results[self._fitness_key(results)][-len(new) :]
            scores.update(zip(new, new_scores.tolist()))
        scores.update({genes: scores[twin] for genes, twin in twins.items()})
        for individual in population:
            individual.fitness.values = (_fitness(scores[tuple(individual)]),)
        return len(new)

    def _fitness_key(self, results):
        """Name the column of `results` that the search maximises."""
        if isinstance(self.refit, str) and f"mean_test_{self.refit}" in results:
            return f"mean_test_{self.refit}"
        if "mean_test_score" in results:
            return "mean_test_score"
        # A callable scoring turned out to return several metrics.
        raise ValueError(self._multimetric_refit_message())
