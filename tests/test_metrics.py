import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from estimators import cluster_sizes, clustering_accuracy, clustering_scores


def test_hungarian_accuracy_is_one_for_any_permuted_labelling():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 500)
    permutation = rng.permutation(10)
    assert clustering_accuracy(y, permutation[y]) == 1.0


def test_hungarian_accuracy_uses_the_best_one_to_one_mapping():
    y_true = [0, 0, 0, 1, 1, 1, 2, 2]
    y_pred = [1, 1, 0, 0, 0, 0, 2, 2]  # best: 1->0, 0->1, 2->2 gives 2 + 3 + 2 right
    assert clustering_accuracy(y_true, y_pred) == pytest.approx(7 / 8)
    # one cluster holding everything can match only one class
    assert clustering_accuracy(y_true, [5] * 8) == pytest.approx(3 / 8)


def test_scores_equal_scikit_learn_and_count_empty_clusters():
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 4, 300), rng.integers(0, 5, 300)
    scores = clustering_scores(y_true, y_pred, n_clusters=7)
    assert scores["nmi"] == normalized_mutual_info_score(y_true, y_pred)
    assert scores["ari"] == adjusted_rand_score(y_true, y_pred)
    assert scores["empty_clusters"] == 2
    assert cluster_sizes([0, 2, 2], 4).tolist() == [1, 0, 2, 0]
