"""Notebook support: kernel detection, inline display, progress bars and the dataset card.

Nothing here imports IPython.  A Jupyter kernel (JupyterLab, Notebook, VS Code,
Colab, qtconsole, Spyder) has always imported it before running user code, so
the kernel is detected from ``sys.modules``, as tqdm and pandas do: a plain
``python`` or the terminal ``ipython`` never pays for, or changes behaviour
because of, IPython being installed.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from .errors import MnistkitError

if TYPE_CHECKING:  # pragma: no cover
    from .registry import Dataset

__all__ = ["dataset_card_html", "display", "in_kernel", "progress_bar", "widgets_available"]


def _shell() -> Any:
    """The running IPython shell, or None; never imports IPython."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        return ipython.get_ipython()
    except Exception:  # a half-imported or unusual IPython: behave as outside one
        return None


def in_kernel() -> bool:
    """Whether code runs in a Jupyter kernel, whose front end shows rich output (PNG, HTML).

    True in JupyterLab, Notebook, VS Code and Colab notebooks, qtconsole and
    Spyder; False in a plain interpreter, a script and the terminal ``ipython``
    (which shows text only).  The test is the one IPython-aware libraries
    use: a shell exists in the already-imported IPython and it runs in a kernel
    app (``IPKernelApp`` in its config, or a ``kernel`` attribute).
    """
    shell = _shell()
    if shell is None:
        return False
    if getattr(shell, "kernel", None) is not None:
        return True
    try:
        return "IPKernelApp" in shell.config
    except Exception:
        return False


def widgets_available() -> bool:
    """Whether a notebook progress widget can be shown: a kernel, a widget front end, ipywidgets.

    qtconsole and Spyder run a kernel but do not render widgets (tqdm's rule);
    without ``ipywidgets`` there is nothing to render.
    """
    if not in_kernel():
        return False
    if any(key == "QT_API" or key.startswith("SPYDER") for key in os.environ):
        return False
    kind = type(_shell()).__name__.lower()
    if "qt" in kind or "spyder" in kind:
        return False
    try:
        import ipywidgets  # noqa: F401  (in a kernel: a cheap import, and only here)
    except Exception:
        return False
    return True


def display(bundle: dict[str, object]) -> None:
    """Show a MIME bundle (``{"image/png": bytes, "text/plain": str}``) as a cell output; in a kernel only."""
    from IPython.display import display as ipy_display  # only called in a kernel: already imported

    ipy_display(bundle, raw=True)


def progress_bar(*, total: int | None, desc: str, unit: str, progress: bool | None, **kwargs: Any):
    """A tqdm bar on stderr, or None when progress is off.

    Parameters
    ----------
    total : int or None
        Expected count (None: unknown).
    desc : str
        Text before the bar.
    unit : str
        Unit of the count ("B" for bytes: scaled by 1024).
    progress : bool or None
        True/False force the bar on/off; None shows it on a terminal and in a
        notebook kernel, and nowhere else (logs, pipes, CI).
    **kwargs
        Passed to tqdm (``initial``, ``leave``, ...).

    Returns
    -------
    tqdm.tqdm or None
        In a kernel with widget support, a notebook widget bar; elsewhere a
        text bar that rewrites one line (``\\r``) however often it updates.
    """
    kernel = in_kernel()
    show = progress if progress is not None else (sys.stderr.isatty() or kernel)
    if not show:
        return None
    if unit == "B":
        kwargs.setdefault("unit_scale", True)
        kwargs.setdefault("unit_divisor", 1024)
    if kernel and widgets_available():
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm(total=total, desc=desc, unit=unit, **kwargs)
    from tqdm.std import tqdm as text_tqdm

    if kernel:
        # Not a terminal: tqdm cannot ask for a width, and a front end redraws on each
        # message, so a fixed width and a few updates a second keep it one tidy line.
        kwargs.setdefault("ncols", 100)
        kwargs.setdefault("mininterval", 0.5)
    return text_tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, **kwargs)


# --- the dataset card ---------------------------------------------------------------------------

#: Classes shown as sample images on a dataset card (one image each, the first of the class).
CARD_SAMPLES = 10


def local_status(ds: Dataset, data_home: str | os.PathLike | None = None) -> tuple[str, str, list[str]]:
    """Whether ``ds`` is here: (state, folder, names of the splits whose cache is built).

    ``state`` is "cached" (every split's cache entries pass the cheap check),
    "downloaded" (every file present), "partial" (some) or "no".  Looks only:
    no download, no hashing.
    """
    from .store import Store

    store = Store(ds, data_home)
    ready = {}
    for split in ds.splits:
        for name in (split.images, split.labels):
            if name not in ready:
                ready[name] = store.cached(ds.file(name)) is not None
    cached_splits = [split.name for split in ds.splits if ready[split.images] and ready[split.labels]]
    if all(ready.values()):
        return "cached", str(store.folder), cached_splits
    present = 0
    for name, is_cached in ready.items():
        spec = ds.file(name)
        source = ds.file(spec.archive) if spec.archive else spec
        present += is_cached or bool(store.candidates(source))
    if present == len(ready):
        return "downloaded", str(store.folder), cached_splits
    return ("partial" if present else "no"), str(store.folder), cached_splits


def card_samples(ds: Dataset, data_home: str | os.PathLike | None = None):
    """The first image of each of the first classes of the first split, as a Picture; None unless cached.

    Reads the cache only (a memory map): showing a card never downloads or decodes.
    """
    from .render import grid
    from .store import Store

    split = ds.splits[0]
    store = Store(ds, data_home)
    images = store.cached(ds.file(split.images))
    labels = store.cached(ds.file(split.labels))
    if images is None or labels is None:
        return None
    if split.rows is not None:
        images, labels = images[split.rows[0] : split.rows[1]], labels[split.rows[0] : split.rows[1]]
    classes = ds.class_index(labels)
    picks = [int(hits[0]) for c in range(min(CARD_SAMPLES, ds.num_classes)) if len(hits := (classes == c).nonzero()[0])]
    if not picks:
        return None
    return grid(images, indices=picks, labels=None, scale=2, columns=len(picks), captions=False)


def dataset_card_html(ds: Dataset, data_home: str | os.PathLike | None = None) -> str:
    """The HTML card of a dataset: name, title, splits and sizes, classes, licence, local copy, samples."""
    import base64
    from html import escape

    try:
        status, folder, cached = local_status(ds, data_home)
    except (OSError, MnistkitError) as err:  # an unreadable folder: the card still shows, saying so
        status, folder, cached = "unknown", f"cannot look in the data folder: {err}", []
    here = {
        "unknown": escape(folder),
        "cached": f"cached in <code>{escape(folder)}</code>",
        "downloaded": f"downloaded in <code>{escape(folder)}</code>",
        "partial": f"some files in <code>{escape(folder)}</code>; the first load fetches the rest",
        "no": "not here yet: the first load downloads it",
    }[status]
    if status != "cached":
        done = f"cache built for {', '.join(map(escape, cached))}" if cached else "no cache built yet"
        here += f" ({done}; a split is decoded and cached on its first load)" if status not in ("no", "unknown") else ""
    download = sum(spec.size or 0 for spec in ds.files if spec.archive is None)
    if status == "no" and download:
        here += f" ({download / 1e6:,.1f} MB)"
    splits = ", ".join(f"{escape(s.name)} {ds.split_size(s.name):,}" for s in ds.splits)
    names = ds.classes if len(ds.classes) <= 20 else (*ds.classes[:20], "…")
    classes = f"{ds.num_classes}: " + ", ".join(escape(c) for c in names)
    if ds.label_offset:
        classes += f" (labels start at {ds.label_offset})"
    licence = escape(ds.license or "not stated")
    home = f'<a href="{escape(ds.homepage)}" target="_blank">{escape(ds.homepage)}</a>' if ds.homepage else "-"
    rows = [
        ("splits", splits),
        ("images", "x".join(map(str, ds.image_shape)) + " grey"),
        ("classes", classes),
        ("licence", licence),
        ("homepage", home),
        ("here", here),
    ]
    samples = ""
    if ds.splits[0].name in cached:
        try:
            picture = card_samples(ds, data_home)
        except Exception:  # a card must render whatever state the folder is in
            picture = None
        if picture is not None:
            data = base64.b64encode(picture._repr_png_()).decode("ascii")
            samples = (
                f'<div><img alt="first {ds.splits[0].name} image of each class" '
                f'style="image-rendering: pixelated; max-width: none" '
                f'width="{picture.width}" height="{picture.height}" src="data:image/png;base64,{data}"></div>'
            )
    cells = "".join(
        f'<tr><th style="text-align:left; padding-right:1em">{key}</th><td style="text-align:left">{value}</td></tr>'
        for key, value in rows
    )
    return (
        '<div class="mnistkit-dataset" style="border:1px solid #ccc; border-radius:4px; padding:0.5em 1em; '
        'display:inline-block">'
        f"<div><b>{escape(ds.name)}</b>: {escape(ds.title)}</div>"
        f"<table>{cells}</table>{samples}</div>"
    )
