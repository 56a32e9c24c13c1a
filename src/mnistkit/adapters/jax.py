"""JAX: mini-batches as device arrays.

JAX needs no dataset class: ``jax.numpy.asarray(x_train)`` moves a whole
loaded array to the device in one line.  :func:`jax_batches` is for when the
data should stay in host memory and only batches travel; each batch is put on
the device while the previous one is in use (``device_put`` is asynchronous).
:func:`jax_dataset` does the same for one split of a dataset by name, with
the rows, labels and hold-outs of :func:`mnistkit.load` (the same code picks
them), converting each batch from the uint8 cache on the host.
JAX is imported only when iterating; without it,
:class:`~mnistkit.errors.MissingDependencyError` says what to install.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..batching import Batches, batches
from ..errors import MissingDependencyError

__all__ = ["DeviceBatches", "jax_batches", "jax_dataset"]


def _jax():
    try:
        import jax
    except ImportError as err:
        msg = "jax"
        raise MissingDependencyError(msg, extra="jax") from err
    return jax


class DeviceBatches:
    """:class:`~mnistkit.batching.Batches` whose batches arrive as JAX arrays; one epoch per ``for`` loop.

    Made by :func:`jax_batches`.  ``epoch`` and ``len()`` are those of the
    underlying :class:`~mnistkit.batching.Batches` (``host``).
    """

    def __init__(self, host: Batches, device: Any = None, convert: Callable | None = None) -> None:
        self.host = host
        self.device = device
        self.convert = convert  # applied to each host batch before it is sent

    def __len__(self) -> int:
        return len(self.host)

    def __repr__(self) -> str:
        return f"<DeviceBatches to {self.device or 'the default device'}: {repr(self.host)[1:-1]}>"

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        jax = _jax()
        ahead = None
        for batch in self.host:
            if self.convert is not None:
                batch = self.convert(*batch)
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


def jax_dataset(
    name: str = "mnist",
    split: str = "train",
    batch_size: int = 128,
    *,
    shuffle: bool = False,
    seed: int | None = None,
    drop_last: bool = False,
    normalize: bool = True,
    flatten: bool = False,
    orientation: str = "upright",
    label_table: bool = False,
    validation: int | float | bool | None = None,
    validation_seed: int | None = None,
    stratify: bool = False,
    device: Any = None,
    data_home: str | os.PathLike | None = None,
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
    progress: bool | None = None,
) -> DeviceBatches | tuple[DeviceBatches, DeviceBatches]:
    """One split of a dataset as mini-batches of JAX device arrays, one epoch per ``for`` loop.

    The uint8 images stay on the host (the cache's memory map, or the gathered
    part of a random hold-out); each batch is converted there, exactly as
    :func:`mnistkit.load` converts (float32 = uint8 / 255), then sent to the device.

    Parameters
    ----------
    name, split : str
        Dataset and split, as in :func:`mnistkit.load`.
    batch_size, shuffle, seed, drop_last
        As in :func:`mnistkit.batches` (``shuffle`` is False by default here).
    normalize : bool, default True
        Images as float32 in [0, 1]; else uint8.
    flatten : bool, default False
        Images of shape (784,); else (28, 28, 1), the channels-last layout of
        ``flax.linen.Conv``.
    orientation : {"upright", "stored"}, default "upright"
        As in :func:`mnistkit.load`.
    label_table : bool, default False
        QMNIST only: labels are a dict of its 8 label columns, not the class.
    validation, validation_seed, stratify
        Hold out part of the split, as in :func:`mnistkit.load`.
    device : jax.Device, optional
        Where to put the batches; None means JAX's default device.
    data_home, mirrors, offline, progress
        As in :func:`mnistkit.load`.

    Returns
    -------
    DeviceBatches or tuple of two
        Yields ``(images, labels)`` as ``jax.Array``; labels int32 (JAX's default
        integer), the class as ``load`` gives it (EMNIST letters 1..26).  With
        ``validation``, ``(train_part, validation_part)``; the validation part is
        never shuffled.

    Raises
    ------
    MissingDependencyError
        When JAX is not installed.

    Examples
    --------
    >>> train = jax_dataset("mnist", "train", 128, shuffle=True, seed=0)   # doctest: +SKIP
    >>> for epoch in range(5):                                              # doctest: +SKIP
    ...     for xb, tb in train:
    ...         params = update(params, xb, tb)
    """
    _jax()  # fail here, not at the first loop
    from ..api import _check_bool, _images, dataset_store, select_parts

    normalize = _check_bool(normalize, "normalize")
    flatten = _check_bool(flatten, "flatten")
    store = dataset_store(name, data_home=data_home, mirrors=mirrors, offline=offline, progress=progress)
    parts = select_parts(
        store,
        [split],
        orientation=orientation,
        label_table=label_table,
        validation=validation,
        validation_seed=validation_seed,
        stratify=stratify,
    )

    def convert(x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, Any]:
        shape = x.shape[1:]
        x = _images(x, normalize, True, None)  # load's own conversion, on this batch only
        x = x if flatten else x.reshape(len(x), *shape, 1)
        if t.dtype.names:
            return x, {column: t[column].astype(np.int32) for column in t.dtype.names}
        return x, t.astype(np.int32)

    def build(part, shuffled: bool) -> DeviceBatches:
        host = batches(
            part.taken_images(), part.taken_labels(), batch_size, shuffle=shuffled, seed=seed, drop_last=drop_last
        )
        return DeviceBatches(host, device, convert)

    if len(parts) == 1:
        return build(parts[0], shuffle)
    return build(parts[0], shuffle), build(parts[1], False)
