"""Train a two-layer network on MNIST with PyTorch, fed by mnistkit's DataLoaders.

    python examples/train_torch.py --epochs 10 --num-workers 2 --output learning_curve_torch.png

The same network and schedule as train_numpy.py (784 -> 256 ReLU -> 10, SGD with
momentum), with data from mnistkit.adapters.torch.torch_loaders: the classic
50,000 / 10,000 split, workers sharing the memory-mapped cache.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from common import parser, plot_curves

from mnistkit.adapters.torch import torch_loaders


def main(argv: Sequence[str] | None = None) -> dict:
    """Train, print progress, save the learning curve; returns the history and test accuracy."""
    import torch
    from torch import nn

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader worker processes (default: 2)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    torch.manual_seed(args.seed)
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
    print(f"{args.dataset}: {len(train.dataset)} training, {len(val.dataset)} validation, {len(test.dataset)} test")
    classes = len(train.dataset.dataset.classes)
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
