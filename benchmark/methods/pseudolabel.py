"""End-to-end pseudo-labels (Chen et al. 2020) on each network and input, and linear probes.

A ``uic-<arch>-<input>`` row trains a network on its own cluster assignments, without
labels; each ``probe-<arch>-<input>-<layer>`` row borrows that network and fits a logistic
regression, with labels, on the activations of one of its layers.
"""

from dataclasses import replace

from .classical import GRID_SEARCH
from .networks import ARCHITECTURES, GPU_BATCH, SMOKE, STUDY_NETWORKS, network_params
from .row import N_CLUSTERS, Method

INPUTS = ("rgb", "sobel")

# The study's optimiser settings (SPEC section 3); test-time flips are the supervised CNN's.
PAPER = {
    "optimizer": "sgd", "momentum": 0.9, "batch_size": 256, "weight_decay": 1e-4,
    "module__dropout": 0.5, "lr": 1e-4, "epochs": 500, "lr_schedule": "step",
    "lr_milestones": [400], "lr_gamma": 0.1, "label_smoothing": 0.0,
}
SETTINGS = {
    "fast": {
        "smoke": SMOKE["fast"],
        # without the balanced sampler a few clusters swallow the rest (NMI 0.50 on digits)
        "quick": {"epochs": 50, "balanced_sampler": True, "module__widths": (32, 64, 64),
                  "train_limit": 10_000},
        "gpu": {"epochs": 40, "balanced_sampler": True, "module__widths": (32, 64, 64)},
        "paper": PAPER,
    },
    **{name: {
        "smoke": SMOKE[name],
        "quick": {"epochs": 4, "train_limit": 10_000, "lr": 0.05, "balanced_sampler": True},
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

UIC_ROWS = [
    Method(
        f"uic-{name}-{input}",
        f"End-to-end pseudo-labels (Chen et al. 2020) on {title}, {input} input",
        "estimators:TorchPseudoLabelClassifier", "clustering", SETTINGS[name],
        params=network_params(name, n_clusters=N_CLUSTERS, input=input),
        reference=f"uic-{name}-{input}", supervised=False,
    )
    for name, (_, title, _) in ARCHITECTURES.items()
    for input in INPUTS
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
