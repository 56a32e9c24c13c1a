"""Training glue over arrays: shuffled mini-batches and validation hold-outs.

Pure NumPy, no I/O: both work on any arrays (memory maps of the cache
included) and copy only what they hand out.  :func:`batches` gathers one
mini-batch at a time, never a shuffled copy of the whole set;
:func:`validation_split` returns index arrays, so the caller decides what to
copy (the loaders index the raw uint8 arrays before normalising them).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import cast

import numpy as np

from .errors import ArgumentError

__all__ = ["CLASSIC_VALIDATION_SIZE", "Batches", "batches", "validation_split"]

#: ``validation=True`` holds out this many images: the classic MNIST 50,000 / 10,000 split.
CLASSIC_VALIDATION_SIZE = 10_000


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        msg = f"{name}={value!r}: expected an integer >= {minimum}"
        raise ArgumentError(msg)
    return int(value)


def _check_switch(value: object, name: str) -> bool:
    """True or False (NumPy booleans and 0/1 too); a typo such as ``"no"`` must not read as True."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral) and value in (0, 1)):
        return bool(value)
    msg = f"{name}={value!r}: expected True or False"
    raise ArgumentError(msg)


class Batches:
    """Mini-batches of ``(x, t)``, re-iterable: each ``for`` loop over it is one epoch.

    Made by :func:`batches`; see there for the parameters.  Epoch ``k`` is
    shuffled with a generator seeded by ``(seed, k)``, so the order differs
    between epochs, is the same in every run with the same seed, and an epoch
    can be replayed by setting :attr:`epoch` (as with PyTorch's
    ``DistributedSampler.set_epoch``).

    Attributes
    ----------
    epoch : int
        The epoch the next iteration will produce; incremented by each iteration.
    """

    def __init__(
        self,
        x: np.ndarray,
        t: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int | None = None,
        drop_last: bool = False,
    ) -> None:
        self.batch_size = _check_int(batch_size, "batch_size", 1)
        n = len(x)
        if len(t) != n:
            msg = f"x has {n} samples but t has {len(t)}: they must have the same length"
            raise ArgumentError(msg)
        if seed is not None:
            seed = _check_int(seed, "seed", 0)
        self.x, self.t = x, t
        self.shuffle = _check_switch(shuffle, "shuffle")  # bool("no") would shuffle
        self.drop_last = _check_switch(drop_last, "drop_last")
        # Without a seed, draw fresh entropy once: epochs still differ from each other.
        self.seed = cast(int, np.random.SeedSequence(seed).entropy)  # an int (or no) seed gives int entropy
        self._given_seed = seed
        self.epoch = 0

    def __repr__(self) -> str:
        order = (
            "in order"
            if not self.shuffle
            else (f"shuffled, seed {self._given_seed}" if self._given_seed is not None else "shuffled, random seed")
        )
        last = ", drop_last" if self.drop_last else ""
        return (
            f"<Batches of {self.batch_size} from {len(self.x):,} samples: {len(self)} per epoch, "
            f"{order}{last}, next epoch {self.epoch}>"
        )

    def __len__(self) -> int:
        """Number of mini-batches in one epoch."""
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> np.ndarray | None:
        """The sample order of ``epoch`` (None when not shuffling: the natural order)."""
        if not self.shuffle:
            return None
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.x))

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = self.order(self.epoch)
        self.epoch += 1
        for b in range(len(self)):
            start = b * self.batch_size
            stop = start + self.batch_size
            part: slice | np.ndarray
            if order is None:
                part = slice(start, stop)  # a view: no copy at all
            else:
                # Sorted within the batch: reads from a memory map go forward through the file.
                part = np.sort(order[start:stop])
            yield self.x[part], self.t[part]


def batches(
    x: np.ndarray,
    t: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int | None = None,
    drop_last: bool = False,
) -> Batches:
    """Mini-batches of samples and labels, one epoch per ``for`` loop.

    Parameters
    ----------
    x : array-like
        Samples, first axis = sample (a memory map of the cache works and stays one).
    t : array-like
        Labels (or any per-sample array) of the same length.
    batch_size : int
        Samples per batch; the last batch of an epoch may be smaller.
    shuffle : bool, default True
        A new random order every epoch; False keeps the stored order and
        yields views (no copies).
    seed : int, optional
        Makes the sequence of epoch orders reproducible; None draws a random seed.
    drop_last : bool, default False
        Drop the last batch of an epoch when it is smaller than ``batch_size``.

    Returns
    -------
    Batches
        Iterate over it once per epoch; ``len()`` is the number of batches per epoch.
        Each batch is a tuple ``(x_batch, t_batch)``.

    Raises
    ------
    ArgumentError
        For a non-positive ``batch_size``, a negative ``seed``, lengths that differ,
        or ``shuffle`` / ``drop_last`` other than True or False.

    Notes
    -----
    Shuffled batches are gathered with fancy indexing (a copy of one batch);
    the whole dataset is never copied.  The samples of a shuffled batch come
    in increasing index order (the batch is still a random subset), which keeps
    reads from a memory-mapped file sequential.

    Examples
    --------
    >>> import numpy as np
    >>> x, t = np.arange(10).reshape(5, 2), np.arange(5)
    >>> loader = batches(x, t, 2, seed=0)
    >>> len(loader)
    3
    >>> sorted(int(i) for _, tb in loader for i in tb)
    [0, 1, 2, 3, 4]
    """
    return Batches(x, t, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)


def validation_split(
    labels: np.ndarray,
    size: int | float | bool,
    *,
    seed: int | None = None,
    stratify: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a deterministic training / validation hold-out.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer class labels of the whole training set, shape (N,) (one-hot
        rows are accepted too); only their count is used unless ``stratify``.
    size : int, float or True
        How many samples to hold out: an integer count, a fraction in (0, 1)
        (rounded to the nearest count), or True for the classic 10,000.
    seed : int, optional
        None: hold out the *last* samples (the classic MNIST 50k/10k split).
        An integer: hold out a random choice made with this seed.
    stratify : bool, default False
        Hold out the same fraction of every class (largest-remainder rounding,
        so the total is exactly ``size``): the last samples of each class, or a
        random choice per class when ``seed`` is given.

    Returns
    -------
    train_index, validation_index : numpy.ndarray
        Disjoint sorted int64 index arrays that together cover ``range(N)``.

    Raises
    ------
    ArgumentError
        When ``size`` is not a count or fraction that leaves both parts non-empty,
        or ``stratify`` is not True or False.

    Examples
    --------
    >>> import numpy as np
    >>> train, val = validation_split(np.arange(10) % 2, 0.2)
    >>> train.tolist(), val.tolist()
    ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])
    >>> validation_split(np.arange(10) % 2, 4, stratify=True)[1].tolist()
    [6, 7, 8, 9]
    """
    stratify = _check_switch(stratify, "stratify")
    labels = np.asarray(labels)
    if labels.ndim == 2:  # one-hot
        labels = labels.argmax(axis=1)
    n = len(labels)
    count = _holdout_count(size, n)
    if seed is not None:
        seed = _check_int(seed, "seed", 0)
    rng = np.random.default_rng(seed) if seed is not None else None
    if not stratify:
        held = np.arange(n - count, n) if rng is None else rng.choice(n, count, replace=False)
    else:
        classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        quotas = _apportion(count, counts)
        held_parts = []
        for k in range(len(classes)):
            members = np.flatnonzero(inverse == k)
            take = quotas[k]
            if take:
                held_parts.append(members[-take:] if rng is None else rng.choice(members, take, replace=False))
        held = np.concatenate(held_parts) if held_parts else np.empty(0, np.int64)
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _holdout_count(size: int | float | bool, n: int) -> int:
    if isinstance(size, (bool, np.bool_)) and size:  # True, or NumPy's True
        count = CLASSIC_VALIDATION_SIZE
    elif isinstance(size, numbers.Integral) and not isinstance(size, (bool, np.bool_)):
        count = int(size)
    elif isinstance(size, numbers.Real) and not isinstance(size, (bool, np.bool_)) and 0 < size < 1:
        count = round(float(size) * n)
    else:
        msg = f"validation={size!r}: expected a number of samples, a fraction in (0, 1), or True (10,000)"
        raise ArgumentError(msg)
    if not 0 < count < n:
        msg = (
            f"validation={size!r} holds out {count} of {n} training samples; both parts must be non-empty: "
            f"give a smaller count or a fraction"
        )
        raise ArgumentError(msg)
    return count


def _apportion(total: int, counts: np.ndarray) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts``, by largest remainder."""
    exact = counts * (total / counts.sum())
    quotas = np.floor(exact).astype(np.int64)
    # Stable sort: equal remainders go to the lower class first, so the result is deterministic.
    extra = np.argsort(-(exact - quotas), kind="stable")[: total - int(quotas.sum())]
    quotas[extra] += 1
    return quotas  # each quota <= its class count: exact < count since total < N
