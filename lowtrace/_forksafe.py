"""Keeping per-client state valid in a child made by ``os.fork()``, and flushing at its exit.

Objects that own threads, locks or random state register here; after a fork, the child
calls their ``_after_fork_in_child()`` so it gets fresh locks, a reseeded id generator and a
working export pipeline instead of copies frozen in whatever state the parent had.

A ``multiprocessing`` worker started by fork or forkserver ends with ``os._exit`` and never
runs ``atexit``; it runs multiprocessing's own finalizers instead. ``at_worker_exit``
names what such a worker must run then (the client delivers what is queued). A worker
stopped by ``Pool.terminate()`` (what ``with Pool(...)`` does on exit) gets SIGTERM, which
skips those finalizers too: while SIGTERM has its default action, the worker runs the hooks
first (at most ``_TERM_GRACE_S``, in a helper thread so a lock held by the interrupted code
cannot hang it), then dies of SIGTERM as it would have.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Final, Protocol

__all__ = ["ForkAware", "at_worker_exit", "register", "watch_worker_exit"]


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


_exit_hooks: list[Callable[[], None]] = []
_finalizer_pid = [0]  # the process whose multiprocessing finalizer is registered


class _Anchor:
    """What multiprocessing's after-fork registry holds (weakly) for us."""


_ANCHOR: Final = _Anchor()
_TERM_GRACE_S: Final = 10.0  # what a terminated worker may spend delivering its traces


def at_worker_exit(hook: Callable[[], None]) -> None:
    """Run ``hook`` when a multiprocessing worker process exits (it skips ``atexit``)."""
    _exit_hooks.append(hook)


_exiting = [False]  # the exit hooks have started in this process


def _run_exit_hooks() -> None:
    _exiting[0] = True
    for hook in _exit_hooks:
        hook()


def _register_finalizer(_: object = None) -> None:
    util = sys.modules["multiprocessing.util"]
    _finalizer_pid[0] = os.getpid()
    _exiting[0] = False
    util.Finalize(None, _run_exit_hooks, exitpriority=5)
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM in a worker: run the exit hooks (bounded), then die of SIGTERM."""
    if _exiting[0]:
        return  # already exiting through its finalizer (a pool's stop sentinel): let it end
    helper = threading.Thread(target=_run_exit_hooks, name="lowtrace-sigterm", daemon=True)
    helper.start()
    helper.join(_TERM_GRACE_S)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _watch_forked_worker() -> None:
    """In a forked child: if multiprocessing made it, run the exit hooks at its exit.

    The worker's bootstrap clears the finalizers inherited from the parent and then calls
    the after-fork hooks: the one registered here adds our finalizer back.
    """
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.register_after_fork(_ANCHOR, _register_finalizer)


def watch_worker_exit() -> None:
    """Called when a client is made: in a worker that imported us after it started
    (forkserver, spawn), no fork hook of ours ran, so register the finalizer now (once)."""
    if _finalizer_pid[0] == os.getpid():
        return
    process = sys.modules.get("multiprocessing.process")
    if process is None or "multiprocessing.util" not in sys.modules:
        return
    if process.parent_process() is not None:
        _register_finalizer()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_run_child_hooks)
    os.register_at_fork(after_in_child=_watch_forked_worker)
