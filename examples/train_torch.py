"""Train a two-layer network on MNIST with PyTorch, the way torchvision tutorials do, through mnistkit.

    python examples/train_torch.py --epochs 10 --num-workers 2 --output learning_curve_torch.png

The same network and schedule as train_numpy.py (784 -> 256 ReLU -> 10, SGD with
momentum).  The data comes from mnistkit's torchvision drop-in: the tutorial's

    from torchvision import datasets
    train = datasets.MNIST(root, train=True, download=True, transform=...)

with the first line changed to ``from mnistkit import torchvision as datasets``
(no torchvision needed; the files go to <root>/MNIST/raw/ as torchvision puts
them, downloaded from mnistkit's mirrors and verified).  The classic
50,000 / 10,000 split is two Subsets.  ``--loader mnistkit`` feeds the same
network from mnistkit.adapters.torch.torch_loaders instead (one gather per batch).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from common import parser, plot_curves

from mnistkit import torchvision as datasets  # was: from torchvision import datasets
from mnistkit.adapters.torch import torch_loaders

DROP_INS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}


def flat_tensor(img):
    """torchvision's ``ToTensor()`` followed by flattening: a PIL image -> float32 (784,) in [0, 1]."""
    import torch

    return torch.from_numpy(np.asarray(img, dtype=np.float32) / np.float32(255)).reshape(-1)


def dropin_loaders(args):
    """A torchvision tutorial's loaders, over the drop-in dataset."""
    import torch
    from torch.utils.data import DataLoader, Subset

    if args.dataset not in DROP_INS:
        msg = f"--loader torchvision knows {', '.join(DROP_INS)}; use --loader mnistkit for {args.dataset}"
        raise SystemExit(msg)
    make = getattr(datasets, DROP_INS[args.dataset])
    full = make(args.root, train=True, download=True, transform=flat_tensor)
    test = make(args.root, train=False, download=True, transform=flat_tensor)
    n = len(full)
    train, val = Subset(full, range(n - args.validation)), Subset(full, range(n - args.validation, n))
    options = dict(num_workers=args.num_workers, persistent_workers=args.num_workers > 0)
    generator = torch.Generator().manual_seed(args.seed)
    return (
        DataLoader(train, batch_size=args.batch_size, shuffle=True, generator=generator, **options),
        DataLoader(val, batch_size=1000, **options),
        DataLoader(test, batch_size=1000, **options),
        len(full.classes),
    )


def main(argv: Sequence[str] | None = None) -> dict:
    """Train, print progress, save the learning curve; returns the history and test accuracy."""
    import torch
    from torch import nn

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader worker processes (default: 2)")
    p.add_argument(
        "--loader",
        choices=("torchvision", "mnistkit"),
        default="torchvision",
        help="torchvision: the drop-in dataset + DataLoader (default); mnistkit: torch_loaders",
    )
    p.add_argument("--root", default="data", help="torchvision root folder for --loader torchvision (default: data)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    if args.loader == "torchvision":
        train, val, test, classes = dropin_loaders(args)
    else:
        train, val, test = torch_loaders(
            args.dataset,
            batch_size=args.batch_size,
            eval_batch_size=1000,
            num_workers=args.num_workers,
            seed=args.seed,
            validation=args.validation,
            flatten=True,
            data_home=args.data_home,
            persistent_workers=args.num_workers > 0,  # workers (and their mapped pages) live across epochs
        )
        classes = len(train.dataset.dataset.classes)
    print(f"{args.dataset}: {len(train.dataset)} training, {len(val.dataset)} validation, {len(test.dataset)} test")
    model = nn.Sequential(nn.Linear(784, args.hidden), nn.ReLU(), nn.Linear(args.hidden, classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    @torch.no_grad()
    def accuracy(loader) -> float:
        model.eval()
        hits = sum(int((model(xb).argmax(1) == tb).sum()) for xb, tb in loader)
        return hits / len(loader.dataset)

    history: dict[str, list[float]] = {"loss": [], "train_acc": [], "val_acc": []}
    for epoch in range(1, args.epochs + 1):
        model.train()
        total, hits, seen = 0.0, 0, 0
        for xb, tb in train:
            optimizer.zero_grad()
            out = model(xb)
            loss = loss_fn(out, tb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(tb)
            hits += int((out.argmax(1) == tb).sum())
            seen += len(tb)
        history["loss"].append(total / seen)
        history["train_acc"].append(hits / seen)  # measured during the epoch, while the weights moved
        history["val_acc"].append(accuracy(val))
        print(
            f"epoch {epoch:2d}/{args.epochs}  loss {history['loss'][-1]:.4f}  "
            f"train {history['train_acc'][-1]:.4f}  validation {history['val_acc'][-1]:.4f}  "
            f"({time.perf_counter() - start:.1f} s)"
        )
    test_acc = accuracy(test)
    print(f"test accuracy {test_acc:.4f} after {args.epochs} epochs, {time.perf_counter() - start:.1f} s in all")
    plot_curves(history, args.output, f"PyTorch two-layer net on {args.dataset}")
    return {"history": history, "test_accuracy": test_acc}


if __name__ == "__main__":
    main()
