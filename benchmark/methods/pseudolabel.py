"""End-to-end pseudo-labels (Chen et al. 2020) on each network and input, and linear probes.

A ``uic-<arch>-<input>`` row trains a network on its own cluster assignments, without
labels, as the study did; ``uic-<arch>-<input>-sinkhorn`` makes those assignments of equal
cluster sizes. Each ``probe-<arch>-<input>-<layer>`` row borrows the network of the study's row
and fits a logistic regression, with labels, on the activations of one of its layers.
"""

from dataclasses import replace

from .classical import GRID_SEARCH
from .networks import (
    ARCHITECTURES,
    GPU_BATCH,
    SMOKE,
    STUDY_NETWORKS,
    STUDY_QUICK,
    network_params,
)
from .row import N_CLUSTERS, EpochBudget, Method

INPUTS = ("rgb", "sobel")

# The study's optimiser settings (SPEC section 3); test-time flips are the supervised CNN's.
PAPER = {
    "optimizer": "sgd", "momentum": 0.9, "batch_size": 256, "weight_decay": 1e-4,
    "module__dropout": 0.5, "lr": 1e-4, "epochs": 500, "lr_schedule": "step",
    "lr_milestones": [400], "lr_gamma": 0.1, "label_smoothing": 0.0,
}
# What each study network needs, in the quick profile, to learn from its own pseudo-labels
# without emptying clusters. On digits (seed 0, 2-core Intel Xeon with AMX), at the learning
# rate of 0.02 the supervised rows take, uic-vgg16bn-rgb fitted almost none of its labels
# (train accuracy 0.10-0.16) and ended with 3 to 6 of 10 clusters empty (test NMI 0.21-0.25,
# whether with precise batch-norm statistics, standardised scores, an entropy term, Adam, batches
# of 32 or 20 epochs); at 0.005 with precise statistics 0.44 (seed 1: 0.59), none empty.
# Dropout 0.5 halved VGG16_bn's NMI (0.23 against 0.45, precise statistics, 2-core AMD EPYC
# Zen 2). A fresh AlexNet, without batch norm, gives every image nearly the same scores, so
# that its first label passes put them all in one cluster (8 empty, NMI 0.01): standardised
# scores, without dropout, 0.39 at 0.02, 0.50 at 0.01, 0.51 at 0.005.
UIC_QUICK = {
    "alexnet": {"lr": 0.005, "module__dropout": 0.0, "assignment": "standardised"},
    "resnet18": {"lr": 0.02},
    "vgg16bn": {"lr": 0.005, "module__dropout": 0.0, "precise_bn": True},
}
SETTINGS = {
    "fast": {
        "smoke": SMOKE["fast"],
        # without the balanced sampler a few clusters swallow the rest (NMI 0.50 on digits);
        # 50 epochs of 10,000 CIFAR-10 images, 150 of digits: uic-fast-rgb's digit NMI rose
        # with epochs, 0.755 (50), 0.794 (100), 0.814 (150), seeds 0-2, 2-core AMD EPYC Zen 4
        "quick": {"epochs": EpochBudget(images=500_000, at_most=150), "balanced_sampler": True,
                  "module__widths": (32, 64, 64), "train_limit": 10_000},
        "gpu": {"epochs": 40, "balanced_sampler": True, "module__widths": (32, 64, 64)},
        "paper": PAPER,
    },
    **{name: {
        "smoke": SMOKE[name],
        "quick": {**STUDY_QUICK[name], "balanced_sampler": True, **UIC_QUICK[name]},
        "gpu": {"epochs": 20, "lr": 0.05, "balanced_sampler": True, **GPU_BATCH},
        "paper": PAPER,
    } for name in STUDY_NETWORKS},
}

# Layers the study probed (SPEC section 6), and the fast network's middle stage.
PROBE_LAYERS = {
    "fast": ("stage2",),
    "alexnet": ("conv3", "conv5"),
    "resnet18": ("block3", "block5"),
    "vgg16bn": ("conv",),
}
# Strengths of a probe's L2 penalty, chosen by cross-validation as a tuned row's parameters
# are: with C=1 alone, probes trained on 50,000 CIFAR-10 images reached 0.92-0.98 train top-1
# for 0.59-0.60 test top-1.
PENALTIES = {"C": [1e-4, 1e-3, 1e-2, 0.1, 1]}
# The tuned rows' grid search, over the logistic regression itself.
PROBE_SEARCH = replace(GRID_SEARCH, shared=False)

# Equal-size pseudo-labels by Sinkhorn-Knopp, the guard against collapse that tied the best on
# the fast network (results/ablation-digits). In the first run on digits, seed 0
# (results/digits-first-run), they lift the test NMI of uic-alexnet-rgb from one cluster (0.00)
# to 0.30 and of uic-vgg16bn-rgb from 0.12 to 0.23, and lower uic-alexnet-sobel (0.24 to 0.07)
# and uic-resnet18-sobel (0.56 to 0.42). Over three seeds the VGG16_bn change is within the
# spread: 0.25 +- 0.08 against 0.24 +- 0.07 (results/ablation-overclustering-digits). Its rows
# keep each profile's settings otherwise.
SINKHORN = {"assignment": "sinkhorn"}


def _uic_row(name, input, *, sinkhorn):
    _, title, _ = ARCHITECTURES[name]
    params = network_params(name, n_clusters=N_CLUSTERS, input=input)
    if not sinkhorn:
        return Method(
            f"uic-{name}-{input}",
            f"End-to-end pseudo-labels (Chen et al. 2020) on {title}, {input} input",
            "estimators:TorchPseudoLabelClassifier", "clustering", SETTINGS[name],
            params=params, reference=f"uic-{name}-{input}", supervised=False,
        )
    return Method(
        f"uic-{name}-{input}-sinkhorn",
        f"End-to-end pseudo-labels on {title}, {input} input, of equal cluster sizes "
        "(Sinkhorn-Knopp, Asano et al. 2020)",
        "estimators:TorchPseudoLabelClassifier", "clustering",
        {profile: {**settings, **SINKHORN} for profile, settings in SETTINGS[name].items()},
        params=params, supervised=False,
    )


UIC_ROWS = [
    _uic_row(name, input, sinkhorn=sinkhorn)
    for name in ARCHITECTURES
    for input in INPUTS
    for sinkhorn in (False, True)
]
# Each probe's network learns from as many images as its uic row's; the probe fits its
# classifier on every labelled training image.
PROBE_ROWS = [
    Method(
        f"probe-{name}-{input}-{layer}",
        f"Linear probe on {layer} of uic-{name}-{input}, trained without labels",
        "sklearn.linear_model:LogisticRegression", "probe",
        {"smoke": {}, "quick": {}, "gpu": {}, "paper": {}}, params={"max_iter": 1000},
        reference=f"probe-{name}-{input}-{layer}", pipeline="linear-probe",
        borrows=f"uic-{name}-{input}", layer=layer,
        search_space={profile: PENALTIES for profile in ("smoke", "quick", "gpu", "paper")},
        tuner=PROBE_SEARCH,
    )
    for name in ARCHITECTURES
    for input in INPUTS
    for layer in PROBE_LAYERS[name]
]
# The registry runs and lists each probe right after the row it borrows from.
ROWS = [*UIC_ROWS, *PROBE_ROWS]
