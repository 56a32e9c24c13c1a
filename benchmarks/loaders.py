"""Training loaders side by side: torchvision-style items, torch_loaders, and the gather floor.

Usage::

    python benchmarks/loaders.py [DATA] [--batch-size 64] [--repeat 5] [--threads 1] [--doc docs/loaders.md]

``DATA`` is a folder with the four MNIST ``.gz`` files (default ``$MNISTKIT_BENCH_DATA``, else
``../shared/data/mnist`` beside the repository).  Each measurement is one shuffled training epoch, single
process (``num_workers=0``), ``--threads`` PyTorch threads, batches of ``--batch-size``, every batch a
float32 tensor (N, 1, 28, 28) in [0, 1] and int64 labels:

* ``torchvision.datasets.MNIST`` itself, where torchvision is installed (same files, same transform);
* ``torchvision-style``: ``mnistkit.torchvision.MNIST`` with a ToTensor transform (torchvision's own when it
  is installed, else the same conversion), one PIL image per item, then ``default_collate`` - what a
  torchvision tutorial runs;
* ``DataLoader(torch_dataset, shuffle=True)``: automatic batching over ``__getitems__`` (one gather, then
  one tensor per item, stacked again by ``default_collate``);
* ``torch_loaders``: the training loader as returned (one gather per batch, no per-item tensors);
* ``gather floor``: no DataLoader at all - the whole split as one uint8 tensor in memory, each batch
  gathered by a slice of a random permutation and scaled to float32 (the faster of ``index_select`` and
  NumPy ``take``, measured in the same round);
* ``device-resident`` (by default only with a GPU; ``--device``): the split copied to the device once,
  batches gathered and scaled there, which is how the fastest MNIST training runs feed a GPU.

Methods run interleaved, one epoch each per round, ``--repeat`` rounds; the table gives the median
samples/s, the best block of 50 batches, the range, and the ratios to the floor.  ``--doc`` writes the Markdown page.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _register_if_not_published(data: Path) -> bool:
    """Tiny test data is not the published MNIST: register it as "mnist" in this process. True if so."""
    from dataclasses import replace

    from mnistkit import read_idx, registry
    from mnistkit.idx import encode_idx

    arrays = {name: read_idx(data / name) for name in NAMES}
    real = registry.MNIST
    digests = {name: "sha256:" + hashlib.sha256(encode_idx(a)).hexdigest() for name, a in arrays.items()}
    if all(digests[spec.name] == spec.decoded_sha256 for spec in real.files):
        return False
    files = tuple(registry.idx_file(name, arrays[name].shape, decoded_sha256=digests[name]) for name in NAMES)
    registry.DATASETS["mnist"] = replace(real, files=files, mirrors=())
    return True


def _to_tensor():
    """torchvision's ToTensor when installed, else the same conversion (uint8 HxW -> float32 1xHxW / 255)."""
    try:
        from torchvision.transforms import ToTensor

        return ToTensor(), "torchvision.transforms.ToTensor"
    except ImportError:
        import torch

        def to_tensor(img):
            return torch.from_numpy(np.array(img, np.uint8, copy=True)).unsqueeze(0).to(torch.float32).div(255)

        return to_tensor, "ToTensor-equivalent (torchvision not installed)"


#: Batches per timed block: the best block of a method is its rate when nothing else ran on the machine.
BLOCK = 50


class Clock:
    """Times one epoch, and each block of BLOCK batches within it."""

    def __init__(self) -> None:
        self.blocks: list[float] = []  # samples/s of each complete block
        self.start = self.mark = time.perf_counter()
        self.samples = self.in_block = self.batches = 0

    def tick(self, samples: int) -> None:
        self.samples += samples
        self.in_block += samples
        self.batches += 1
        if self.batches % BLOCK == 0:
            now = time.perf_counter()
            self.blocks.append(self.in_block / (now - self.mark))
            self.mark, self.in_block = now, 0

    def rate(self) -> float:
        return self.samples / (time.perf_counter() - self.start)


def _epoch(loader, clock: Clock) -> None:
    for _, t in loader:
        clock.tick(len(t))


def main(argv: list[str] | None = None) -> int:
    default_data = os.environ.get("MNISTKIT_BENCH_DATA") or str(REPO.parent / "shared" / "data" / "mnist")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", nargs="?", default=default_data, help="folder with the four MNIST .gz files")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeat", type=int, default=5, help="rounds; each method runs one epoch per round")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument(
        "--device",
        default="auto",
        help="device of the device-resident loader: auto (a GPU when present, else none), cpu, cuda, none",
    )
    p.add_argument("--doc", type=Path, help="write this Markdown page")
    args = p.parse_args(argv)

    import torch
    from torch.utils.data import DataLoader

    import mnistkit
    from mnistkit import torchvision as tv
    from mnistkit.adapters.torch import torch_dataset, torch_loaders

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    missing = [n for n in NAMES if not (data / n).is_file()]
    if missing:
        print(f"error: {data} lacks {', '.join(missing)}", file=sys.stderr)
        return 3
    tiny = _register_if_not_published(data)
    if tiny:
        print(f"note: {data} is not the published MNIST: registered in this process as 'mnist'", file=sys.stderr)

    work = Path(tempfile.mkdtemp(prefix="mnistkit-loaders-"))
    try:
        home, root = work / "home", work / "root"
        (home / "mnist").mkdir(parents=True)
        (root / "MNIST" / "raw").mkdir(parents=True)
        for name in NAMES:
            shutil.copy(data / name, home / "mnist" / name)
            shutil.copy(data / name, root / "MNIST" / "raw" / name)
            # torchvision itself reads the extracted files (it extracts them after downloading)
            (root / "MNIST" / "raw" / name[: -len(".gz")]).write_bytes(gzip.decompress((data / name).read_bytes()))
        os.environ["MNISTKIT_HOME"] = str(home)
        os.environ["MNISTKIT_OFFLINE"] = "1"
        bs = args.batch_size
        to_tensor, to_tensor_name = _to_tensor()

        # Built once (cache made untimed); each round times one epoch of each.
        per_item = DataLoader(
            tv.MNIST(root, transform=to_tensor), bs, shuffle=True, generator=torch.Generator().manual_seed(0)
        )
        auto = DataLoader(torch_dataset("mnist", "train"), bs, shuffle=True, generator=torch.Generator().manual_seed(0))
        loaders, _ = torch_loaders("mnist", batch_size=bs, seed=0)
        x_np = np.ascontiguousarray(mnistkit.load("mnist", "train", normalize=False, flatten=False)[0])
        x_t = torch.from_numpy(x_np)
        n = len(x_np)
        gen = torch.Generator().manual_seed(0)

        def floor_torch(clock: Clock) -> None:
            perm = torch.randperm(n, generator=gen)
            for b in range(0, n, bs):
                x_t.index_select(0, perm[b : b + bs]).to(torch.float32).div_(255)
                clock.tick(min(bs, n - b))

        def floor_numpy(clock: Clock) -> None:
            perm = torch.randperm(n, generator=gen).numpy()
            for b in range(0, n, bs):
                torch.from_numpy(np.take(x_np, perm[b : b + bs], axis=0)).to(torch.float32).div_(255)
                clock.tick(min(bs, n - b))

        methods = {}
        try:
            from torchvision import datasets as real_tv

            real = DataLoader(
                real_tv.MNIST(root, transform=to_tensor), bs, shuffle=True, generator=torch.Generator().manual_seed(0)
            )
            methods["torchvision.datasets.MNIST + ToTensor, default_collate"] = lambda c: _epoch(real, c)
        except ImportError:
            pass
        methods |= {
            f"mnistkit.torchvision.MNIST + {to_tensor_name.split(' ')[0]} (per item), default_collate": lambda c: (
                _epoch(per_item, c)
            ),
            "DataLoader(torch_dataset, shuffle=True): __getitems__ + default_collate": lambda c: _epoch(auto, c),
            "torch_loaders (one gather per batch)": lambda c: _epoch(loaders, c),
            "floor: index_select on an in-memory uint8 tensor": floor_torch,
            "floor: np.take on an in-memory uint8 array": floor_numpy,
        }
        device = None
        if args.device == "auto":
            device = torch.device("cuda") if torch.cuda.is_available() else None
        elif args.device != "none":
            device = torch.device(args.device)
        if device is not None:
            x_dev = x_t.to(device)
            t_dev = torch.from_numpy(mnistkit.load("mnist", "train")[1].astype(np.int64)).to(device)

            def resident(clock: Clock) -> None:
                perm = torch.randperm(n, device=device)
                for b in range(0, n, bs):
                    idx = perm[b : b + bs]
                    x_dev.index_select(0, idx).to(torch.float32).div_(255)
                    t_dev.index_select(0, idx)
                    if (b // bs + 1) % BLOCK == 0 and device.type == "cuda":
                        torch.cuda.synchronize()  # kernels run asynchronously: a block ends when they are done
                    clock.tick(min(bs, n - b))
                if device.type == "cuda":
                    torch.cuda.synchronize()

            methods[f"device-resident (whole split on {device.type}, gathered there)"] = resident
        for fn in methods.values():  # warm-up: page cache, allocator, lazy imports
            fn(Clock())
        rates: dict[str, list[float]] = {name: [] for name in methods}
        blocks: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(args.repeat):
            for name, fn in methods.items():
                clock = Clock()
                fn(clock)
                rates[name].append(clock.rate())
                blocks[name] += clock.blocks
    finally:
        shutil.rmtree(work, ignore_errors=True)

    medians = {name: statistics.median(r) for name, r in rates.items()}
    # Best block: the rate when nothing else ran (the machine is shared); an epoch shorter than a block has none.
    bests = {name: max(blocks[name] or rates[name]) for name in rates}
    floor_names = [name for name in medians if name.startswith("floor")]
    floor = max(medians[name] for name in floor_names)
    floor_best = max(bests[name] for name in floor_names)
    lines = [
        f"| method | samples/s, median epoch | best {BLOCK}-batch block | epochs' range | ratio to the floor (medians) "
        "| (best blocks) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in rates.items():
        lines.append(
            f"| {name} | {medians[name]:,.0f} | {bests[name]:,.0f} | {min(r):,.0f} - {max(r):,.0f} | "
            f"{medians[name] / floor:.2f} | {bests[name] / floor_best:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    key = "torch_loaders (one gather per batch)"
    ratio, ratio_best = medians[key] / floor, bests[key] / floor_best
    print(f"\ntorch_loaders / gather floor: {ratio:.2f} (median epochs), {ratio_best:.2f} (best blocks); target >= 0.8")
    if args.doc:
        import torch as _t

        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        gpu = "GPU: " + _t.cuda.get_device_name(0) if _t.cuda.is_available() else "no GPU"
        cmd = "python benchmarks/loaders.py" + (" " + " ".join(argv) if argv else " " + " ".join(sys.argv[1:]))
        text = f"""# Training loaders: measured

Regenerate: `{cmd.strip()}`

One shuffled training epoch of {"the real MNIST" if not tiny else "tiny test data (not MNIST)"}
({n:,} images), batch {bs},
`num_workers=0`, {args.threads} PyTorch thread(s), float32 (N, 1, 28, 28) batches in [0, 1] with int64 labels.
Methods interleaved, one epoch each per round, {args.repeat} rounds; samples/s of the median epoch and of the best
block of {BLOCK} batches (each epoch is timed block by block: on a shared machine the best block is the rate
with nothing else running), the epochs' range, and ratios to the faster gather floor (no DataLoader: one in-memory
uint8 tensor, batches gathered by slices of a random
permutation and scaled to float32).

{table}

**torch_loaders reaches {ratio:.2f} of the gather floor** comparing median epochs, {ratio_best:.2f} comparing the
best {BLOCK}-batch blocks (target: at least 0.8).

Machine: {platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}, PyTorch {_t.__version__},
NumPy {np.__version__}, {gpu}{"" if device is not None else " (device-resident loader not measured)"};
load average {load:.2f} at the end of the run (other work was running on this shared machine; figures vary
between runs, the ratios less than the absolute rates).
"""
        args.doc.write_text(text, encoding="utf-8")
        print(f"wrote {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
