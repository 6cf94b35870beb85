"""Training throughput of each CNN architecture, in images per second.

``python -m benchmark.throughput --images 2048 --out results/throughput-cpu.md``

Each architecture trains two epochs on random 32x32 colour images with the study's
augmentation; the second epoch is timed (the first warms up kernels and caches), from its
own history record, which ends on a device synchronisation.
"""

import argparse
import os
import platform
import sys
from datetime import date

import numpy as np
import torch
from tabulate import tabulate

from estimators import TorchCNNClassifier
from estimators.training import resolve_device

from .registry import CNN_ARCHITECTURES


def training_throughput(arch, fixed, *, n_images, batch_size, input="rgb", seed=0):
    """Images per second of one warm training epoch."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (n_images, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n_images)
    model = TorchCNNClassifier(arch, input=input, epochs=2, batch_size=batch_size,
                               tta_flip=False, verbose=0, random_state=seed, **fixed)
    model.fit(X, y)
    return n_images / model.history_[-1]["seconds"]


def main(argv=None):
    """Measure every architecture and write a markdown table."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.throughput")
    parser.add_argument("--images", type=int, default=2048, help="images per timed epoch")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--archs", default=",".join(CNN_ARCHITECTURES))
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    device = resolve_device()
    device_name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor()
    rows = []
    for name in args.archs.split(","):
        arch, _, fixed = CNN_ARCHITECTURES[name]
        size = fixed.get("upsample", 32)
        for input in ("rgb", "sobel"):
            speed = training_throughput(arch, fixed, n_images=args.images,
                                        batch_size=args.batch_size, input=input)
            rows.append([name, input, f"{size}x{size}", f"{speed:,.0f}"])
    table = tabulate(rows, headers=["architecture", "input", "network input", "train img/s"],
                     tablefmt="github", disable_numparse=True)
    report = "\n\n".join([
        "# Training throughput",
        f"Command: `python -m benchmark.throughput {' '.join(argv or sys.argv[1:])}`",
        f"Measured {date.today()} on {device.type} ({device_name or platform.machine()}, "
        f"{torch.get_num_threads()} CPU threads), torch {torch.__version__}, batch "
        f"{args.batch_size}, {args.images} random 32x32 RGB images per timed epoch, "
        f"augmentation on. Load average (1 min) {load_before:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end: above the CPU count, figures are deflated.",
        table,
    ])
    with open(args.out, "w") as file:
        file.write(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
