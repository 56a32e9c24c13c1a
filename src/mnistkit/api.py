"""Loading with options: the public entry points over the store.

:func:`load` returns one split of any dataset; :func:`load_mnist` is the
tutorial-compatible layer over it.  Option handling is vectorised and copies
only what an option changes: a warm uint8 load is a copy-on-write memory map
of the cache, a normalised load is one pass that writes the float output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast, overload

import numpy as np

from .errors import (
    ArgumentError,
    DownloadError,
    FilesUnavailableError,
    MissingFilesError,
    MnistkitError,
    check_choice,
    without_pool_frames,
)
from .registry import Dataset, get_dataset
from .settings import MirrorsLike, Settings
from .store import Store

__all__ = ["Part", "dataset_store", "label_mapping", "load", "load_mnist", "select_parts"]

ORIENTATIONS = ("upright", "stored")

_FLOAT_KINDS = "f"
#: Outputs below this size are converted in one call: threads would cost more than they save.
_PARALLEL_BYTES = 8 << 20

Pair = tuple[np.ndarray, np.ndarray]  # (images, labels)


def dataset_store(
    dataset: str | Dataset = "mnist",
    *,
    data_home: str | os.PathLike | None = None,
    mirrors: MirrorsLike = None,
    offline: bool | None = None,
    progress: bool | None = None,
    timeout: float | None = None,
    settings: Settings | None = None,
) -> Store:
    """The :class:`~mnistkit.store.Store` for a dataset, with downloading set up.

    Parameters are those of :func:`load`; ``settings``, when given, is used as it is
    (the command line builds one from its flags) and the other keywords are ignored.
    """
    ds = dataset if isinstance(dataset, Dataset) else get_dataset(dataset)
    if settings is None:
        settings = Settings.resolve(data_home, mirrors, offline, progress, timeout)
    from .sources import Downloader

    return Store(ds, settings.data_home, downloader=Downloader.from_settings(settings))


def _images(raw: np.ndarray, normalize: bool, flatten: bool, dtype) -> np.ndarray:
    n = raw.shape[0]
    shape = (n, int(np.prod(raw.shape[1:]))) if flatten else (n, 1, *raw.shape[1:])
    raw = raw.reshape(shape)  # a view: no copy for a reshape of a contiguous map
    if dtype is None:
        dtype = np.float32 if normalize else None
    if dtype is None:
        if raw.dtype.byteorder == ">":  # big-endian cache (int16/int32/float IDX): hand out native
            return raw.astype(raw.dtype.newbyteorder("="))
        return raw
    dtype = _check_dtype(dtype, normalize)
    if normalize:
        if dtype.kind not in _FLOAT_KINDS:
            msg = f"dtype={dtype} cannot hold normalised values in [0, 1]; use float16, float32 or float64"
            raise ArgumentError(msg)
        out = np.empty(shape, dtype=dtype)
        _parallel_divide(raw, dtype.type(255), out)
        return out
    return raw.astype(dtype)


def _check_dtype(dtype, normalize: bool) -> np.dtype:
    """``dtype`` as a NumPy dtype, or ArgumentError (checked before any file is read)."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        msg = f"dtype={dtype!r} is not a NumPy type; use e.g. 'float32', 'float64' or 'uint8'"
        raise ArgumentError(msg) from None
    if normalize and dtype.kind not in _FLOAT_KINDS:
        msg = f"dtype={dtype} cannot hold normalised values in [0, 1]; use float16, float32 or float64"
        raise ArgumentError(msg)
    return dtype


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity call
        return os.cpu_count() or 1


def _parallel_divide(raw: np.ndarray, divisor: np.floating, out: np.ndarray) -> None:
    """``out[...] = raw / divisor`` computed in ``out``'s dtype, in row blocks on every core.

    Divide (never multiply by 1/255): bit-identical to the tutorial's ``astype(float32) / 255.0``.
    The pass is bound by page faults on the fresh output and by the division, and NumPy releases
    the GIL for both, so two threads on two cores take about half the time of one (measured: 47
    to 25 ms for the 188 MB of MNIST train images, below the cost of allocating and filling them).
    """
    workers = min(_cores(), 4, max(1, out.nbytes // _PARALLEL_BYTES))
    if workers == 1 or raw.shape[0] < workers:
        np.divide(raw, divisor, out=out, dtype=out.dtype, casting="unsafe")
        return
    from concurrent.futures import ThreadPoolExecutor

    bounds = np.linspace(0, raw.shape[0], workers + 1).astype(int)

    def part(i: int) -> None:
        rows = slice(bounds[i], bounds[i + 1])
        np.divide(raw[rows], divisor, out=out[rows], dtype=out.dtype, casting="unsafe")

    with ThreadPoolExecutor(workers, thread_name_prefix="mnistkit-divide") as pool:
        futures = [pool.submit(part, i) for i in range(workers)]
    for future in futures:
        exc = future.exception()
        if exc is not None:
            raise without_pool_frames(exc)


def _one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        msg = f"labels run from {labels.min()} to {labels.max()}, outside 0..{num_classes - 1}: cannot one-hot encode"
        raise ArgumentError(msg)
    out = np.zeros((labels.shape[0], num_classes), dtype=np.float64)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def _load_files(store: Store, specs: Sequence) -> list[np.ndarray]:
    """Load several files of one dataset; when some are missing, one error lists them all.

    Files already cached are mapped at once (no lock, no thread).  The others are built two at a
    time, largest first: decompression, hashing and writing release the GIL, so on the cold path
    the small files are done while the largest is still being decompressed.
    """
    arrays: list[np.ndarray | None] = [store.cached(spec) for spec in specs]
    todo = sorted((i for i, a in enumerate(arrays) if a is None), key=lambda i: -specs[i].decoded_size)
    if not todo:
        return cast("list[np.ndarray]", arrays)  # every file was cached
    errors: dict[int, BaseException] = {}
    if len(todo) == 1:
        try:
            arrays[todo[0]] = store.load(specs[todo[0]])
        except MnistkitError as err:
            errors[todo[0]] = err
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="mnistkit-load") as pool:
            futures = {i: pool.submit(store.load, specs[i]) for i in todo}
        for i, future in futures.items():
            exc = future.exception()
            if exc is None:
                arrays[i] = future.result()
            else:
                errors[i] = exc
    if not errors:
        return cast("list[np.ndarray]", arrays)  # no error: every slot was filled
    raise _one_error([errors[i] for i in sorted(errors)], store)


def _one_error(errors: Sequence[BaseException], store: Store) -> BaseException:
    """One error for the files a call could not load: every missing file in it, each source once.

    Errors other than "missing" or "could not download" (bad data, a full disk) come first: the
    first of them is the one to fix.  Raised in a worker thread, an error is returned with the
    thread pool's own frames cut off, so that it reads as if raised in the caller.
    """
    other = [err for err in errors if not isinstance(err, (MissingFilesError, DownloadError))]
    if other:
        return without_pool_frames(other[0])
    if len(errors) == 1:
        return without_pool_frames(errors[0])
    known = [err for err in errors if isinstance(err, (MissingFilesError, DownloadError))]  # all of them, typed
    ds = store.dataset
    names = [name for err in known for name in (err.missing if isinstance(err, MissingFilesError) else [err.file_name])]
    urls = [url for err in known for url in getattr(err, "urls", ())]
    only_missing = [err for err in known if isinstance(err, MissingFilesError) and not isinstance(err, DownloadError)]
    if len(only_missing) == len(known):
        reasons = ", ".join(dict.fromkeys(err.reason for err in only_missing if err.reason))
        return MissingFilesError(
            ds.name, list(dict.fromkeys(names)), only_missing[0].folder, list(dict.fromkeys(urls)), reasons
        )
    attempts = []
    for err in known:
        if isinstance(err, DownloadError):
            attempts += err.attempts
        else:
            attempts.append((str(err.folder), err.reason))
    if not urls:
        urls = [url for name in names for url in ds.urls(ds.file(name))]
    return FilesUnavailableError(ds.name, names, known[0].folder, attempts, urls)


def _labels(raw: np.ndarray, ds: Dataset, table: bool) -> np.ndarray:
    """Class labels (or QMNIST's whole table) in native byte order."""
    if table:
        # One record per example, one named field per column: a view of the cache, then a native-order copy.
        stored = np.dtype([(column, raw.dtype) for column in ds.label_columns])
        native = np.dtype([(column, raw.dtype.newbyteorder("=")) for column in ds.label_columns])
        return np.ascontiguousarray(raw).view(stored).reshape(len(raw)).astype(native)
    if ds.label_columns:
        raw = raw[:, 0]  # the class column
    if raw.dtype.byteorder == ">" or not raw.flags.c_contiguous:
        raw = np.ascontiguousarray(raw, dtype=raw.dtype.newbyteorder("="))
    return raw


def _holds_out(validation: object) -> bool:
    """Whether ``validation=`` asks for a hold-out: None and False (NumPy's too) do not."""
    return validation is not None and not (isinstance(validation, (bool, np.bool_)) and not validation)


def _check_bool(value: object, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)) or value in (0, 1):
        return bool(value)
    msg = f"{name}={value!r}: expected True or False"
    raise ArgumentError(msg)


# Without ``validation`` the result is one pair: the overloads tell type checkers so.
@overload
def load(
    name: str = "mnist",
    split: str = "train",
    *,
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    dtype: np.dtype | type | str | None = None,
    orientation: str = "upright",
    label_table: bool = False,
    data_home: str | os.PathLike | None = None,
    mirrors: MirrorsLike = None,
    offline: bool | None = None,
    progress: bool | None = None,
    timeout: float | None = None,
    validation: None = None,
    validation_seed: int | None = None,
    stratify: bool = False,
) -> Pair: ...


@overload
def load(
    name: str = "mnist",
    split: str = "train",
    *,
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    dtype: np.dtype | type | str | None = None,
    orientation: str = "upright",
    label_table: bool = False,
    data_home: str | os.PathLike | None = None,
    mirrors: MirrorsLike = None,
    offline: bool | None = None,
    progress: bool | None = None,
    timeout: float | None = None,
    validation: int | float | bool,
    validation_seed: int | None = None,
    stratify: bool = False,
) -> Pair | tuple[Pair, Pair]: ...


def load(
    name: str = "mnist",
    split: str = "train",
    *,
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    dtype: np.dtype | type | str | None = None,
    orientation: str = "upright",
    label_table: bool = False,
    data_home: str | os.PathLike | None = None,
    mirrors: MirrorsLike = None,
    offline: bool | None = None,
    progress: bool | None = None,
    timeout: float | None = None,
    validation: int | float | bool | None = None,
    validation_seed: int | None = None,
    stratify: bool = False,
) -> Pair | tuple[Pair, Pair]:
    """Load one split of a dataset as NumPy arrays.

    Parameters
    ----------
    name : str, default "mnist"
        Dataset name; :func:`mnistkit.datasets` lists them.
    split : str, default "train"
        Which split: "train" or "test"; QMNIST also has "test10k", "test50k"
        and "nist".
    normalize : bool, default True
        Scale images to [0, 1] as ``dtype`` (float32 unless given); else uint8.
    flatten : bool, default True
        Images of shape (N, 784); else (N, 1, 28, 28).
    one_hot_label : bool, default False
        Labels as a float64 (N, num_classes) one-hot matrix; else (N,) integers.
        Labels starting at 1 (EMNIST letters) take columns 0..25: column
        ``label - 1``.
    dtype : dtype, optional
        Type of the returned images.  With ``normalize`` it must be a float
        type (float32 when None); without, the raw values are cast to it.
    orientation : {"upright", "stored"}, default "upright"
        EMNIST stores its images transposed: "upright" returns them as they
        are meant to be seen (a memory map of the cache), "stored" as in the
        published files (a transposed copy).  Other datasets are the same both ways.
    label_table : bool, default False
        QMNIST only: return every label column as a structured array with
        named fields (``labels["writer_id"]``, see ``get_dataset("qmnist").label_columns``)
        instead of the class.
    data_home : path-like, optional
        The data folder; None means ``$MNISTKIT_HOME`` or the user cache folder.
    mirrors : str or sequence of str, optional
        Extra sources tried before the built-in mirrors (URLs, ``file://`` URLs
        or folders holding ``<dataset>/<file>``); None reads ``$MNISTKIT_MIRROR``.
    offline : bool, optional
        Never use the network; None reads ``$MNISTKIT_OFFLINE``.
    progress : bool, optional
        Show download progress bars; None means only when stderr is a terminal.
    timeout : float, optional
        Seconds to connect and between bytes of a download (the headers may take twice
        that in all); None reads ``$MNISTKIT_TIMEOUT``, else 10 s to connect and 30 s.
    validation : int, float or True, optional
        Hold out part of the split for validation: a count, a fraction in
        (0, 1), or True for the classic 10,000.  None (default): no hold-out.
    validation_seed : int, optional
        None: hold out the *last* images (MNIST's classic 50k/10k split);
        an integer: a random choice made with this seed.
    stratify : bool, default False
        Hold out the same fraction of every class.  See
        :func:`mnistkit.batching.validation_split`.

    Returns
    -------
    images, labels : numpy.ndarray
        Writable arrays that never alias the cache: writing into them does not
        change what the next call returns.  With ``validation``, two pairs:
        ``(images, labels), (val_images, val_labels)``, disjoint.

    Raises
    ------
    ArgumentError
        For an unknown dataset, split or option value.
    MissingFilesError, DownloadError
        When the files are absent and cannot be obtained.

    Examples
    --------
    >>> x, t = load("mnist", "test", normalize=False)  # doctest: +SKIP
    >>> x.shape, x.dtype, t[:3]                        # doctest: +SKIP
    ((10000, 784), dtype('uint8'), array([7, 2, 1], dtype=uint8))
    """
    ds = get_dataset(name)
    store = dataset_store(ds, data_home=data_home, mirrors=mirrors, offline=offline, progress=progress, timeout=timeout)
    options = dict(
        normalize=normalize,
        flatten=flatten,
        one_hot_label=one_hot_label,
        dtype=dtype,
        orientation=orientation,
        label_table=label_table,
    )
    holdout = dict(validation=validation, validation_seed=validation_seed, stratify=stratify)
    out = _load_splits(store, [split], **options, **holdout)
    return out[0] if len(out) == 1 else (out[0], out[1])


def _warn(message: str) -> None:
    """A :class:`MnistkitWarning` pointing at the user's line (user -> load/load_mnist -> _load_splits -> here)."""
    import warnings

    from .errors import MnistkitWarning

    warnings.warn(message, MnistkitWarning, stacklevel=4)


def _load_splits(
    store: Store,
    splits: Sequence[str],
    *,
    normalize,
    flatten,
    one_hot_label,
    dtype,
    orientation,
    label_table,
    validation=None,
    validation_seed=None,
    stratify=False,
) -> list[Pair]:
    """Images and labels of each split, with the options applied.

    With ``validation``, the first split is followed by its held-out part:
    ``[train, held_out, *others]``.
    """
    normalize = _check_bool(normalize, "normalize")
    flatten = _check_bool(flatten, "flatten")
    one_hot_label = _check_bool(one_hot_label, "one_hot_label")
    label_table = _check_bool(label_table, "label_table")
    stratify = _check_bool(stratify, "stratify")
    if label_table and one_hot_label:
        msg = "label_table=True and one_hot_label=True cannot be combined: one-hot encodes the class only"
        raise ArgumentError(msg)
    if dtype is not None:
        _check_dtype(dtype, normalize)
    if not _holds_out(validation) and (validation_seed is not None or stratify):
        given = f"validation_seed={validation_seed!r}" if validation_seed is not None else "stratify=True"
        _warn(f"{given} is ignored: nothing is held out without validation=... (a count, a fraction or True)")
    parts = select_parts(
        store,
        splits,
        orientation=orientation,
        label_table=label_table,
        validation=validation,
        validation_seed=validation_seed,
        stratify=stratify,
    )
    if store.uncached:
        # A warning, not a log line: library users see it without configuring logging.
        _warn(store.uncached)
    ds = store.dataset
    out = []
    for part in parts:
        # Select the raw rows, then convert them: the options run once per image kept.
        labels = part.taken_labels()
        if one_hot_label:
            # Labels that start at label_offset (EMNIST letters: 1..26) take columns 0..num_classes-1.
            labels = _one_hot(labels.astype(np.int64) - ds.label_offset, ds.num_classes)
        out.append((_images(part.taken_images(), normalize, flatten, dtype), labels))
    return out


@dataclass(frozen=True)
class Part:
    """The rows of a dataset that make one loaded part: a split, or one side of its hold-out.

    Made by :func:`select_parts`, the one place where :func:`load`, :func:`load_mnist`
    and every framework adapter get their rows, labels and hold-outs, so they cannot disagree.

    Attributes
    ----------
    dataset : Dataset
        The registry entry.
    split : str
        The split's name.
    images : numpy.ndarray
        The whole split's raw images, uint8 (n, H, W), in the requested orientation:
        a view of the cache's memory map (the split's rows of its files, e.g. QMNIST
        ``test50k`` is rows 10000:60000 of the test files).
    labels : numpy.ndarray
        The whole split's labels as :func:`load` returns them without one-hot: the class
        as stored (native byte order, EMNIST letters 1..26), or QMNIST's structured table
        with ``label_table=True``.
    index : numpy.ndarray or None
        The rows of the split in this part (sorted int64); None means all of them.
    """

    dataset: Dataset
    split: str
    images: np.ndarray
    labels: np.ndarray
    index: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels) if self.index is None else len(self.index)

    def taken_images(self) -> np.ndarray:
        """This part's raw images: a view when its rows are contiguous, else a gathered copy."""
        return self.images if self.index is None else _take(self.images, self.index)

    def taken_labels(self) -> np.ndarray:
        """This part's labels (see :attr:`labels`)."""
        return self.labels if self.index is None else _take(self.labels, self.index)


def select_parts(
    store: Store,
    splits: Sequence[str],
    *,
    orientation: str = "upright",
    label_table: bool = False,
    validation: int | float | bool | None = None,
    validation_seed: int | None = None,
    stratify: bool = False,
) -> list[Part]:
    """The rows, labels and hold-out of each split, before any conversion.

    Loads (downloading if need be) the files of every split at once, then for
    each split takes its rows of the files, its orientation and its labels;
    with ``validation``, the first split is followed by its held-out part:
    ``[train, held_out, *others]``.  The parameters are those of :func:`load`.

    Returns
    -------
    list of Part
        Views of the cache plus index arrays: nothing is converted or copied
        but the labels (small).
    """
    label_table = _check_bool(label_table, "label_table")
    stratify = _check_bool(stratify, "stratify")  # checked before any file is read
    check_choice(orientation, "orientation", ORIENTATIONS)
    ds = store.dataset
    if label_table and not ds.label_columns:
        msg = f"label_table=True: {ds.name} labels are plain classes, not a table; leave label_table False"
        raise ArgumentError(msg)
    holding_out = _holds_out(validation)
    splits_ = [ds.split(name) for name in splits]
    specs = [ds.file(name) for split in splits_ for name in (split.images, split.labels)]
    raw = _load_files(store, specs)
    out = []
    for i, (split, raw_images, raw_labels) in enumerate(zip(splits_, raw[0::2], raw[1::2], strict=True)):
        if split.rows is not None:  # a split that is a slice of its files: still a view of the cache
            raw_images = raw_images[split.rows[0] : split.rows[1]]
            raw_labels = raw_labels[split.rows[0] : split.rows[1]]
        if orientation == "stored" and ds.file(split.images).transposed:  # the cache holds them upright
            raw_images = raw_images.transpose(0, 2, 1)
        labels = _labels(raw_labels, ds, label_table)
        if i == 0 and holding_out and validation is not None:  # (the second test narrows the type)
            from .batching import validation_split

            # Hold out by class (never by a table's provenance columns), offset removed.
            kept, held = validation_split(
                ds.class_index(raw_labels), validation, seed=validation_seed, stratify=stratify
            )
            out.append(Part(ds, split.name, raw_images, labels, kept))
            out.append(Part(ds, split.name, raw_images, labels, held))
        else:
            out.append(Part(ds, split.name, raw_images, labels))
    return out


def label_mapping(
    name: str,
    *,
    data_home: str | os.PathLike | None = None,
    mirrors: MirrorsLike = None,
    offline: bool | None = None,
    progress: bool | None = None,
) -> dict[int, str]:
    """The label -> characters mapping published with an EMNIST split, from the registry.

    Nothing is downloaded: the six published ``emnist-<split>-mapping.txt``
    tables are registry facts (:meth:`~mnistkit.registry.Dataset.label_map`).
    When the EMNIST archive is already in the data folder, its own mapping
    file is read (a few hundred bytes, checked by the zip's CRC-32) and
    compared with the registry's table.

    Parameters
    ----------
    name : str
        An EMNIST dataset, e.g. "emnist-letters".
    data_home : path-like, optional
        Where to look for the archive, as in :func:`load`.
    mirrors, offline, progress
        Accepted for compatibility with earlier versions; nothing is downloaded.

    Returns
    -------
    dict
        label -> its characters: ``{0: "0", ..., 10: "A", ...}``; for letters
        both cases, ``{1: "Aa", ..., 26: "Zz"}``.

    Raises
    ------
    ArgumentError
        If the dataset publishes no mapping file.
    RegistryMismatchError
        If the archive present holds a mapping file that differs from the
        registry's table (the message names both).

    Warns
    -----
    MnistkitWarning
        If the archive present cannot be read or lacks the mapping file (it is
        not the published archive); the registry's table is returned.
    """
    ds = get_dataset(name)
    if ds.mapping is None:
        msg = f"{ds.name} publishes no label mapping file; its classes are get_dataset({ds.name!r}).classes"
        raise ArgumentError(msg)
    table = ds.label_map()
    archive = next(spec for spec in ds.files if spec.kind == "archive")
    found = Store(ds, data_home).candidates(archive)
    if found:
        from .archive import member_source, parse_mapping, read_member
        from .errors import IdxFormatError

        source = member_source(found[0], ds.mapping)
        try:
            published = parse_mapping(read_member(found[0], ds.mapping).decode("ascii", "replace"), source=source)
        except IdxFormatError as err:
            # Not a readable zip with this member (e.g. an HTML page saved as gzip.zip): not the published
            # archive, so it says nothing about the registry; the table is a registry fact, given anyway.
            import warnings

            from .errors import MnistkitWarning

            warnings.warn(
                f"{err}; the table returned is mnistkit's registry copy of the published mapping, and "
                f"{found[0]} is not the published archive: delete it or run `mnistkit verify {ds.name}`",
                MnistkitWarning,
                stacklevel=2,
            )
            return table
        if published != table:
            from .errors import REPORT_HINT, RegistryMismatchError

            differ = sorted(
                set(published) ^ set(table) | {k for k in published if table.get(k, published[k]) != published[k]}
            )
            shown = ", ".join(
                f"{k}: {published.get(k)!r} in the file, {table.get(k)!r} in the registry" for k in differ[:3]
            )
            msg = (
                f"{source} disagrees with mnistkit's registry table get_dataset({ds.name!r}).label_map() "
                f"at {len(differ)} label(s) ({shown}); if the archive passes `mnistkit verify {ds.name}`, {REPORT_HINT}"
            )
            raise RegistryMismatchError(msg)
    return table


def _take(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[index]`` for sorted unique indices; a view (no copy) when they are contiguous."""
    if len(index) and index[-1] - index[0] + 1 == len(index):
        return array[index[0] : index[-1] + 1]
    return array[index]


# Without ``validation`` the result is (train, test): the overloads tell type checkers so.
@overload
def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    dataset: str = "mnist",
    dtype: np.dtype | type | str | None = None,
    orientation: str = "upright",
    label_table: bool = False,
    data_home: str | os.PathLike | None = None,
    mirrors: MirrorsLike = None,
    offline: bool | None = None,
    progress: bool | None = None,
    timeout: float | None = None,
    validation: None = None,
    validation_seed: int | None = None,
    stratify: bool = False,
) -> tuple[Pair, Pair]: ...


@overload
def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    dataset: str = "mnist",
    dtype: np.dtype | type | str | None = None,
    orientation: str = "upright",
    label_table: bool = False,
    data_home: str | os.PathLike | None = None,
    mirrors: MirrorsLike = None,
    offline: bool | None = None,
    progress: bool | None = None,
    timeout: float | None = None,
    validation: int | float | bool,
    validation_seed: int | None = None,
    stratify: bool = False,
) -> tuple[Pair, Pair] | tuple[Pair, Pair, Pair]: ...


def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    dataset: str = "mnist",
    dtype: np.dtype | type | str | None = None,
    orientation: str = "upright",
    label_table: bool = False,
    data_home: str | os.PathLike | None = None,
    mirrors: MirrorsLike = None,
    offline: bool | None = None,
    progress: bool | None = None,
    timeout: float | None = None,
    validation: int | float | bool | None = None,
    validation_seed: int | None = None,
    stratify: bool = False,
) -> tuple[Pair, Pair] | tuple[Pair, Pair, Pair]:
    """Load MNIST the way the classic tutorial helper does, from a verified cache.

    A drop-in for the tutorial's ``load_mnist``: same positional parameters,
    defaults, return structure, shapes and dtypes.

    Parameters
    ----------
    normalize : bool, default True
        Images as float32 in [0, 1] (value / 255); else uint8 in 0..255.
    flatten : bool, default True
        Images of shape (N, 784); else (N, 1, 28, 28).
    one_hot_label : bool, default False
        Labels as a float64 (N, 10) one-hot matrix; else uint8 of shape (N,).
    dataset : str, default "mnist"
        Any dataset with "train" and "test" splits: every name in
        :func:`mnistkit.datasets`.
    dtype, orientation, label_table, data_home, mirrors, offline, progress, timeout
        As in :func:`load`.
    validation, validation_seed, stratify
        Hold out part of the training set, as in :func:`load`; e.g.
        ``validation=True`` gives the classic 50,000 / 10,000 split.

    Returns
    -------
    (x_train, t_train), (x_test, t_test) : tuple of tuples of numpy.ndarray
        With ``validation``: ``(x_train, t_train), (x_val, t_val), (x_test, t_test)``.

    Examples
    --------
    >>> (x_train, t_train), (x_test, t_test) = load_mnist(normalize=False)  # doctest: +SKIP
    >>> x_train.shape, t_train[:10]                                          # doctest: +SKIP
    ((60000, 784), array([5, 0, 4, 1, 9, 2, 1, 3, 1, 4], dtype=uint8))
    """
    store = dataset_store(
        dataset, data_home=data_home, mirrors=mirrors, offline=offline, progress=progress, timeout=timeout
    )
    options = dict(
        normalize=normalize,
        flatten=flatten,
        one_hot_label=one_hot_label,
        dtype=dtype,
        orientation=orientation,
        label_table=label_table,
    )
    holdout = dict(validation=validation, validation_seed=validation_seed, stratify=stratify)
    parts = _load_splits(store, ["train", "test"], **options, **holdout)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0], parts[1], parts[2])
