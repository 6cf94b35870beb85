"""Tests of DeepCluster (k-means pseudo-labels).

Every fit is tiny (narrow networks, a few epochs, 8x8 digits), so the whole file runs in
well under a minute on two CPU cores.
"""

import copy
import math

import numpy as np
import pytest
import torch
from sklearn.base import is_clusterer
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from estimators import DeepClusterClassifier, rebalance_clusters
from estimators.architectures import build_network
from estimators.kmeans import _split_empty_clusters, kmeans_labels, kmeans_torch, pca_whiten
from estimators.samplers import balanced_sample
from estimators.targets import KMeansReclustering, reset_head
from conftest import TINY, CrashAfter, assert_same_weights, weights_of

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# DeepCluster on the digits: a constant rate high enough for each epoch's fresh head.
DEEPCLUSTER = dict(TINY, lr=0.5, random_state=0)

# Measured: test NMI 0.60 after 10 epochs (seed 0); k-means on the raw pixels gets 0.74.
DIGITS_NMI_FLOOR = 0.45

# check_clustering's 50 points make 3 batches an epoch: with a new clustering (and head)
# every epoch, the head predicted 2 of the 3 blobs at 5 of 10 seeds (fused or not);
# clustering every 5 epochs gave all 3 at every seed.
CHECK_SETTINGS = dict(
    module__widths=(8, 16, 16),
    epochs=10,
    reassign_every=5,
    batch_size=16,
    optimizer="adam",
    lr=0.05,
    augment=False,
    device="cpu",
    verbose=0,
)


# ------------------------------------------------------------------ clustering steps


def test_reseed_empty_clusters_hands_half_of_the_largest():
    labels = np.array([0] * 8 + [2] * 3)
    reseeded = rebalance_clusters(labels, 5, np.random.default_rng(0))
    assert np.bincount(reseeded, minlength=5).tolist() == [2, 2, 3, 2, 2]
    # Only members of the largest cluster moved; the input is left as it was.
    assert (reseeded[labels == 2] == 2).all()
    assert np.bincount(labels).tolist() == [8, 0, 3]
    unchanged = rebalance_clusters([1, 0, 1], 2, np.random.default_rng(0))
    np.testing.assert_array_equal(unchanged, [1, 0, 1])


def test_split_empty_clusters_perturbs_a_copy_of_a_large_centroid():
    centroids = torch.tensor([[1.0, 1.0], [9.0, 9.0], [5.0, 5.0]])
    counts = torch.tensor([1, 0, 6])
    _split_empty_clusters(centroids, counts, torch.Generator().manual_seed(0))
    # Only cluster 2 (more than one member) can be split.
    assert counts.tolist() == [1, 3, 3]
    torch.testing.assert_close(centroids[1] + centroids[2], torch.tensor([10.0, 10.0]))
    assert not torch.equal(centroids[1], centroids[2])
    assert torch.allclose(centroids[1], torch.tensor([5.0, 5.0]), atol=0.01)


def test_balanced_sample_draws_every_cluster_equally():
    labels = np.array([0] * 100 + [1] * 10 + [3] * 2)  # cluster 2 is empty
    sample = balanced_sample(labels, 301, np.random.default_rng(0))
    assert len(sample) == 301
    counts = np.bincount(labels[sample], minlength=4)
    assert counts[2] == 0
    assert sorted(counts[[0, 1, 3]].tolist()) == [100, 100, 101]
    # A large cluster is drawn without replacement, a small one with.
    large = sample[labels[sample] == 0]
    assert len(np.unique(large)) == len(large)
    assert set(sample[labels[sample] == 3]) == {110, 111}


def test_kmeans_labels_runs_scikit_learn_on_the_cpu_unless_told_torch():
    X, _ = make_blobs(n_samples=200, centers=4, n_features=3, random_state=0)
    x = torch.from_numpy(X.astype(np.float32))
    sklearn_labels = KMeans(4, random_state=7).fit_predict(X.astype(np.float32))
    np.testing.assert_array_equal(kmeans_labels(x, 4, seed=7), sklearn_labels)
    np.testing.assert_array_equal(
        kmeans_labels(x, 4, backend="torch", seed=7),
        kmeans_torch(x, 4, generator=torch.Generator().manual_seed(7)),
    )


def test_kmeans_reclustering_keeps_its_targets_between_clusterings():
    source = KMeansReclustering(3, pca_dim=8, kmeans="sklearn", reassign_every=2)
    assert [source.reclusters(epoch) for epoch in range(4)] == [True, False, True, False]
    first = np.array([0, 1, 2, 2])
    assert math.isnan(source.accept(first, 0)["nmi_previous"])
    assert source.targets(None, None, 1) is first
    assert source.accept(first.copy(), 1) == {"nmi_previous": 1.0}
    assert source.accept(np.array([1, 0, 2, 2]), 2)["nmi_previous"] == pytest.approx(1.0)
    assert source.accept(np.array([0, 0, 1, 2]), 2)["nmi_previous"] < 1
    restored = KMeansReclustering(3, pca_dim=8, kmeans="sklearn", reassign_every=2)
    restored.load_state_dict(source.state_dict())
    assert restored.assignments_.tolist() == [0, 0, 1, 2]


def test_torch_kmeans_matches_sklearn_on_blobs():
    X, y = make_blobs(n_samples=2000, centers=20, n_features=8, cluster_std=2.0, random_state=0)
    X = X.astype(np.float32)

    def inertia(labels):
        return sum(((X[labels == k] - X[labels == k].mean(axis=0)) ** 2).sum() for k in set(labels))

    ours, theirs = [], []
    for seed in range(5):
        generator = torch.Generator().manual_seed(seed)
        labels = kmeans_torch(torch.from_numpy(X), 20, generator=generator)
        assert labels.dtype == np.int64 and len(np.unique(labels)) == 20
        ours.append((inertia(labels), adjusted_rand_score(y, labels)))
        sklearn_labels = KMeans(20, n_init=1, random_state=seed).fit_predict(X)
        theirs.append((inertia(sklearn_labels), adjusted_rand_score(y, sklearn_labels)))
    (our_inertia, our_ari), (their_inertia, their_ari) = np.mean(ours, 0), np.mean(theirs, 0)
    assert our_inertia <= 1.05 * their_inertia
    assert our_ari >= their_ari - 0.05


def test_pca_whiten_matches_sklearn_whitened_pca():
    features = torch.randn(500, 6, generator=torch.Generator().manual_seed(0))
    features = features @ torch.randn(6, 6, generator=torch.Generator().manual_seed(1))
    whitened = pca_whiten(features, 4).numpy()
    expected = PCA(4, whiten=True).fit_transform(features.numpy())
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    # Each principal axis is defined up to its sign.
    np.testing.assert_allclose(np.abs(whitened), np.abs(expected), atol=1e-4)


def test_pca_whiten_ignores_the_scale_of_large_activations():
    features = torch.randn(200, 5, generator=torch.Generator().manual_seed(0))
    # 1e25 squared overflows float32: the covariance must not be formed at this scale
    torch.testing.assert_close(pca_whiten(features * 1e25, 3), pca_whiten(features, 3),
                               atol=1e-4, rtol=1e-4)


def _mostly_dead_features(seed):
    """ReLU features of a collapsing network: 28 live units among 512, as VGG16_bn's were."""
    generator = torch.Generator().manual_seed(seed)
    live = torch.randn(10_000, 28, generator=generator) @ torch.randn(28, 28, generator=generator)
    features = torch.zeros(10_000, 512)
    features[:, :28] = torch.relu(live) * 30 * torch.rand(28, generator=generator)
    return features[:, torch.randperm(512, generator=generator)]


@pytest.mark.parametrize("seed", range(4))
def test_pca_whiten_drops_dead_units(seed):
    # Measured: with the dead units kept, torch.linalg.eigh failed to converge on
    # seed 0 (484 repeated zero eigenvalues).
    features = _mostly_dead_features(seed)
    live = features.amax(dim=0) > 0
    whitened = pca_whiten(features, 256)
    assert whitened.shape == (10_000, 28)
    torch.testing.assert_close(whitened, pca_whiten(features[:, live], 256))


def test_pca_whiten_rejects_a_collapsed_network():
    with pytest.raises(ValueError, match="Every feature is constant.*collapsed"):
        pca_whiten(torch.full((50, 4), 3.0), 2)


def test_pca_whiten_rejects_non_finite_features():
    features = torch.randn(50, 4)
    features[3, 1] = torch.nan
    with pytest.raises(ValueError, match="NaN or infinite.*diverged"):
        pca_whiten(features, 2)


# ------------------------------------------------------------------ the estimator


def test_deepcluster_clusters_digits(digits):
    X_train, X_test, y_train, y_test = digits
    deepcluster = DeepClusterClassifier(**DEEPCLUSTER, epochs=10).fit(X_train)
    assert deepcluster.score(X_test, y_test) >= DIGITS_NMI_FLOOR
    assert deepcluster.stop_reason_ == "max_epochs"
    assert deepcluster.history_["epoch"] == list(range(1, 11))
    assert is_clusterer(deepcluster)
    assert deepcluster.labels_.dtype == np.int64
    np.testing.assert_array_equal(deepcluster.labels_, deepcluster.predict(X_train))


def test_labels_never_leak(small_digits):
    X, y = small_digits
    params = dict(DEEPCLUSTER, epochs=2)
    without = DeepClusterClassifier(**params).fit(X)
    with_labels = DeepClusterClassifier(**params).fit(X, y)
    # The held-out set is only scored, never trained on.
    with_eval = DeepClusterClassifier(**params, eval_set=(X[:100], y[:100])).fit(X)
    for other in (with_labels, with_eval):
        assert_same_weights(weights_of(without), weights_of(other))
        np.testing.assert_array_equal(without.labels_, other.labels_)


def test_history_records_clustering_diagnostics(small_digits):
    X, y = small_digits
    deepcluster = DeepClusterClassifier(
        **DEEPCLUSTER, epochs=3, reassign_every=2, eval_set=(X[:100], y[:100])
    ).fit(X)
    history = deepcluster.history_
    assert {
        "epoch", "loss", "accuracy", "lr", "seconds", "sizes_before", "sizes_after",
        "n_empty_before", "nmi_previous", "eval_nmi", "eval_ari", "eval_acc",
        "eval_empty_clusters",
    } <= set(history[0])
    assert all(sum(sizes) == len(X) and len(sizes) == 10 for sizes in history["sizes_after"])
    assert all(min(sizes) > 0 for sizes in history["sizes_after"])
    assert math.isnan(history[0]["nmi_previous"])
    # Epoch 2 trains on epoch 1's clusters; epoch 3 reclusters.
    assert history[1]["nmi_previous"] == 1.0
    assert history[1]["sizes_after"] == history[0]["sizes_after"]
    assert 0 <= history[2]["nmi_previous"] <= 1
    assert all(0 <= nmi <= 1 for nmi in history["eval_nmi"])


def test_torch_kmeans_backend_runs_on_cpu(small_digits):
    X, _ = small_digits
    deepcluster = DeepClusterClassifier(**DEEPCLUSTER, epochs=2, kmeans="torch").fit(X)
    assert len(deepcluster.history_) == 2
    assert all(min(sizes) > 0 for sizes in deepcluster.history_["sizes_after"])


@pytest.mark.parametrize("fused", [True, False])
def test_reset_head_reinitialises_the_final_layer_only(small_digits, fused):
    X, _ = small_digits
    deepcluster = DeepClusterClassifier(**DEEPCLUSTER, epochs=1, optimizer__fused=fused).fit(X)
    head = deepcluster.module_.final_linear()
    before = weights_of(deepcluster)
    with torch.random.fork_rng():
        reset_head(deepcluster.module_, deepcluster.optimizer_)
    after = weights_of(deepcluster)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"head.3.weight"}
    # the head's momentum restarts (dropped, or zeroed where fused SGD needs every buffer);
    # the body's goes on
    state = deepcluster.optimizer_.state
    if fused:
        assert not state[head.weight]["momentum_buffer"].any()
    else:
        assert head.weight not in state
    assert all(buffers["momentum_buffer"].any() for parameter, buffers in state.items()
               if parameter is not head.weight and parameter is not head.bias)


@pytest.mark.parametrize("optimizer, fused", [(torch.optim.SGD, True), (torch.optim.SGD, False),
                                              (torch.optim.Adam, True), (torch.optim.Adam, False)])
def test_reset_head_gives_the_head_a_fresh_optimisers_next_step(optimizer, fused):
    torch.manual_seed(0)
    network = build_network("fast", 1, 10, widths=(8, 16, 16))
    images, targets = torch.randn(8, 1, 8, 8), torch.arange(8)
    momentum = {"momentum": 0.9} if optimizer is torch.optim.SGD else {}

    def step(network, optimiser):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(network(images), targets).backward()
        optimiser.step()

    trained = optimizer(network.parameters(), lr=0.1, weight_decay=1e-4, fused=fused, **momentum)
    step(network, trained)
    step(network, trained)
    reset_head(network, trained)
    twin = copy.deepcopy(network)
    step(network, trained)
    step(twin, optimizer(twin.parameters(), lr=0.1, weight_decay=1e-4, fused=fused, **momentum))
    for parameter, fresh in zip(network.final_linear().parameters(),
                                twin.final_linear().parameters()):
        torch.testing.assert_close(parameter, fresh)


def test_resume_after_crash_ends_like_an_uninterrupted_run(small_digits, tmp_path):
    X, _ = small_digits
    # The crash falls between two clusterings: the resumed epoch trains on saved clusters.
    params = dict(DEEPCLUSTER, epochs=3, reassign_every=2)
    uninterrupted = DeepClusterClassifier(**params).fit(X)
    crashing = DeepClusterClassifier(**params, checkpoint_dir=tmp_path, callbacks=[CrashAfter(1)])
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashing.fit(X)
    resumed = DeepClusterClassifier(**params, checkpoint_dir=tmp_path).fit(X)
    assert resumed.history_["loss"] == uninterrupted.history_["loss"]
    assert resumed.history_["sizes_after"] == uninterrupted.history_["sizes_after"]
    assert_same_weights(weights_of(resumed), weights_of(uninterrupted))
    np.testing.assert_array_equal(resumed.labels_, uninterrupted.labels_)


def test_rejects_fewer_images_than_clusters(small_digits):
    X, _ = small_digits
    with pytest.raises(ValueError, match="should be >= n_clusters"):
        DeepClusterClassifier(**TINY, n_clusters=20).fit(X[:10])


@parametrize_with_checks([DeepClusterClassifier(**CHECK_SETTINGS)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_deepcluster_on_cuda_uses_torch_kmeans(digits):
    X_train, X_test, y_train, y_test = digits
    params = dict(DEEPCLUSTER, device="cuda", epochs=10)
    deepcluster = DeepClusterClassifier(**params).fit(X_train)
    assert deepcluster.score(X_test, y_test) >= DIGITS_NMI_FLOOR
    X = torch.from_numpy(X_train.reshape(len(X_train), -1).astype(np.float32)).cuda()
    labels = kmeans_torch(X, 10, generator=torch.Generator().manual_seed(0))
    assert adjusted_rand_score(y_train, labels) > 0.5
