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
