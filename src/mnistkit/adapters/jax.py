"""JAX: mini-batches as device arrays.

JAX needs no dataset class: ``jax.numpy.asarray(x_train)`` moves a whole
loaded array to the device in one line.  :func:`jax_batches` is for when the
data should stay in host memory and only batches travel; each batch is put on
the device while the previous one is in use (``device_put`` is asynchronous).
JAX is imported only when iterating; without it,
:class:`~mnistkit.errors.MissingDependencyError` says what to install.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..batching import Batches, batches
from ..errors import MissingDependencyError

__all__ = ["jax_batches", "DeviceBatches"]


def _jax():
    try:
        import jax
    except ImportError as err:
        raise MissingDependencyError("jax", extra="jax") from err
    return jax


class DeviceBatches:
    """:class:`~mnistkit.batching.Batches` whose batches arrive as JAX arrays; one epoch per ``for`` loop.

    Made by :func:`jax_batches`.  ``epoch`` and ``len()`` are those of the
    underlying :class:`~mnistkit.batching.Batches` (``host``).
    """

    def __init__(self, host: Batches, device: Any = None) -> None:
        self.host = host
        self.device = device

    def __len__(self) -> int:
        return len(self.host)

    def __repr__(self) -> str:
        return f"<DeviceBatches to {self.device or 'the default device'}: {repr(self.host)[1:-1]}>"

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        jax = _jax()
        ahead = None
        for batch in self.host:
            # Start this batch's transfer before handing out the previous one: copy overlaps compute.
            sent = jax.device_put(batch, self.device)
            if ahead is not None:
                yield ahead
            ahead = sent
        if ahead is not None:
            yield ahead


def jax_batches(
    x: np.ndarray,
    t: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int | None = None,
    drop_last: bool = False,
    device: Any = None,
) -> DeviceBatches:
    """Mini-batches of ``(x, t)`` as JAX device arrays, one epoch per ``for`` loop.

    Parameters
    ----------
    x, t, batch_size, shuffle, seed, drop_last
        As in :func:`mnistkit.batches`.
    device : jax.Device, optional
        Where to put the batches; None means JAX's default device.

    Returns
    -------
    DeviceBatches
        Yields ``(x_batch, t_batch)`` as ``jax.Array``.

    Raises
    ------
    MissingDependencyError
        When JAX is not installed.

    Examples
    --------
    >>> (x, t), _ = mnistkit.load_mnist()                       # doctest: +SKIP
    >>> for xb, tb in jax_batches(x, t, 128, seed=0):          # doctest: +SKIP
    ...     params = update(params, xb, tb)
    """
    _jax()  # fail here, not at the first loop
    return DeviceBatches(batches(x, t, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last), device)
