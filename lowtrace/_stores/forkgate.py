"""Forking safely while store threads are inside SQLite or hold a table's file lock.

``os.fork()`` copies only the calling thread: a lock, an open SQLite transaction or a
``flock`` another thread held at that moment stays held forever in the child (SQLite's
in-process lock table says "locked", so the child's own writes wait on a copy of the
parent's transaction). A store wraps each stretch of work that must not be cut by a fork
in its ``ForkGate``; before a fork the gate waits (bounded) until no thread is inside and
keeps new ones out, and in the child it calls the store's hook to get fresh locks and
connections.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Final

__all__ = ["ForkGate", "fork_gate"]

log = logging.getLogger("lowtrace")

#: How long a fork waits for store work in other threads to finish before going ahead.
FORK_WAIT_S: Final = 10.0


class ForkGate:
    """Counts threads inside a store's critical work; a fork waits for none to be inside."""

    def __init__(self, after_fork_in_child: Callable[[], None] | None = None) -> None:
        self._cond = threading.Condition(threading.Lock())  # guards _inside
        self._inside: dict[int, int] = {}  # thread id -> nesting depth
        self._child_hook = after_fork_in_child
        _gates.add(self)

    def enter(self) -> None:
        with self._cond:
            me = threading.get_ident()
            self._inside[me] = self._inside.get(me, 0) + 1

    def leave(self) -> None:
        with self._cond:
            me = threading.get_ident()
            depth = self._inside.pop(me, 1) - 1
            if depth:
                self._inside[me] = depth
            else:
                self._cond.notify_all()

    def _close_for_fork(self) -> None:
        """Hold the gate shut once no other thread is inside (the lock stays held)."""
        self._cond.acquire()
        me = threading.get_ident()
        deadline = time.monotonic() + FORK_WAIT_S
        while any(t != me for t in self._inside):
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning(
                    "fork: store work still running after %.0f s; forking anyway", FORK_WAIT_S
                )
                return
            self._cond.wait(left)

    def _open_in_parent(self) -> None:
        self._cond.release()

    def _reset_in_child(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        me = threading.get_ident()
        self._inside = {me: self._inside[me]} if me in self._inside else {}
        if self._child_hook is not None:
            self._child_hook()


@contextlib.contextmanager
def fork_gate(gate: ForkGate) -> Iterator[None]:
    """Run the block with ``gate`` entered: no fork cuts through it."""
    gate.enter()
    try:
        yield
    finally:
        gate.leave()


_gates: weakref.WeakSet[ForkGate] = weakref.WeakSet()
_closed: list[ForkGate] = []


def _before_fork() -> None:
    _closed[:] = list(_gates)
    for gate in _closed:
        gate._close_for_fork()


def _after_fork_in_parent() -> None:
    for gate in _closed:
        gate._open_in_parent()
    _closed.clear()


def _after_fork_in_child() -> None:
    for gate in _closed:
        gate._reset_in_child()
    _closed.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
