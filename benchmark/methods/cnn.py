"""Supervised CNNs: each network trained with labels (softmax cross-entropy)."""

from .networks import (
    ARCHITECTURES,
    GPU_BATCH,
    LIGHT_AUGMENTATION,
    SMOKE,
    STUDY_NETWORKS,
    STUDY_QUICK,
    network_params,
)
from .row import Method

# The study's optimiser settings (SPEC section 3).
PAPER = {
    "optimizer": "sgd", "momentum": 0.9, "batch_size": 256, "weight_decay": 1e-4,
    "module__dropout": 0.5, "lr": 1e-4, "epochs": 500, "lr_schedule": "step",
    "lr_milestones": [400], "lr_gamma": 0.1, "label_smoothing": 0.0, "tta_flip": False,
}
SETTINGS = {
    "fast": {
        "smoke": SMOKE["fast"],
        "quick": {"epochs": 10, "optimizer__nesterov": True, **LIGHT_AUGMENTATION},
        "gpu": {"epochs": 20, "optimizer__nesterov": True, **LIGHT_AUGMENTATION},
        "paper": PAPER,
    },
    **{name: {
        "smoke": SMOKE[name],
        "quick": STUDY_QUICK[name],
        "gpu": {"epochs": 20, "lr": 0.1, **GPU_BATCH},
        "paper": PAPER,
    } for name in STUDY_NETWORKS},
}

ROWS = [
    Method(
        f"cnn-{name}",
        f"{title[0].upper()}{title[1:]}, trained with labels (softmax cross-entropy)",
        "estimators:TorchCNNClassifier", "cnn", SETTINGS[name], params=network_params(name),
        reference=f"cnn-{name}",
    )
    for name, (_, title, _) in ARCHITECTURES.items()
]
