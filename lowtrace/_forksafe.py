"""Keeping per-client state valid in a child made by ``os.fork()``.

Objects that own threads, locks or random state register here; after a fork, the child
calls their ``_after_fork_in_child()`` so it gets fresh locks, a reseeded id generator and a
working export pipeline instead of copies frozen in whatever state the parent had.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["ForkAware", "register"]


class ForkAware(Protocol):
    """Something that must repair itself in a forked child."""

    def _after_fork_in_child(self) -> None: ...


_objects: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def register(obj: ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked while ``obj`` is alive."""
    _objects.add(obj)


def _run_child_hooks() -> None:
    for obj in list(_objects):
        obj._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_run_child_hooks)
