"""Data distributions: datasets installed with pip, found from package metadata alone.

A data distribution (``mnistkit-data-mnist``, ``mnistkit-data-fashion-mnist``, built from
``data-packages/`` in the repository) is a package folder holding a dataset's published files,
and one entry point in the group ``mnistkit.data``: the dataset's name -> the package's name::

    [project.entry-points."mnistkit.data"]
    mnist = "mnistkit_data_mnist"

Discovery reads the installed distributions' metadata (``entry_points.txt``) and locates the
package folder with :func:`importlib.util.find_spec`, which finds a top-level package without
running it: no installed package is ever imported.  Each folder found becomes the first source of
its dataset (:meth:`mnistkit.sources.Downloader.locations`): its files are copied and verified
exactly like a mirror's, and nothing is ever written into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ._log import log
from .settings import Settings

ENTRY_POINT_GROUP = "mnistkit.data"


@dataclass(frozen=True)
class DataDistribution:
    """One installed data distribution.

    Attributes
    ----------
    dataset : str
        The dataset it holds (the entry point's name), e.g. ``"mnist"``.
    distribution : str
        Its distribution name, e.g. ``"mnistkit-data-mnist"``.
    version : str
        Its version; says which data it holds (``1998.0``: MNIST as published in 1998).
    folder : pathlib.Path
        The installed package folder holding the files.
    """

    dataset: str
    distribution: str
    version: str
    folder: Path

    def describe(self) -> str:
        """``"mnistkit-data-mnist 1998.0"``."""
        return f"{self.distribution} {self.version}"


def _package_folder(entry_point) -> Path | None:
    """The folder of the package an entry point names, found without importing anything."""
    import importlib.util

    module = entry_point.value.split(":", 1)[0].strip()
    if not module or "." in module:  # a top-level package only: find_spec would import the parents
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    dist = getattr(entry_point, "dist", None)  # not on sys.path: ask the distribution where it is
    if dist is not None:
        folder = Path(dist.locate_file(module))
        if folder.is_dir():
            return folder
    return None


def installed(dataset: str | None = None) -> list[DataDistribution]:
    """The installed data distributions, in name order; only those of ``dataset`` when given.

    Parameters
    ----------
    dataset : str, optional
        A dataset name (``"mnist"``).

    Returns
    -------
    list of DataDistribution
        Distributions whose package folder cannot be found are left out (logged).
    """
    from importlib.metadata import entry_points

    def key(name: str) -> str:  # as get_dataset reads names: case and "_" / "-" do not matter
        return name.strip().lower().replace("_", "-")

    found = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if dataset is not None and key(entry_point.name) != key(dataset):
            continue
        dist = getattr(entry_point, "dist", None)
        name = dist.metadata["Name"] if dist is not None else entry_point.value
        version = dist.version if dist is not None else "?"
        folder = _package_folder(entry_point)
        if folder is None or not folder.is_dir():
            log.warning("data distribution %s %s: package %r not found; ignored", name, version, entry_point.value)
            continue
        found.append(DataDistribution(key(entry_point.name), name, version, folder))
    # One entry per distribution (an environment may list a path twice), in a stable order.
    unique = {(d.dataset, d.distribution, str(d.folder)): d for d in found}
    return sorted(unique.values(), key=lambda d: (d.dataset, d.distribution))


def folders(dataset) -> list[Path]:
    """The package folders of the data distributions holding ``dataset`` (a registry entry): first sources."""
    return [dist.folder for dist in installed(dataset.name)]


def origins(dataset, settings: Settings) -> list[dict]:
    """Where ``dataset``'s files come from, in the order they are tried.

    Parameters
    ----------
    dataset : Dataset
        The registry entry.
    settings : Settings
        Its ``mirrors`` and ``offline`` say which sources there are besides installed ones.

    Returns
    -------
    list of dict
        ``{"kind": "installed" | "extra" | "mirror", "location": str}``, plus
        ``"distribution"`` and ``"version"`` for an installed data distribution.
        Offline, only local sources are listed.
    """
    from .sources import is_http
    from .transfer import redact

    found = [
        {"kind": "installed", "location": str(d.folder), "distribution": d.distribution, "version": d.version}
        for d in installed(dataset.name)
    ]
    found += [{"kind": "extra", "location": redact(base)} for base in settings.mirrors]
    found += [{"kind": "mirror", "location": base} for base in dataset.mirrors]
    return [o for o in found if not (settings.offline and is_http(o["location"]))]
