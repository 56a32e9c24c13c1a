"""The ``"mnistkit"`` logger, made on first use so that ``import mnistkit`` need not import logging."""

from __future__ import annotations

import functools


@functools.cache
def logger():
    """The package logger; a library only adds a NullHandler: the application decides where records go."""
    import logging

    log = logging.getLogger("mnistkit")
    log.addHandler(logging.NullHandler())
    return log


class _Lazy:
    """Forwards ``log.info(...)`` and friends to :func:`logger`, creating it at the first call."""

    def __getattr__(self, name: str):
        return getattr(logger(), name)


log = _Lazy()


def progress_bar(total: int | None, desc: str, show: bool | None, *, unit: str = "B", initial: int = 0,
                 leave: bool = True):
    """A tqdm bar on stderr, or None when progress is off (``show`` None: only when stderr is a terminal).

    The one factory of progress bars: downloads count bytes (``unit="B"``, scaled by 1024), exports items.
    """
    import sys

    if not (sys.stderr.isatty() if show is None else show):
        return None
    from tqdm.auto import tqdm

    scaled = {"unit_scale": True, "unit_divisor": 1024} if unit == "B" else {}
    return tqdm(total=total, initial=initial, unit=unit, desc=desc, file=sys.stderr, leave=leave, **scaled)
