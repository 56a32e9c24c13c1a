"""TensorFlow: a ``tf.data.Dataset`` builder over the loaded arrays.

TensorFlow is imported only inside :func:`tf_dataset`; without it,
:class:`~mnistkit.errors.MissingDependencyError` says what to install.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import MissingDependencyError

__all__ = ["tf_dataset"]


def _tf():
    try:
        import tensorflow as tf
    except ImportError as err:
        raise MissingDependencyError("tensorflow", extra="tensorflow") from err
    return tf


def tf_dataset(
    name: str = "mnist",
    split: str = "train",
    *,
    batch_size: int | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    drop_last: bool = False,
    normalize: bool = True,
    flatten: bool = False,
    validation: int | float | bool | None = None,
    validation_seed: int | None = None,
    stratify: bool = False,
    data_home: str | os.PathLike | None = None,
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
    progress: bool | None = None,
) -> Any:
    """One split of a dataset as a ``tf.data.Dataset`` of ``(image, label)``.

    The uint8 images go into the pipeline as they are (a quarter of the
    float32 size); conversion to float happens per batch inside it.

    Parameters
    ----------
    name, split : str
        Dataset and split, as in :func:`mnistkit.load`.
    batch_size : int, optional
        Batch the elements; None yields single examples.
    shuffle : bool, default False
        Shuffle the whole split, a new order each epoch (``reshuffle_each_iteration``).
    seed : int, optional
        Shuffling seed (reproducible sequence of epoch orders).
    drop_last : bool, default False
        Drop a last, smaller batch.
    normalize : bool, default True
        Images as float32 in [0, 1]; else uint8.
    flatten : bool, default False
        Images of shape (784,); else (28, 28, 1), TensorFlow's channels-last layout.
    validation, validation_seed, stratify
        Hold out part of the split, as in :func:`mnistkit.load`.
    data_home, mirrors, offline, progress
        As in :func:`mnistkit.load`.

    Returns
    -------
    tf.data.Dataset or tuple of two
        Labels are int64.  With ``validation``, ``(train_part, validation_part)``
        (the validation part never shuffled).

    Raises
    ------
    MissingDependencyError
        When TensorFlow is not installed.

    Examples
    --------
    >>> train = tf_dataset("mnist", "train", batch_size=128, shuffle=True, seed=0)  # doctest: +SKIP
    >>> model.fit(train, epochs=5)                                                 # doctest: +SKIP
    """
    tf = _tf()
    from ..api import load

    loaded = load(
        name,
        split,
        normalize=False,
        flatten=flatten,
        validation=validation,
        validation_seed=validation_seed,
        stratify=stratify,
        data_home=data_home,
        mirrors=mirrors,
        offline=offline,
        progress=progress,
    )

    def build(x: np.ndarray, t: np.ndarray, shuffled: bool):
        if not flatten:
            x = x.reshape(len(x), *x.shape[-2:], 1)  # (N, H, W, 1): channels last
        ds = tf.data.Dataset.from_tensor_slices((x, t.astype(np.int64)))
        if shuffled:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        if batch_size is not None:
            ds = ds.batch(batch_size, drop_remainder=drop_last)
        if normalize:
            ds = ds.map(lambda xb, tb: (tf.cast(xb, tf.float32) / 255.0, tb), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    if validation is None or validation is False:
        return build(*loaded, shuffle)
    (x, t), (xv, tv) = loaded
    return build(x, t, shuffle), build(xv, tv, False)
