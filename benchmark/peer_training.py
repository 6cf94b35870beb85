"""Benchmark the training loop against skorch's NeuralNetClassifier, with everything else equal.

``pip install -e ".[peers]" && python -m benchmark.peer_training --dataset PATH --limit 2000
--epochs 2,1 --out results/peer-training-cpu.md``

Each network row (``cnn-fast``, ``cnn-resnet18`` by default) is fitted twice on the same
images: by the toolkit's :class:`~estimators.TorchCNNClassifier` with the row's settings
under the chosen profile, and by skorch with the same network (built and initialised the
same way), optimiser, per-batch learning-rate schedule, loss, augmentation (the toolkit's
:class:`~features.augment.RandomAugment`, batched, inside skorch's module) and epochs, so that
the loops are what differs. Reported: training images per second (epochs x images / fit
seconds) and test accuracy without test-time flips. skorch is an extra of this script, never
a dependency of the toolkit.
"""

import argparse
import os
import sys
import time
from datetime import date

import numpy as np
import torch
from sklearn.base import clone
from torch import nn

from .arguments import DATA_FLAGS, positive_int, with_flags
from .datasets import DataError, load_dataset
from .harness import cpu_model
from .markdown import command_line, load_sentence, markdown_table, write_report
from .registry import get_methods


class AugmentedNetwork(nn.Module):
    """Augmentation (training only), standardisation, then the network: the toolkit's input
    pipeline as one module, for a loop that feeds a module [0, 1] images."""

    def __init__(self, network, augment, transform):
        super().__init__()
        self.network, self.augment, self.transform = network, augment, transform

    def forward(self, images):
        if self.training:
            images = self.augment(images)
        return self.network(self.transform(images))


def toolkit_estimator(row, profile, epochs, seed):
    """The row's estimator under `profile`, with `epochs`, without test-time augmentation or
    lookahead (skorch has neither), on every image it is given (skorch's loop draws no
    subset)."""
    (method,) = get_methods([row])
    estimator = method.estimator(profile, seed=seed)
    return estimator.set_params(epochs=epochs, tta_flip=False, tta_shift=0, lookahead=False,
                                max_samples=None, verbose=0)


def _scaled_groups(parts, module):
    """skorch's ``optimizer__param_groups`` for the estimator's groups past the first (the
    parameters whose learning rate it scales), each parameter by its name in `module`."""
    names = {id(parameter): name for name, parameter in module.named_parameters()}
    return [(names[id(parameter)], {"lr": group["initial_lr"],
                                    "weight_decay": group["weight_decay"]})
            for group in parts.optimizer_.param_groups[1:] for parameter in group["params"]]


def skorch_twin(estimator, images):
    """A skorch NeuralNetClassifier that trains as `estimator` would on `images` (N, H, W, C):
    the network, input pipeline and schedule the estimator builds, skorch's own loop."""
    from skorch import NeuralNetClassifier
    from skorch.callbacks import LRScheduler

    params = estimator.get_params()
    parts = clone(estimator).initialize_for(images, n_outputs=10)
    generator = torch.Generator().manual_seed(estimator.random_state)
    module = AugmentedNetwork(parts.module_, parts.augment_, parts.input_transform_)
    return NeuralNetClassifier(
        module, optimizer__param_groups=_scaled_groups(parts, module),
        criterion=nn.CrossEntropyLoss, criterion__label_smoothing=params["label_smoothing"],
        optimizer=torch.optim.SGD, lr=params["lr"], optimizer__momentum=params["momentum"],
        optimizer__weight_decay=params["weight_decay"],
        **{"optimizer__fused": parts.optimizer_.defaults["fused"],
           **{name: value for name, value in params.items() if name.startswith("optimizer__")}},
        max_epochs=params["epochs"], batch_size=params["batch_size"], train_split=None,
        iterator_train__shuffle=True, iterator_train__drop_last=True,
        iterator_train__generator=generator,
        callbacks=[("schedule", LRScheduler(policy=torch.optim.lr_scheduler.LambdaLR,
                                            lr_lambda=parts.lr_scheduler_.lr_lambdas[0],
                                            step_every="batch"))],
        device="cpu", verbose=0,
    )


def _as_inputs(images):
    """uint8 images (N, H, W, C) as float [0, 1] tensors (N, C, H, W)."""
    return images.permute(0, 3, 1, 2).float() / 255


def timed(fit):
    start = time.perf_counter()
    fit()
    return time.perf_counter() - start


def compare(row, dataset, *, profile, epochs, seed):
    """One row per loop: images per second and test accuracy."""
    estimator = toolkit_estimator(row, profile, epochs, seed)
    if estimator.optimizer != "sgd":
        raise ValueError(f"{row}: the comparison gives skorch SGD; the row uses "
                         f"{estimator.optimizer!r}.")
    X, y = dataset.X_train, dataset.y_train
    n_images = epochs * (len(X) // estimator.batch_size) * estimator.batch_size
    seconds = timed(lambda: estimator.fit(X, y))
    rows = [{"row": row, "loop": "toolkit", "epochs": epochs, "fit s": seconds,
             "images/s": n_images / seconds,
             "test acc": estimator.score(dataset.X_test, dataset.y_test)}]
    peer = skorch_twin(estimator, X)
    inputs = _as_inputs(torch.from_numpy(X)).numpy()
    labels = np.unique(y, return_inverse=True)[1].astype(np.int64)
    seconds = timed(lambda: peer.fit(inputs, labels))
    test_inputs = _as_inputs(torch.from_numpy(dataset.X_test)).numpy()
    test_labels = np.searchsorted(np.unique(y), dataset.y_test)
    rows.append({"row": row, "loop": "skorch", "epochs": epochs, "fit s": seconds,
                 "images/s": n_images / seconds,
                 "test acc": float(np.mean(peer.predict(test_inputs) == test_labels))})
    return rows


def main(argv=None):
    """Run the comparison and write its markdown report."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.peer_training",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", help="as for run --dataset (digits)")
    parser.add_argument("--limit", type=positive_int,
                        help="keep N training images and the same share of test images")
    parser.add_argument("--rows", default="cnn-fast,cnn-resnet18",
                        help="network rows to train (cnn-fast,cnn-resnet18)")
    parser.add_argument("--profile", default="quick", help="profile of the rows' settings")
    parser.add_argument("--epochs", default="3,1", help="epochs of each row, in order (3,1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of both loops (0)")
    parser.add_argument("--out", required=True, help="markdown file to write")
    args = parser.parse_args(argv)

    rows, epochs = args.rows.split(","), [int(n) for n in args.epochs.split(",")]
    if len(rows) != len(epochs):
        parser.error("--epochs needs one number per row of --rows")
    try:
        dataset = load_dataset(args.dataset, limit=args.limit)
    except DataError as exc:
        parser.error(with_flags(exc, {name: DATA_FLAGS[name] for name in ("limit", "source")}))
    load_before = os.getloadavg()[0]
    results = []
    for row, row_epochs in zip(rows, epochs):
        results += compare(row, dataset, profile=args.profile, epochs=row_epochs,
                           seed=args.seed)
        print(markdown_table(results[-2:]), file=sys.stderr, flush=True)
    write_report(args.out, [
        f"# Training loop: the toolkit against skorch, {dataset.name}",
        command_line("peer_training", argv),
        f"Measured {date.today()} on {cpu_model()} ({torch.get_num_threads()} torch threads, "
        f"torch kernels {torch.backends.cpu.get_cpu_capability()}), {len(dataset.X_train)} "
        f"training and {len(dataset.X_test)} test images, profile {args.profile}, seed "
        f"{args.seed}. {load_sentence(load_before)}",
        markdown_table(results),
    ])


if __name__ == "__main__":
    main()
