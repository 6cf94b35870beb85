"""Tests of the deep path: augmentation, networks, the training loop, the CNN classifier.

Every fit here is tiny (narrow networks, a few epochs, a few hundred 8x8 images), so the
whole file runs in under a minute on two CPU cores.
"""

import numpy as np
import pytest
import torch
from torch import nn
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from estimators import TorchCNNClassifier, build_network
from estimators.architectures import ARCHITECTURES, CentreTapConv2d
from estimators.samplers import ShuffleSampler, n_batches
from estimators.training import Callback, History, has_native_bfloat16, resolve_device
from features.augment import RandomAugment, Sobel, make_input_transform, translate
from conftest import TINY, CrashAfter, assert_same_weights, weights_of

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# Narrow enough to train in seconds on a CPU; the defaults are sized for a GPU.

# For scikit-learn's checks, which feed rows of 2 to 20 features (read as one-row images):
# nothing to flip or crop there, and Adam learns their blobs more reliably than SGD.
CHECK_SETTINGS = dict(
    module__widths=(8, 16, 16),
    epochs=10,
    batch_size=16,
    optimizer="adam",
    lr=0.05,
    label_smoothing=0.0,
    augment=False,
    tta_flip=False,
    device="cpu",
    verbose=0,
)

DIGITS_TEST_ACCURACY_FLOOR = 0.9


# ------------------------------------------------------------------ augmentation


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(8, 8), (32, 24)])
def test_augment_keeps_shape_dtype_and_range(channels, size):
    images = torch.rand(6, channels, *size)
    augmented = RandomAugment(generator=torch.Generator().manual_seed(0))(images)
    assert augmented.shape == images.shape
    assert augmented.dtype == torch.float32
    assert augmented.min() >= 0 and augmented.max() <= 1


def test_augment_draws_parameters_per_image():
    one_image = torch.rand(1, 3, 16, 16).repeat(16, 1, 1, 1)
    augmented = RandomAugment(generator=torch.Generator().manual_seed(0))(one_image)
    distinct = {tuple(image.flatten().tolist()) for image in augmented}
    assert len(distinct) == 16


def test_augment_flips_some_images_of_a_batch_only():
    images = torch.rand(32, 1, 8, 8)
    flip_only = RandomAugment(
        brightness=None, contrast=None, crop_p=0.0, generator=torch.Generator().manual_seed(0)
    )
    augmented = flip_only(images)
    flipped = (augmented == images.flip(-1)).flatten(1).all(dim=1)
    kept = (augmented == images).flatten(1).all(dim=1)
    assert (flipped ^ kept).all()
    assert 0 < flipped.sum() < len(images)


def test_translate_shifts_each_image_over_its_mirrored_borders():
    images = torch.rand(3, 2, 5, 6)
    shifts = torch.tensor([[0, 0], [2, -1], [-3, 4]])
    shifted = translate(images, shifts)
    mirrored = np.pad(images.numpy(), [(0, 0), (0, 0), (4, 4), (4, 4)], mode="reflect")
    for image, (down, right) in zip(range(3), shifts.tolist()):
        rows, columns = slice(4 - down, 9 - down), slice(4 - right, 10 - right)
        np.testing.assert_array_equal(shifted[image].numpy(), mirrored[image, :, rows, columns])


def test_augment_translates_by_at_most_its_shift_in_each_direction():
    images = torch.rand(256, 1, 8, 8)
    translate_only = RandomAugment(brightness=None, contrast=None, flip_p=0.0, crop_p=0.0,
                                   translate=2, generator=torch.Generator().manual_seed(0))
    augmented = translate_only(images)
    candidates = {(down, right): translate(images, torch.tensor([[down, right]] * 256))
                  for down in range(-2, 3) for right in range(-2, 3)}
    drawn = [next(shift for shift, moved in candidates.items() if torch.equal(moved[i], image))
             for i, image in enumerate(augmented)]
    assert len(set(drawn)) == 25  # every shift of up to 2 pixels, each image its own


def test_augment_is_reproducible_with_a_seeded_generator():
    images = torch.rand(8, 3, 16, 16)
    first = RandomAugment(generator=torch.Generator().manual_seed(3))(images)
    second = RandomAugment(generator=torch.Generator().manual_seed(3))(images)
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_sobel_gives_two_gradient_channels():
    ramp = torch.arange(8.0).repeat(8, 1).expand(2, 3, 8, 8) / 8
    gradients = Sobel()(ramp)
    assert gradients.shape == (2, 2, 8, 8)
    inner = gradients[:, :, 1:-1, 1:-1]
    assert (inner[:, 0] > 0).all()
    torch.testing.assert_close(inner[:, 1], torch.zeros_like(inner[:, 1]))


def test_input_transform_sobel_then_upsample():
    transform = make_input_transform("sobel", upsample=2, mean=[0.5] * 3, std=[0.25] * 3)
    assert transform(torch.rand(2, 3, 32, 32)).shape == (2, 2, 64, 64)
    images = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(make_input_transform("rgb")(images), images)


# ------------------------------------------------------------------ architectures


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("in_channels", [1, 2, 3])
@pytest.mark.parametrize("size", [8, 32])
def test_architecture_builds_and_exposes_named_layers(arch, in_channels, size):
    kwargs = {"hidden": 64} if arch == "alexnet" else {}
    network = build_network(arch, in_channels, n_classes=5, **kwargs).eval()
    x = torch.rand(2, in_channels, size, size)
    with torch.no_grad():
        assert network(x).shape == (2, 5)
        for layer in network.layer_names:
            activations = network.features(x, layer)
            assert activations.ndim == 4 and len(activations) == 2


@pytest.mark.parametrize(
    "arch, layers",
    [
        ("alexnet", ("conv1", "conv2", "conv3", "conv4", "conv5")),
        ("resnet18", ("block1", "block2", "block3", "block4", "block5")),
        ("vgg16_bn", ("conv",)),
        ("fast", ("stage1", "stage2", "stage3")),
    ],
)
def test_layer_names(arch, layers):
    assert build_network(arch, 3, 10).layer_names == layers


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_final_linear_is_the_layer_that_outputs_the_class_scores(arch):
    kwargs = {"hidden": 64} if arch == "alexnet" else {}
    network = build_network(arch, 3, n_classes=5, **kwargs)
    linear = network.final_linear()
    assert isinstance(linear, torch.nn.Linear) and linear.out_features == 5
    assert linear is [m for m in network.head.modules() if isinstance(m, torch.nn.Linear)][-1]


def test_unknown_layer_and_architecture_suggest_a_name():
    network = build_network("fast", 3, 10)
    with pytest.raises(ValueError, match="Did you mean 'stage3'"):
        network.features(torch.rand(2, 3, 8, 8), "stage4")
    with pytest.raises(ValueError, match="Did you mean 'resnet18'"):
        build_network("resnet", 3, 10)


@pytest.mark.parametrize("kernel_size, stride", [(3, 1), (3, 2), (5, 1)])
def test_centre_tap_convolution_matches_the_convolution_on_1x1_maps(kernel_size, stride):
    torch.manual_seed(0)
    reference = torch.nn.Conv2d(8, 4, kernel_size, stride=stride, padding=kernel_size // 2)
    centre_tap = CentreTapConv2d(8, 4, kernel_size, stride=stride, padding=kernel_size // 2)
    centre_tap.load_state_dict(reference.state_dict())
    for size in (1, 3):  # 3x3 maps go through the convolution itself
        images = torch.randn(5, 8, size, size)
        outputs = [conv(images) for conv in (reference, centre_tap)]
        torch.testing.assert_close(outputs[1], outputs[0])
        for conv, output in zip((reference, centre_tap), outputs):
            conv.zero_grad()
            (output * torch.arange(output.numel()).view_as(output)).sum().backward()
        torch.testing.assert_close(centre_tap.weight.grad, reference.weight.grad)
        torch.testing.assert_close(centre_tap.bias.grad, reference.bias.grad)


def test_networks_reaching_1x1_maps_compute_them_by_their_centre_taps():
    network = build_network("vgg16_bn", 3, 10)
    convolutions = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(type(conv) is CentreTapConv2d for conv in convolutions)
    stem = build_network("fast", 3, 10).layers["stage1"][1]  # unpadded patches: not a candidate
    assert type(stem) is torch.nn.Conv2d


def test_fast_network_whitens_its_stem_from_data():
    torch.manual_seed(0)
    noise = torch.randn(64, 3, 16, 16)
    images = noise + 0.8 * noise.roll(1, dims=3)  # correlated neighbours
    network = build_network("fast", 3, 10)
    network.data_init(images)
    pad, stem = network.layers["stage1"][:2]
    assert not stem.weight.requires_grad
    with torch.no_grad():
        outputs = stem(pad(images)) - stem.bias.view(1, -1, 1, 1)
    n_filters = stem.out_channels // 2  # the second half are the same filters negated
    half = outputs[:, :n_filters].permute(0, 2, 3, 1).reshape(-1, n_filters)
    covariance = half.T @ half / len(half)
    torch.testing.assert_close(covariance, torch.eye(len(covariance)), rtol=0, atol=0.05)


# ------------------------------------------------------------------ training loop


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cuda", "mps", "cpu"}


@pytest.mark.parametrize("n_images, batch_size, sizes", [(10, 4, [4, 4]), (3, 4, [3])])
def test_shuffle_sampler_drops_the_incomplete_batch_unless_it_is_the_only_one(
    n_images, batch_size, sizes
):
    generator = torch.Generator().manual_seed(0)
    batches = ShuffleSampler().batches(np.zeros(n_images), batch_size, rng=None,
                                       generator=generator)
    assert [len(batch) for batch in batches] == sizes
    assert len(batches) == n_batches(n_images, batch_size)
    seen = torch.cat(batches)
    assert len(seen.unique()) == len(seen)


def test_penultimate_features_feed_the_final_linear_layer(small_digits):
    X, y = small_digits
    clf = TorchCNNClassifier(**TINY, epochs=1, tta_flip=False, random_state=0).fit(X, y)
    features = clf.penultimate_features(X[:5])
    assert features.shape == (5, 32) and features.dtype == torch.float32
    head = clf.module_.head
    with torch.no_grad():
        logits = head[4](head[3](features))  # the final linear layer, then the scaling
    torch.testing.assert_close(logits, clf.forward_batches(X[:5]))


def test_test_time_shifts_read_the_images_moved_diagonally(small_digits):
    X, y = small_digits
    clf = TorchCNNClassifier(**TINY, epochs=1, tta_flip=False, random_state=0).fit(X, y)
    mirrored = np.pad(X[:40], [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    logits = {shift: clf.forward_batches(X[:40], shift=shift) for shift in (0, 1, -1)}
    torch.testing.assert_close(logits[1], clf.forward_batches(mirrored[:, :8, :8]))
    torch.testing.assert_close(logits[-1], clf.forward_batches(mirrored[:, 2:, 2:]))
    # half the image's own logits, half the mean of its two moved copies'
    expected = torch.softmax((logits[0] + (logits[1] + logits[-1]) / 2).double() / 2, dim=1)
    proba = clf.set_params(tta_shift=1).predict_proba(X[:40])
    np.testing.assert_allclose(proba, expected.numpy(), rtol=1e-6)


def test_airbench_batch_norm_keeps_its_weights_and_speeds_its_biases(small_digits):
    X, y = small_digits
    clf = TorchCNNClassifier(**TINY, epochs=1, lr=0.1, weight_decay=5e-4, random_state=0,
                             module__norm_weights=False, module__norm_bias_lr_scale=64)
    clf.fit(X, y)
    norms = [module for module in clf.module_.modules() if isinstance(module, nn.BatchNorm2d)]
    assert len(norms) == 6
    for norm in norms:
        torch.testing.assert_close(norm.weight, torch.ones_like(norm.weight))
        assert norm.bias.abs().sum() > 0
    others, biases = clf.optimizer_.param_groups
    assert {id(bias) for bias in biases["params"]} == {id(norm.bias) for norm in norms}
    assert biases["initial_lr"] == 64 * others["initial_lr"] == 6.4
    assert biases["weight_decay"] * 64 == others["weight_decay"] == 5e-4


class _SlowWeightsSeen(Callback):
    """Whether the slow weights of `lookahead` existed at each epoch's end."""

    def on_train_begin(self, estimator):
        self.seen_ = []

    def on_epoch_end(self, estimator):
        self.seen_.append(estimator._slow_weights is not None)


def test_lookahead_starts_after_three_epochs_and_leaves_the_slow_weights(small_digits, tmp_path):
    X, y = small_digits  # 300 images: 5 steps an epoch
    params = dict(TINY, epochs=6, random_state=0)
    seen = _SlowWeightsSeen()
    slow = TorchCNNClassifier(**params, lookahead=True, callbacks=[seen]).fit(X, y)
    plain = TorchCNNClassifier(**params).fit(X, y)
    # the slow weights start at step 20, in the fourth epoch
    assert seen.seen_ == [False, False, False, True, True, True]
    network = dict(slow.module_.state_dict())
    for name, weights in slow._slow_weights.items():
        torch.testing.assert_close(network[name], weights, rtol=0, atol=0)
    assert slow.history_["loss"][:3] == plain.history_["loss"][:3]
    assert slow.history_["loss"][3:] != plain.history_["loss"][3:]
    # a crash after the slow weights started resumes them too
    crashing = TorchCNNClassifier(**params, lookahead=True, checkpoint_dir=tmp_path,
                                  callbacks=[CrashAfter(4)])
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashing.fit(X, y)
    resumed = TorchCNNClassifier(**params, lookahead=True, checkpoint_dir=tmp_path).fit(X, y)
    assert resumed.n_resumed_epochs_ == 4
    assert resumed.history_["loss"] == slow.history_["loss"]
    assert_same_weights(weights_of(resumed), weights_of(slow))


def test_history_reads_by_key():
    history = History([{"loss": 2.0, "accuracy": 0.1}, {"loss": 1.0, "accuracy": 0.5}])
    assert history["loss"] == [2.0, 1.0]
    assert history[-1]["accuracy"] == 0.5


def test_learns_digits(digits):
    X_train, X_test, y_train, y_test = digits
    clf = TorchCNNClassifier(
        **TINY, epochs=6, augment=False, tta_flip=False, random_state=0
    ).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= DIGITS_TEST_ACCURACY_FLOOR
    assert clf.stop_reason_ == "max_epochs"
    assert [record["epoch"] for record in clf.history_] == [1, 2, 3, 4, 5, 6]
    assert clf.history_["loss"][-1] < clf.history_["loss"][0]
    assert all(seconds > 0 for seconds in clf.history_["seconds"])
    assert clf.n_features_in_ == 64 and clf.image_shape_ == (8, 8, 1)


def test_string_labels(small_digits):
    X, y = small_digits
    names = np.array("zero one two three four five six seven eight nine".split())
    clf = TorchCNNClassifier(**TINY, epochs=1, random_state=0).fit(X, names[y])
    assert list(clf.classes_) == sorted(names)
    assert set(clf.predict(X[:50])) <= set(names)
    proba = clf.predict_proba(X[:50])
    assert proba.shape == (50, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1)


def test_same_seed_same_result(small_digits):
    X, y = small_digits
    # Augmentation and dropout draw on both the data generator and torch's global one.
    params = dict(TINY, epochs=2, module__dropout=0.5)
    first = TorchCNNClassifier(**params, random_state=0).fit(X, y)
    torch.manual_seed(123)  # the global state before fit must not matter
    second = TorchCNNClassifier(**params, random_state=0).fit(X, y)
    other = TorchCNNClassifier(**params, random_state=1).fit(X, y)
    assert_same_weights(weights_of(first), weights_of(second))
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    assert not torch.equal(first.module_.head[3].weight, other.module_.head[3].weight)


@pytest.mark.parametrize("upsample", [None, 4])
def test_mixed_precision_only_for_large_inputs_on_bfloat16_hardware(small_digits, upsample):
    X, y = small_digits
    params = dict(TINY, epochs=1, upsample=upsample)
    first = TorchCNNClassifier(**params, random_state=0).fit(X, y)
    second = TorchCNNClassifier(**params, random_state=0).fit(X, y)
    # 8x8 digits stay in float32; enlarged to 32x32 they use bfloat16 where it is native.
    native = has_native_bfloat16(first.device_)
    assert first.mixed_precision_ == (upsample is not None and native)
    assert first.predict_proba(X).dtype == np.float64
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))


class _EpochCounter(Callback):
    def on_train_begin(self, estimator):
        self.epochs_run_ = 0

    def on_epoch_begin(self, estimator, epoch):
        self.epochs_run_ += 1


def test_resume_after_crash_ends_like_an_uninterrupted_run(small_digits, tmp_path):
    X, y = small_digits
    params = dict(TINY, epochs=3, module__dropout=0.5, random_state=0)
    uninterrupted = TorchCNNClassifier(**params).fit(X, y)

    crashing = TorchCNNClassifier(**params, checkpoint_dir=tmp_path, callbacks=[CrashAfter(2)])
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashing.fit(X, y)
    assert not hasattr(crashing, "stop_reason_")
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint.pt"]

    counter = _EpochCounter()
    resumed = TorchCNNClassifier(**params, checkpoint_dir=tmp_path, callbacks=[counter]).fit(X, y)
    assert counter.epochs_run_ == 1
    assert resumed.history_["epoch"] == [1, 2, 3]
    assert resumed.history_["loss"] == uninterrupted.history_["loss"]
    assert_same_weights(weights_of(resumed), weights_of(uninterrupted))

    # other parameters, other images of the same shape (another fold), or more epochs
    # (a longer learning-rate schedule): the checkpoint does not resume
    for other_params, other_X in [({"lr": 0.01}, X), ({}, 255 - X), ({"epochs": 4}, X)]:
        with pytest.raises(ValueError, match="other parameters or data"):
            other = TorchCNNClassifier(**{**params, **other_params}, checkpoint_dir=tmp_path)
            other.fit(other_X, y)


def test_callback_can_stop_training_with_a_reason(small_digits):
    class StopAfterOne(Callback):
        def on_epoch_end(self, estimator):
            estimator.stop_training("plateau")

    X, y = small_digits
    clf = TorchCNNClassifier(**TINY, epochs=5, callbacks=[StopAfterOne()], random_state=0).fit(X, y)
    assert clf.stop_reason_ == "plateau"
    assert len(clf.history_) == 1


def test_initialize_for_builds_what_fit_starts_from_and_fits_nothing(small_digits):
    class FirstWeights(Callback):
        def on_train_begin(self, estimator):
            self.weights = weights_of(estimator)

    X, y = small_digits
    params = dict(TINY, epochs=3, random_state=0)
    first = FirstWeights()
    TorchCNNClassifier(**params, callbacks=[first]).fit(X, y)
    built = TorchCNNClassifier(**params).initialize_for(X, n_outputs=10)
    assert_same_weights(weights_of(built), first.weights)
    steps = 3 * n_batches(len(X), TINY["batch_size"])
    assert built.lr_scheduler_.lr_lambdas[0](steps) == pytest.approx(0, abs=1e-6)
    assert built.augment_ is not None
    with pytest.raises(NotFittedError):
        built.predict(X)


def test_diverging_training_stops_with_an_error_naming_the_learning_rate(small_digits):
    X, y = small_digits
    clf = TorchCNNClassifier(**TINY, epochs=3, lr=1e12, random_state=0)
    with pytest.raises(FloatingPointError, match=r"diverged in epoch 1.*lr=1e\+12"):
        clf.fit(X, y)


def test_paper_step_schedule(small_digits):
    X, y = small_digits
    paper = dict(
        optimizer="sgd", momentum=0.9, batch_size=256, weight_decay=1e-4, module__dropout=0.5,
        lr=1e-4, lr_schedule="step", lr_milestones=[2], lr_gamma=0.1, label_smoothing=0.0,
    )
    clf = TorchCNNClassifier(**{**TINY, **paper}, epochs=3, random_state=0).fit(X, y)
    np.testing.assert_allclose(clf.history_["lr"], [1e-4, 1e-4, 1e-5])


# ------------------------------------------------------------------ parameters


def test_routed_parameters_survive_get_set_params_and_clone():
    clf = TorchCNNClassifier(lr=0.1, module__widths=(8, 8, 8))
    assert clf.get_params()["module__widths"] == (8, 8, 8)
    copy = clone(clf.set_params(optimizer__nesterov=True, epochs=3))
    assert copy.get_params() == clf.get_params()
    assert copy.get_params()["optimizer__nesterov"] is True
    assert "module__widths=(8, 8, 8)" in repr(copy)
    with pytest.raises(ValueError, match="Invalid parameter"):
        clf.set_params(widths=3)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"module__widht": (8, 8, 8)}, "Did you mean 'module__widths'"),
        ({"optimizer__nesterof": True}, "Did you mean 'optimizer__nesterov'"),
        ({"batchsize": 32}, "Did you mean 'batch_size'"),
        ({"modul__widths": (8, 8, 8)}, "Did you mean 'module__'"),
    ],
)
def test_unknown_parameters_get_a_suggestion(small_digits, params, message):
    X, y = small_digits
    with pytest.raises(ValueError, match=message):
        TorchCNNClassifier(**params).fit(X, y)


def test_rejects_nan_images(small_digits):
    X, y = small_digits
    images = X.astype(np.float32) / 255
    images[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        TorchCNNClassifier(**TINY).fit(images, y)


def test_predict_rejects_images_of_another_shape(small_digits):
    X, y = small_digits
    clf = TorchCNNClassifier(**TINY, epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="fitted on images of shape"):
        clf.predict(np.zeros((2, 8, 8, 3), dtype=np.uint8))


@parametrize_with_checks([TorchCNNClassifier(**CHECK_SETTINGS)])
def test_sklearn_compatible(estimator, check):
    check(estimator)
