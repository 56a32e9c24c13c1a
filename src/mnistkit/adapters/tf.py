"""TensorFlow: a ``tf.data.Dataset`` builder over the loaded arrays.

Rows, labels and hold-outs come from :func:`mnistkit.api.select_parts`, the
code :func:`mnistkit.load` uses, so the two cannot disagree.

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
        msg = "tensorflow"
        raise MissingDependencyError(msg, extra="tensorflow") from err
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
    orientation: str = "upright",
    label_table: bool = False,
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
    orientation : {"upright", "stored"}, default "upright"
        As in :func:`mnistkit.load`.
    label_table : bool, default False
        QMNIST only: labels are a dict of its 8 label columns (int64 each),
        not the class.
    validation, validation_seed, stratify
        Hold out part of the split, as in :func:`mnistkit.load`.
    data_home, mirrors, offline, progress
        As in :func:`mnistkit.load`.

    Returns
    -------
    tf.data.Dataset or tuple of two
        Images and labels are those :func:`mnistkit.load` returns (the same
        rows, the class as stored, e.g. EMNIST letters 1..26); labels are int64.
        With ``validation``, ``(train_part, validation_part)`` (the validation
        part never shuffled).

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
    from ..api import _check_bool, dataset_store, select_parts

    flatten = _check_bool(flatten, "flatten")
    normalize = _check_bool(normalize, "normalize")
    shuffle = _check_bool(shuffle, "shuffle")  # a typo such as "no" must not read as True
    drop_last = _check_bool(drop_last, "drop_last")
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

    def build(part, shuffled: bool):
        x = np.ascontiguousarray(part.taken_images())  # from_tensor_slices copies; a gathered part already is one
        x = x.reshape(len(x), -1) if flatten else x.reshape(*x.shape, 1)  # (N, H, W, 1): channels last
        labels = part.taken_labels()
        if labels.dtype.names:
            t = {column: labels[column].astype(np.int64) for column in labels.dtype.names}
        else:
            t = labels.astype(np.int64)
        ds = tf.data.Dataset.from_tensor_slices((x, t))
        if shuffled:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        if batch_size is not None:
            ds = ds.batch(batch_size, drop_remainder=drop_last)
        if normalize:
            ds = ds.map(lambda xb, tb: (tf.cast(xb, tf.float32) / 255.0, tb), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    if len(parts) == 1:
        return build(parts[0], shuffle)
    return build(parts[0], shuffle), build(parts[1], False)
