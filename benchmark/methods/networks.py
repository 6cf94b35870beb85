"""The networks that the deep families train, and the settings those families share.

Not a family: :mod:`~benchmark.methods.cnn`, :mod:`~benchmark.methods.pseudolabel` and
:mod:`~benchmark.methods.deepcluster` build their rows from it.
"""

from .row import SEED, EpochBudget

# name -> (architecture, title, fixed parameters of every network of that name)
ARCHITECTURES = {
    "fast": ("fast", "a small fast CIFAR network in the spirit of airbench", {}),
    "alexnet": ("alexnet", "AlexNet adapted to small images, input enlarged 2x (32x32 to 64x64)",
                {"upsample": 2}),
    "resnet18": ("resnet18", "ResNet18 with a 3x3 stem for small images", {}),
    "vgg16bn": ("vgg16_bn", "VGG16 with batch norm, for small images", {}),
}
# The networks of the study, which the families train alike; the fast one is ours.
STUDY_NETWORKS = ("alexnet", "resnet18", "vgg16bn")

# Every network's smoke settings, in every family: one epoch on a few images, for tests.
SMOKE = {
    "fast": {"epochs": 1, "batch_size": 64, "module__widths": (16, 32, 32), "train_limit": 256},
    **{name: {"epochs": 1, "batch_size": 32, "train_limit": 64} for name in STUDY_NETWORKS},
}
# The quick profile of the study's networks, in every family: 40,000 images shown (4 epochs of
# 10,000 CIFAR-10 images, 10 of the 1,437 digits) in batches of 64, at a learning rate per
# network. 4 epochs in batches of 256, 24 optimiser steps on digits, left cnn-vgg16bn at chance
# (test 0.10) and cnn-alexnet at 0.69; with these, digits at seed 0 (AMD EPYC, float32):
# cnn-alexnet 0.975, cnn-resnet18 0.975, cnn-vgg16bn 0.961 (0.922 at 0.02).
QUICK_LR = {"alexnet": 0.02, "resnet18": 0.02, "vgg16bn": 0.01}
# AlexNet's classifier in the quick profile: 1,024 wide instead of 4,096. Its two hidden layers
# hold 34 of its 36 million weights and took 80% of its training time on digits (torch's
# profiler, 2-core AMD EPYC Zen 4); at 1,024, cnn-alexnet trains 3.3 times as fast (14 s
# against 47 s) to the same test accuracy (0.975 against 0.981, seed 0), and the uic rows still
# collapse as at 4,096 (results/digits-first-run).
QUICK_NETWORK = {"alexnet": {"module__hidden": 1024}}
STUDY_QUICK = {
    name: {"epochs": EpochBudget(images=40_000, at_most=10), "batch_size": 64,
           "lr": QUICK_LR[name], "train_limit": 10_000, **QUICK_NETWORK.get(name, {})}
    for name in STUDY_NETWORKS
}
# The gpu profile's sizes (unmeasured until a GPU is lent: benchmark/gpu_check.sh): every
# network trains on all training images; at the study's networks' 28,000-30,000 training
# images per second on an H200 (results/throughput-gpu.md), 20 epochs of 50,000 CIFAR-10
# images take about 35 seconds, label passes aside.
GPU_BATCH = {"batch_size": 512}

# airbench's light augmentation (flips, mild crops, no colour jitter): with only ten epochs,
# the study's stronger policy costs 7 points of CIFAR-10 accuracy (0.63 vs 0.70, 5 epochs
# on 10,000 images).
LIGHT_AUGMENTATION = {
    "augment__brightness": None, "augment__contrast": None, "augment__saturation": None,
    "augment__hue": None, "augment__crop_scale": (0.6, 1.0),
}


def network_params(name, **params):
    """Fixed parameters of a row's network `name`: architecture, seed, `params`, its own."""
    arch, _, fixed = ARCHITECTURES[name]
    return {"arch": arch, **params, "random_state": SEED, **fixed}
