"""SimCLR's augmentation, batched: this toolkit's RandomAugment against kornia's.

``python -m benchmark.augment_benchmark --out results/augment-cpu.md`` (kornia is an extra of
the benchmark scripts, ``pip install -e ".[peers]"``; never a dependency of the toolkit)

Both draw their parameters per image and transform a whole batch at once on the training
device, with SimCLR's CIFAR-10 policy: a resized crop of 20% to 100% of the image, a flip,
colour jitter of strength 0.4 (hue 0.1) four times in five, grey one time in five (kornia
in its usual order, crop first; the toolkit in its own, jitter first). Each is timed over
the same batches of random 32x32 colour images, after a warm-up call.
"""

import argparse
import platform
import time
from datetime import date

import torch
from tabulate import tabulate

from estimators.contrastive import SIMCLR_AUGMENTATION
from features.augment import RandomAugment

from .harness import cpu_model


def toolkit_policy(generator):
    """SimCLR's policy as :class:`~features.augment.RandomAugment` runs it."""
    return RandomAugment(generator=generator, **SIMCLR_AUGMENTATION)


def kornia_policy(size):
    """SimCLR's policy as kornia's augmentation module runs it (kornia imported here)."""
    from kornia import augmentation as K

    return torch.nn.Sequential(
        K.RandomResizedCrop(size, scale=(0.2, 1.0)),
        K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
    )


def images_per_second(augment, images, repeats):
    """Images a second that `augment` transforms, over `repeats` calls after a warm-up."""
    augment(images)
    start = time.perf_counter()
    for _ in range(repeats):
        augment(images)
    return repeats * len(images) / (time.perf_counter() - start)


def main(argv=None):
    """Time both policies; write the markdown table to ``--out`` and print it."""
    args = _parser().parse_args(argv)
    images = torch.rand(args.batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    policies = {"toolkit RandomAugment": toolkit_policy(torch.Generator().manual_seed(0))}
    try:
        policies["kornia.augmentation"] = kornia_policy((32, 32))
    except ImportError:
        print("kornia is not installed (pip install -e '.[peers]'): timing the toolkit only")
    rows = [[name, f"{images_per_second(policy, images, args.repeats):,.0f}"]
            for name, policy in policies.items()]
    text = "\n".join([
        "# SimCLR's augmentation, batched",
        "",
        f"Command: `python -m benchmark.augment_benchmark --batch-size {args.batch_size} "
        f"--repeats {args.repeats} --out {args.out}`",
        "",
        f"Measured {date.today()} on {cpu_model()} ({torch.get_num_threads()} torch threads, "
        f"torch kernels {torch.backends.cpu.get_cpu_capability()}), Python "
        f"{platform.python_version()}, torch {torch.__version__}: batches of "
        f"{args.batch_size} random 32x32 colour images, float32, on the CPU.",
        "",
        tabulate(rows, headers=["augmentation", "images/s"], tablefmt="github",
                 disable_numparse=True),
        "",
    ])
    with open(args.out, "w") as file:
        file.write(text)
    print(text)
    return 0


def _parser():
    parser = argparse.ArgumentParser(prog="python -m benchmark.augment_benchmark",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default="results/augment-cpu.md")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
