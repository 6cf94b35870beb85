"""Training throughput of each CNN architecture, and the cost of a pseudo-label epoch.

``python -m benchmark.throughput --images 2048 --out results/throughput-cpu.md``

Each architecture trains two epochs on random 32x32 colour images with the study's
augmentation, in each precision asked for (``--precisions float32,bfloat16``; "auto" is
what training picks on this device); the second epoch is timed (the first warms up
kernels and caches), from its own history record, which ends on a device
synchronisation. The same is done for the end-to-end pseudo-label estimator with each
``label_pass``: "separate" labels the images in a forward pass of its own, "reuse" takes
them from the previous epoch's training pass.
"""

import argparse
import os
import sys
from datetime import date

import numpy as np
import torch
from tabulate import tabulate

from estimators import TorchCNNClassifier, TorchPseudoLabelClassifier
from estimators.training import has_native_bfloat16, resolve_device

from .arguments import names_among
from .harness import cpu_model
from .registry import CNN_ARCHITECTURES

# Figures quoted by issue 4 as measured on this machine's kind with torch 2.14.
ISSUE_FIGURES = {"alexnet": 229, "resnet18": 284, "vgg16bn": 55, "fast": 460}
PRECISIONS = ("auto", "float32", "bfloat16")


def training_throughput(arch, fixed, *, n_images, batch_size, input="rgb", precision="auto",
                        seed=0):
    """Images per second of one warm training epoch of the supervised CNN."""
    X, y = _random_images(n_images, seed)
    model = TorchCNNClassifier(arch, input=input, epochs=2, batch_size=batch_size,
                               precision=precision, tta_flip=False, verbose=0,
                               random_state=seed, **fixed)
    return n_images / _warm_epoch_seconds(model.fit(X, y))


def pseudo_label_epoch_seconds(arch, fixed, *, n_images, batch_size, label_pass, seed=0):
    """Seconds of one warm epoch (labelling and training) of the pseudo-label estimator."""
    X, _ = _random_images(n_images, seed)
    model = TorchPseudoLabelClassifier(arch, n_clusters=10, label_pass=label_pass, epochs=2,
                                       batch_size=batch_size, verbose=0, random_state=seed,
                                       **fixed)
    return _warm_epoch_seconds(model.fit(X))


def _random_images(n_images, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_images, 32, 32, 3), dtype=np.uint8)
    return images, rng.integers(0, 10, n_images)


def _warm_epoch_seconds(model):
    return model.history_[-1]["seconds"]


def main(argv=None):
    """Measure every architecture and write a markdown table."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.throughput",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048, help="images per timed epoch")
    parser.add_argument("--batch-size", type=int, default=256, help="images per batch (256)")
    parser.add_argument("--archs", default=list(CNN_ARCHITECTURES),
                        type=names_among(CNN_ARCHITECTURES, "architecture"),
                        help=f"comma-separated, of {','.join(CNN_ARCHITECTURES)} (default all)")
    parser.add_argument("--precisions", default=["auto"],
                        type=names_among(PRECISIONS, "precision"),
                        help="comma-separated, of auto,float32,bfloat16 (default auto: what "
                             "training picks here)")
    parser.add_argument("--label-passes", action=argparse.BooleanOptionalAction, default=True,
                        help="also time pseudo-label epochs (default: yes)")
    parser.add_argument("--out", required=True, help="markdown file to write")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    device = resolve_device()
    device_name = torch.cuda.get_device_name() if device.type == "cuda" else cpu_model()
    auto = "bfloat16" if has_native_bfloat16(device) else "float32"
    rows, label_rows = [], []
    for name in args.archs:
        arch, _, fixed = CNN_ARCHITECTURES[name]
        size = round(32 * fixed.get("upsample", 1))
        for input in ("rgb", "sobel"):
            speeds = {precision: training_throughput(
                arch, fixed, n_images=args.images, batch_size=args.batch_size, input=input,
                precision=precision) for precision in args.precisions}
            rows.append([name, input, f"{size}x{size}",
                         *(f"{speed:,.0f}" for speed in speeds.values()), ISSUE_FIGURES[name]])
        if not args.label_passes:
            continue
        seconds = {
            label_pass: pseudo_label_epoch_seconds(arch, fixed, n_images=args.images,
                                                   batch_size=args.batch_size,
                                                   label_pass=label_pass)
            for label_pass in ("separate", "reuse")
        }
        label_rows.append([name, f"{seconds['separate']:.1f}", f"{seconds['reuse']:.1f}",
                           f"{seconds['reuse'] / seconds['separate']:.2f}"])
    speed_headers = [f"train img/s, {auto} (auto)" if precision == "auto"
                     else f"train img/s, {precision}" for precision in args.precisions]
    table = tabulate(rows, headers=["architecture", "input", "network input", *speed_headers,
                                    "issue 4's figure, img/s"],
                     tablefmt="github", disable_numparse=True)
    label_table = tabulate(label_rows, headers=["architecture", "separate, s/epoch",
                                                "reuse, s/epoch", "reuse / separate"],
                           tablefmt="github", disable_numparse=True)
    isa_cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    report = "\n\n".join([
        "# Training throughput",
        "Command: `" + (f"ONEDNN_MAX_CPU_ISA={isa_cap} " if isa_cap else "")
        + f"python -m benchmark.throughput {' '.join(argv or sys.argv[1:])}`",
        f"Measured {date.today()} on {device.type} ({device_name}, "
        f"torch's CPU kernels: {torch.backends.cpu.get_cpu_capability()}, "
        f"{torch.get_num_threads()} CPU threads), torch {torch.__version__}, batch "
        f"{args.batch_size}, {args.images} random 32x32 RGB images per timed epoch, "
        f"augmentation on. Load average (1 min) {load_before:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end: above the CPU count, figures are deflated. "
        f"bfloat16 runs under autocast with channels-last tensors; \"auto\" is {auto} "
        "on this device.",
        table,
        "Issue 4's ResNet18 figure is for 64x64 inputs through torchvision's stem (a 7x7 "
        "stride-2 convolution and a max pool); this toolkit's ResNet18 has a 3x3 stride-1 "
        "stem for small images, so at 32x32 it computes the maps torchvision's computes "
        "at 128x128, four times the work of its 64x64 figure.",
        *([
            "## Pseudo-label epochs: a separate label pass vs labels reused from training",
            f"`TorchPseudoLabelClassifier`, rgb input, {args.images} images, seconds of the "
            f"second epoch (labelling, rebalancing and training), precision {auto}.",
            label_table,
        ] if args.label_passes else []),
    ])
    with open(args.out, "w") as file:
        file.write(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
