"""Train a two-layer network on MNIST with NumPy only, using mnistkit.load_mnist and mnistkit.batches.

    python examples/train_numpy.py --epochs 10 --output learning_curve.png

784 -> 256 ReLU -> 10 softmax, cross-entropy, SGD with momentum; trains on the classic
50,000 images, tracks the 10,000 held out, and reports test accuracy at the end.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from common import parser, plot_curves

import mnistkit


class TwoLayerNet:
    """Affine -> ReLU -> affine -> softmax, float32, He-initialised."""

    def __init__(self, inputs: int, hidden: int, classes: int, rng: np.random.Generator) -> None:
        self.params = {
            "W1": (rng.standard_normal((inputs, hidden)) * np.sqrt(2 / inputs)).astype(np.float32),
            "b1": np.zeros(hidden, np.float32),
            "W2": (rng.standard_normal((hidden, classes)) * np.sqrt(2 / hidden)).astype(np.float32),
            "b2": np.zeros(classes, np.float32),
        }
        self.velocity = {k: np.zeros_like(v) for k, v in self.params.items()}

    def logits(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        return np.maximum(x @ p["W1"] + p["b1"], 0) @ p["W2"] + p["b2"]

    def step(self, x: np.ndarray, t: np.ndarray, lr: float, momentum: float = 0.9) -> float:
        """One SGD step on a batch; returns the batch's mean cross-entropy."""
        p = self.params
        h = np.maximum(x @ p["W1"] + p["b1"], 0)
        z = h @ p["W2"] + p["b2"]
        z -= z.max(axis=1, keepdims=True)  # stable softmax
        probs = np.exp(z)
        probs /= probs.sum(axis=1, keepdims=True)
        n = len(t)
        loss = float(-np.log(probs[np.arange(n), t] + 1e-12).mean())
        dz = probs
        dz[np.arange(n), t] -= 1
        dz /= n
        dh = (dz @ p["W2"].T) * (h > 0)
        grads = {"W2": h.T @ dz, "b2": dz.sum(0), "W1": x.T @ dh, "b1": dh.sum(0)}
        for k, g in grads.items():
            self.velocity[k] = momentum * self.velocity[k] - lr * g
            p[k] += self.velocity[k]
        return loss

    def accuracy(self, x: np.ndarray, t: np.ndarray, batch_size: int = 10_000) -> float:
        chunks = mnistkit.batches(x, t, batch_size, shuffle=False)  # views: no copy of x
        return sum(int((self.logits(xb).argmax(1) == tb).sum()) for xb, tb in chunks) / len(t)


def main(argv: Sequence[str] | None = None) -> dict:
    """Train, print progress, save the learning curve; returns the history and test accuracy."""
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    start = time.perf_counter()
    (x, t), (xv, tv), (xt, tt) = mnistkit.load_mnist(
        dataset=args.dataset, data_home=args.data_home, validation=args.validation
    )
    print(f"{args.dataset}: {len(x)} training, {len(xv)} validation, {len(xt)} test images")
    net = TwoLayerNet(x.shape[1], args.hidden, int(max(t.max(), tt.max())) + 1, np.random.default_rng(args.seed))
    train_batches = mnistkit.batches(x, t, args.batch_size, seed=args.seed)
    history: dict[str, list[float]] = {"loss": [], "train_acc": [], "val_acc": []}
    for epoch in range(1, args.epochs + 1):
        losses = [net.step(xb, tb, args.lr) for xb, tb in train_batches]
        history["loss"].append(float(np.mean(losses)))
        history["train_acc"].append(net.accuracy(x, t))
        history["val_acc"].append(net.accuracy(xv, tv))
        print(
            f"epoch {epoch:2d}/{args.epochs}  loss {history['loss'][-1]:.4f}  "
            f"train {history['train_acc'][-1]:.4f}  validation {history['val_acc'][-1]:.4f}  "
            f"({time.perf_counter() - start:.1f} s)"
        )
    test_acc = net.accuracy(xt, tt)
    print(f"test accuracy {test_acc:.4f} after {args.epochs} epochs, {time.perf_counter() - start:.1f} s in all")
    plot_curves(history, args.output, f"NumPy two-layer net on {args.dataset}")
    return {"history": history, "test_accuracy": test_acc}


if __name__ == "__main__":
    main()
