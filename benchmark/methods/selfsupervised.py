"""Self-supervised encoders (SimCLR) and the label-free methods that read them (SCAN).

A ``simclr-<arch>`` row trains a contrastive encoder without labels and scores its features
by a weighted kNN vote (table *encoders*). The rows that borrow it read its features:
k-means (``simclr-<arch>-kmeans``), neighbour clustering without and with self-labelling
(``scan-<arch>``, ``scan-<arch>-selflabel``), and a linear probe (``probe-simclr-<arch>``).
"""

from .networks import ARCHITECTURES, SMOKE, network_params
from .pseudolabel import PENALTIES, PROBE_SEARCH
from .row import N_CLUSTERS, SEED, EpochBudget, Method

ENCODER_ARCHITECTURES = ("fast", "resnet18")

# SimCLR as SCAN's pretext step ran it on CIFAR-10 (configs/pretext/simclr_cifar-10.yml):
# ResNet-18, 500 epochs, batch 512, SGD at 0.4 with a cosine decay, weight decay 1e-4,
# temperature 0.1, projection to 128.
SIMCLR_PAPER = {
    "epochs": 500, "batch_size": 512, "optimizer": "sgd", "lr": 0.4, "momentum": 0.9,
    "weight_decay": 1e-4, "lr_schedule": "cosine", "temperature": 0.1, "projection_dim": 128,
}
# The quick profile counts epochs in images shown (EpochBudget): the fast network sees a
# million, 20 epochs of 50,000 CIFAR-10 images (about half an hour on a 2-core CPU with
# AMX) and 100 of 1,437 digits. SimCLR's augmentation as it is: on 10,000 CIFAR-10 images
# (5 epochs) keeping half of each image at least and no flips lowered k-means' NMI from
# 0.19 to 0.16.
# The gpu profile (unmeasured until a GPU is lent): 30 epochs of 50,000 CIFAR-10 images in
# batches of 512, two views each, about 100 seconds at the 30,000 ResNet18 training images
# a second an H200 reached (results/throughput-gpu.md).
SIMCLR_GPU = {"epochs": 30, "batch_size": 512, "lr": 0.6, "temperature": 0.5}
ENCODER_SETTINGS = {
    "fast": {
        "smoke": SMOKE["fast"],
        "quick": {"epochs": EpochBudget(images=1_000_000, at_most=100), "temperature": 0.5,
                  "module__widths": (64, 128, 256)},
        "gpu": {**SIMCLR_GPU, "module__widths": (64, 128, 256)},
        "paper": SIMCLR_PAPER,
    },
    "resnet18": {
        "smoke": SMOKE["resnet18"],
        "quick": {"epochs": EpochBudget(images=40_000, at_most=30), "temperature": 0.5,
                  "train_limit": 10_000},
        "gpu": SIMCLR_GPU,
        "paper": SIMCLR_PAPER,
    },
}

# SCAN on CIFAR-10 (configs/scan/scan_cifar-10.yml, selflabel/selflabel_cifar-10.yml): one
# head, 20 neighbours, entropy weight 5, Adam at 1e-4 with weight decay 1e-4; 50 epochs of
# neighbour clustering in batches of 512, then 200 of self-labelling (SCAN: batches of
# 1,000) above a confidence of 0.99.
SCAN_PAPER = {
    "n_heads": 1, "n_neighbours": 20, "entropy_weight": 5.0, "optimizer": "adam", "lr": 1e-4,
    "weight_decay": 1e-4, "epochs": 50, "batch_size": 512, "confidence_threshold": 0.99,
}
SCAN_SMOKE = {"epochs": 1, "batch_size": 64, "n_heads": 2, "lr": 1e-3}
# Adam at 1e-3: at SCAN's 1e-4 the network barely moves in a few epochs (digits: NMI 0.78
# after 30 epochs, 0.93 at 1e-3). 250,000 images: 5 epochs of CIFAR-10, 30 of digits.
SCAN_QUICK = {"epochs": EpochBudget(images=250_000, at_most=30), "lr": 1e-3, "n_heads": 5}
# SCAN on the GPU: 15 epochs of pairs, then 10 of self-labelling, about a minute.
SCAN_GPU = {"epochs": 15, "lr": 1e-3, "n_heads": 5, "batch_size": 512}
# Self-labelling at SCAN's 1e-4: at the 1e-3 of neighbour clustering it emptied 4 of 10
# clusters of scan-resnet18-selflabel on digits (test NMI 0.72 after neighbour clustering,
# 0.36 after self-labelling; at 1e-4 0.69, none empty; 2-core AMD EPYC Zen 4).
SELF_LABEL = {"self_label_lr": 1e-4}
# A self-labelling row adds only self-labelling's settings to its scan row's, over a schedule
# that leaves the first step alone: a run with both goes on from the scan row's fit
# (TorchNeighbourClusterer.first_step) instead of training it again.
SCAN_SETTINGS = {
    False: {"smoke": SCAN_SMOKE, "quick": SCAN_QUICK, "gpu": SCAN_GPU, "paper": SCAN_PAPER},
    True: {
        "smoke": {**SCAN_SMOKE, "self_label_epochs": 1},
        "quick": {**SCAN_QUICK, **SELF_LABEL,
                  "self_label_epochs": EpochBudget(images=100_000, at_most=10)},
        "gpu": {**SCAN_GPU, **SELF_LABEL, "self_label_epochs": 10},
        "paper": {**SCAN_PAPER, "self_label_epochs": 200},
    },
}
# The settings of a row that reads the encoder without training a network of its own.
READER = {"smoke": {}, "quick": {}, "gpu": {}, "paper": {}}


def _encoder_row(name):
    _, title, _ = ARCHITECTURES[name]
    return Method(
        f"simclr-{name}",
        f"SimCLR contrastive encoder (Chen et al. 2020) on {title}, trained without labels",
        "estimators:TorchContrastiveEncoder", "encoders", ENCODER_SETTINGS[name],
        params=network_params(name), supervised=False,
    )


def _scan_row(name, self_label):
    encoder = f"simclr-{name}"
    steps = "neighbour clustering then self-labelling" if self_label else "neighbour clustering"
    return Method(
        f"scan-{name}{'-selflabel' if self_label else ''}",
        f"SCAN (Van Gansbeke et al. 2020) on {encoder}'s features: {steps}",
        "estimators:TorchNeighbourClusterer", "clustering", SCAN_SETTINGS[self_label],
        params={"n_clusters": N_CLUSTERS, "random_state": SEED}, supervised=False,
        pipeline="backbone", borrows=encoder,
    )


def _kmeans_row(name):
    encoder = f"simclr-{name}"
    return Method(
        f"{encoder}-kmeans", f"k-means on {encoder}'s features (PCA 99%), K = number of classes",
        "sklearn.cluster:KMeans", "clustering", READER,
        params={"n_clusters": N_CLUSTERS, "n_init": 3, "random_state": SEED}, supervised=False,
        pipeline="learned-features", borrows=encoder,
    )


def _probe_row(name):
    encoder = f"simclr-{name}"
    return Method(
        f"probe-{encoder}", f"Linear probe on {encoder}'s features, trained without labels",
        "sklearn.linear_model:LogisticRegression", "probe", READER, params={"max_iter": 1000},
        pipeline="linear-probe", borrows=encoder,
        search_space={profile: PENALTIES for profile in READER},
        tuner=PROBE_SEARCH,
    )


ROWS = [
    row
    for name in ENCODER_ARCHITECTURES
    for row in (_encoder_row(name), _kmeans_row(name), _scan_row(name, False),
                _scan_row(name, True), _probe_row(name))
]
