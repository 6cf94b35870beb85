"""SimCLR's and SCAN's losses and SCAN's neighbour mining, against computations by hand."""

import math

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from estimators.losses import (
    class_balancing_weights,
    confident_targets,
    nt_xent,
    scan_loss,
    self_labelling_loss,
)
from estimators.neighbours import mine_neighbours, neighbour_accuracy


def softmax_rows(logits):
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def nt_xent_by_hand(z1, z2, temperature):
    views = [np.asarray(v, dtype=np.float64) for v in list(z1) + list(z2)]
    views = [v / math.sqrt(sum(x * x for x in v)) for v in views]
    n_views, n_pairs = len(views), len(z1)
    losses = []
    for i in range(n_views):
        positive = (i + n_pairs) % n_views
        scores = [float(views[i] @ views[k]) / temperature for k in range(n_views)]
        denominator = sum(math.exp(scores[k]) for k in range(n_views) if k != i)
        losses.append(-math.log(math.exp(scores[positive]) / denominator))
    return sum(losses) / n_views


# ----------------------------------------------------------------------------- NT-Xent


def test_nt_xent_matches_hand_computation():
    z1 = [[1.0, 0.5], [-0.3, 2.0], [0.7, -1.2]]
    z2 = [[0.8, 0.9], [0.1, 1.5], [-0.4, -1.0]]
    loss = nt_xent(torch.tensor(z1), torch.tensor(z2), temperature=0.5)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(nt_xent_by_hand(z1, z2, 0.5), abs=1e-6)


def test_nt_xent_is_lower_for_matching_pairs_than_shuffled_ones():
    z = 10 * torch.eye(4)
    assert nt_xent(z, z.clone()) < nt_xent(z, z[[1, 2, 3, 0]])


def test_nt_xent_works_in_float32_under_bfloat16_autocast():
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(2, 16, 32, generator=generator)
    expected = nt_xent(z1, z2, temperature=0.1)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = nt_xent(z1, z2, temperature=0.1)
        loss_of_bfloat16 = nt_xent(z1.bfloat16(), z2.bfloat16(), temperature=0.1)
    assert loss.dtype == loss_of_bfloat16.dtype == torch.float32
    assert float(loss) == pytest.approx(float(expected), abs=1e-6)
    by_hand = nt_xent_by_hand(z1.bfloat16().float().numpy(), z2.bfloat16().float().numpy(), 0.1)
    assert float(loss_of_bfloat16) == pytest.approx(by_hand, abs=1e-5)


# ----------------------------------------------------------------------------- SCAN


def test_scan_loss_matches_hand_computation():
    anchors = np.array([[2.0, 0.1, -1.0], [0.3, 1.5, 0.2], [-0.5, 0.0, 2.5], [1.0, 1.0, 0.0]])
    neighbours = np.array([[1.5, 0.4, 0.0], [-1.0, 2.0, 0.5], [0.0, -0.3, 1.0], [0.2, 2.0, 0.1]])
    total, consistency, entropy = scan_loss(torch.tensor(anchors, dtype=torch.float32),
                                            torch.tensor(neighbours, dtype=torch.float32),
                                            entropy_weight=5.0)
    p_anchors, p_neighbours = softmax_rows(anchors), softmax_rows(neighbours)
    expected_consistency = np.mean([-math.log(p_anchors[i] @ p_neighbours[i])
                                    for i in range(len(anchors))])
    mean_assignment = p_anchors.mean(axis=0)
    expected_entropy = -sum(p * math.log(p) for p in mean_assignment)
    assert float(consistency) == pytest.approx(expected_consistency, abs=1e-6)
    assert float(entropy) == pytest.approx(expected_entropy, abs=1e-6)
    assert float(total) == pytest.approx(expected_consistency - 5.0 * expected_entropy, abs=1e-5)


def test_scan_consistency_clamps_disjoint_predictions():
    _, consistency, _ = scan_loss(torch.tensor([[60.0, 0.0]]), torch.tensor([[0.0, 60.0]]))
    assert float(consistency) == pytest.approx(-math.log(1e-8), rel=1e-6)


def test_scan_entropy_term_rewards_balanced_assignments():
    n_clusters = 4
    balanced = 20 * torch.eye(n_clusters)
    collapsed = 20 * torch.eye(n_clusters)[[0, 0, 0, 0]]
    total_balanced, _, entropy_balanced = scan_loss(balanced, balanced)
    total_collapsed, _, entropy_collapsed = scan_loss(collapsed, collapsed)
    assert float(entropy_balanced) == pytest.approx(math.log(n_clusters), abs=1e-5)
    assert float(entropy_collapsed) == pytest.approx(0.0, abs=1e-5)
    assert total_balanced < total_collapsed


# ----------------------------------------------------------------------------- self-labelling

# Probabilities of a weak view: rows 0, 2 and 4 are above 0.99, row 1 is just below and row 3
# far below.
WEAK_PROBABILITIES = np.array([
    [0.995, 0.004, 0.001],
    [0.989, 0.010, 0.001],
    [0.002, 0.003, 0.995],
    [0.400, 0.300, 0.300],
    [0.9999, 0.00005, 0.00005],
])
STRONG_LOGITS = np.array([
    [1.0, 0.2, -0.5],
    [0.3, 0.3, 0.3],
    [-1.0, 0.5, 2.0],
    [0.0, 1.0, 0.0],
    [0.1, 0.9, -0.2],
])


def test_confident_targets_keep_only_predictions_above_threshold():
    targets, confident = confident_targets(torch.tensor(np.log(WEAK_PROBABILITIES)))
    assert confident.tolist() == [True, False, True, False, True]
    assert targets[confident].tolist() == [0, 2, 0]


def test_class_balancing_weights_are_inverse_frequencies():
    weights = class_balancing_weights(torch.tensor([0, 0, 0, 2]), n_classes=3)
    assert weights.tolist() == pytest.approx([4 / 3, 1.0, 4.0])


def test_self_labelling_loss_matches_hand_computation():
    loss, confident = self_labelling_loss(
        torch.tensor(np.log(WEAK_PROBABILITIES), dtype=torch.float32),
        torch.tensor(STRONG_LOGITS, dtype=torch.float32),
    )
    confident_rows, targets = [0, 2, 4], [0, 2, 0]
    assert torch.nonzero(confident).flatten().tolist() == confident_rows
    weight_of_class = {0: 3 / 2, 2: 3 / 1}
    log_probabilities = np.log(softmax_rows(STRONG_LOGITS))
    weighted = sum(-weight_of_class[t] * log_probabilities[row, t]
                   for row, t in zip(confident_rows, targets))
    expected = weighted / sum(weight_of_class[t] for t in targets)
    assert float(loss) == pytest.approx(expected, abs=1e-6)


def test_self_labelling_loss_without_confident_predictions_is_zero_and_differentiable():
    strong = torch.randn(6, 3, requires_grad=True)
    loss, confident = self_labelling_loss(torch.zeros(6, 3), strong)
    assert not confident.any()
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert strong.grad is not None and torch.isfinite(strong.grad).all()


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("loss_of", [
    lambda a, b: nt_xent(a, b),
    lambda a, b: scan_loss(a, b)[0],
    lambda a, b: self_labelling_loss(20 * b.detach(), a)[0],
])
def test_losses_give_finite_gradients(loss_of):
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(8, 5, generator=generator, requires_grad=True)
    b = torch.randn(8, 5, generator=generator, requires_grad=True)
    loss = loss_of(a, b)
    loss.backward()
    assert torch.isfinite(loss)
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- neighbours


def test_mine_neighbours_matches_scikit_learn_without_self():
    features = np.random.default_rng(0).normal(size=(80, 6))
    n_neighbours = 7
    indices = mine_neighbours(features, n_neighbours)

    normalised = features / np.linalg.norm(features, axis=1, keepdims=True)
    search = NearestNeighbors(n_neighbors=n_neighbours + 1).fit(normalised)
    with_self = search.kneighbors(normalised, return_distance=False)
    assert indices.shape == (80, n_neighbours)
    for image, (row, reference) in enumerate(zip(indices, with_self)):
        assert image not in row
        assert set(row) == set(reference) - {image}


def test_mine_neighbours_by_cosine_ignores_feature_scale():
    features = np.random.default_rng(1).normal(size=(40, 5))
    scales = np.random.default_rng(2).uniform(0.1, 10.0, size=(40, 1))
    np.testing.assert_array_equal(mine_neighbours(features, 4),
                                  mine_neighbours(features * scales, 4))
    assert not np.array_equal(mine_neighbours(features * scales, 4, metric="euclidean"),
                              mine_neighbours(features, 4, metric="euclidean"))


def test_mine_neighbours_excludes_self_among_duplicates():
    features = np.repeat(np.random.default_rng(3).normal(size=(5, 3)), 2, axis=0)
    indices = mine_neighbours(features, n_neighbours=2)
    assert all(image not in row for image, row in enumerate(indices))
    assert all(image ^ 1 in row for image, row in enumerate(indices))


@pytest.mark.parametrize("n_neighbours, metric", [(10, "cosine"), (0, "cosine"), (2, "l1")])
def test_mine_neighbours_rejects_bad_arguments(n_neighbours, metric):
    with pytest.raises(ValueError):
        mine_neighbours(np.eye(10), n_neighbours, metric=metric)


def test_neighbour_accuracy_on_a_hand_made_example():
    y = [0, 0, 1, 1, 1]
    indices = [[1, 2], [0, 3], [3, 4], [2, 0], [1, 0]]
    # Same-class neighbours per image: 1, 1, 2, 1 and 0 of 2.
    assert neighbour_accuracy(indices, y) == pytest.approx(5 / 10)
    assert neighbour_accuracy([[1], [0], [3], [4], [2]], y) == 1.0
    assert neighbour_accuracy([[2], [3], [0], [1], [0]], y) == 0.0
