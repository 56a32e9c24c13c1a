"""What both training examples share: their command line and the learning-curve plot."""

from __future__ import annotations

import argparse
from pathlib import Path


def parser(description: str) -> argparse.ArgumentParser:
    """The arguments every example takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--epochs", type=int, default=10, help="passes over the training set (default: 10)")
    p.add_argument("--dataset", default="mnist", help="dataset name (default: mnist)")
    p.add_argument("--data-home", help="data folder (default: $MNISTKIT_HOME or the user cache)")
    p.add_argument("--output", default="learning_curve.png", help="learning-curve PNG (default: %(default)s)")
    p.add_argument("--validation", type=int, default=10_000, help="training images held out (default: 10000)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--hidden", type=int, default=256, help="hidden units (default: 256)")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate, momentum 0.9 (default: 0.05)")
    p.add_argument("--seed", type=int, default=0)
    return p


def plot_curves(history: dict[str, list[float]], path: str | Path, title: str) -> Path | None:
    """Save loss and accuracy per epoch as a PNG; without matplotlib, say so and return None."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'mnistkit[examples]')")
        return None
    epochs = range(1, len(history["loss"]) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, history["loss"], marker="o")
    left.set(xlabel="epoch", ylabel="training loss (cross-entropy)", title=title)
    right.plot(epochs, history["train_acc"], marker="o", label="training")
    right.plot(epochs, history["val_acc"], marker="o", label="validation")
    right.set(xlabel="epoch", ylabel="accuracy")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"learning curve saved to {path}")
    return Path(path)
