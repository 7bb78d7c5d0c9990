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

Python runs a signal handler only when the main thread is back in the interpreter, and a
SIGTERM that arrives just before a blocking wait (or lands on another thread) leaves it
blocked with the handler unrun: ``pool.terminate()`` then waits forever. So the worker also
has Python's C-level handler write each signal to a socket (``signal.set_wakeup_fd``) that a
daemon thread reads: on SIGTERM it re-sends the signal to the main thread, whose blocking
call then fails with EINTR and runs the handler. If the main thread stays inside C code, the
watcher delivers by itself and ends the process.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import sys
import threading
import time
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
    if threading.current_thread() is threading.main_thread() and signal.getsignal(
        signal.SIGTERM
    ) in (signal.SIG_DFL, _exit_on_sigterm):  # ours: inherited from a worker that forked
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        _watch_sigterm()


class _Termination:
    """One SIGTERM's bounded delivery in this process, shared by the handler and the watcher."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards helper and deadline
        self.helper: threading.Thread | None = None
        self.deadline = 0.0
        self.handled = threading.Event()  # the main thread has entered the handler

    @property
    def started(self) -> bool:
        return self.helper is not None

    def deliver(self) -> None:
        """Run the exit hooks once, in a helper thread so a lock held by the interrupted code
        cannot hang us; return when they are done or the grace is over."""
        with self.lock:
            if self.helper is None:
                self.deadline = time.monotonic() + _TERM_GRACE_S
                self.helper = threading.Thread(
                    target=_run_exit_hooks, name="lowtrace-sigterm", daemon=True
                )
                self.helper.start()
            helper, deadline = self.helper, self.deadline
        helper.join(max(0.0, deadline - time.monotonic()))


_term = [_Termination()]  # replaced in a forked child


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM in a worker: run the exit hooks (bounded), then die of SIGTERM."""
    term = _term[0]
    if term.handled.is_set():
        return  # a repeat (the watcher's nudge) while this handler waits for the delivery
    if _exiting[0] and not term.started:
        return  # already exiting through its finalizer (a pool's stop sentinel): let it end
    term.handled.set()
    term.deliver()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


_TAKE_OVER_S: Final = 0.25  # how long the watcher nudges before delivering by itself
_RESIGNAL_S: Final = 2.0  # how long it nudges, after delivering, a main thread stuck in C
_RESIGNAL_EVERY_S: Final = 0.02
_CREDENTIALS: Final = struct.Struct("3i")  # SCM_CREDENTIALS: pid, uid, gid of the writer
_wakeup: list[tuple[socket.socket, socket.socket] | None] = [None]  # (read, write) if ours
_stranded: list[tuple[socket.socket, socket.socket]] = []  # still the wakeup fd: never closed


def _watch_sigterm() -> None:
    """From the main thread: have SIGTERM written to a socket a daemon thread waits on.

    If the program already has a wakeup fd (asyncio sets one), it keeps it and SIGTERM
    relies on the handler alone, as before. The reader asks the kernel for each byte's
    sender, so a forked child that has not yet dropped the inherited fd cannot stop us.
    """
    if _wakeup[0] is not None:
        return
    try:
        reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    except OSError:
        return  # out of descriptors: the handler alone, as before
    writer.setblocking(False)
    passcred = getattr(socket, "SO_PASSCRED", None)
    try:
        if passcred is not None:
            reader.setsockopt(socket.SOL_SOCKET, passcred, 1)
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except (OSError, ValueError):
        previous = None
    if previous != -1:
        if previous is not None:
            signal.set_wakeup_fd(previous)  # the program's own: give it back untouched
        reader.close()
        writer.close()
        return
    _wakeup[0] = (reader, writer)
    watcher = threading.Thread(
        target=_watch, args=(reader,), name="lowtrace-sigterm-watch", daemon=True
    )
    watcher.start()


def _watch(reader: socket.socket) -> None:
    """The watcher thread: on this process's SIGTERM, see that the handler runs; if the main
    thread stays in C code, deliver from here and end the process."""
    while True:
        try:
            data, ancillary, _, _ = reader.recvmsg(1, socket.CMSG_SPACE(_CREDENTIALS.size))
        except OSError:
            return  # closed: this process no longer watches
        if data != bytes([signal.SIGTERM]) or not _sent_by_this_process(ancillary):
            continue
        if signal.getsignal(signal.SIGTERM) is not _exit_on_sigterm:
            continue  # the program installed its own handler: SIGTERM is its business
        if _exiting[0] and not _term[0].started:
            continue  # exiting through its finalizer, as the handler would let it
        break
    term = _term[0]
    if _nudge_main_thread(until=term.handled, seconds=_TAKE_OVER_S):
        return  # the handler runs, with the program paused as it should be: it ends us
    term.deliver()  # the main thread is stuck in C code: deliver from here
    if _nudge_main_thread(until=term.handled, seconds=_RESIGNAL_S):
        return  # it came back to Python: the handler resets SIGTERM and dies of it
    # Off the main thread SIGTERM's action cannot be reset, and the main thread is still in
    # C code: exit with the shell's status for "terminated by SIGTERM" (SIGKILL would read
    # as an OOM kill, and the hooks have already run).
    os._exit(128 + signal.SIGTERM)


def _sent_by_this_process(ancillary: list[tuple[int, int, bytes]]) -> bool:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == getattr(socket, "SCM_CREDENTIALS", None):
            return bool(_CREDENTIALS.unpack_from(data)[0] == os.getpid())
    return True  # no credentials on this platform: trust the byte


def _nudge_main_thread(until: threading.Event, seconds: float) -> bool:
    """Re-send SIGTERM to the main thread, whose blocking call then fails with EINTR so it
    runs the handler, until ``until`` is set or ``seconds`` pass; say whether it was set."""
    main = threading.main_thread().ident
    deadline = time.monotonic() + seconds
    while main is not None and time.monotonic() < deadline:
        try:
            signal.pthread_kill(main, signal.SIGTERM)
        except OSError:
            break
        if until.wait(_RESIGNAL_EVERY_S):
            return True
    return until.is_set()


def _forget_parents_termination() -> None:
    """In a forked child: fresh delivery state, and the parent's wakeup socket dropped (the
    child's signals must not reach the parent's watcher)."""
    _term[0] = _Termination()
    wakeup, _wakeup[0] = _wakeup[0], None
    if wakeup is None:
        return
    reader, writer = wakeup
    try:
        current = signal.set_wakeup_fd(-1)
    except ValueError:
        _stranded.append(wakeup)  # cannot clear it here: keep its fd from being reused
        return
    if current not in (-1, writer.fileno()):
        signal.set_wakeup_fd(current)  # the program's own, set after ours
    reader.close()
    writer.close()


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
    os.register_at_fork(after_in_child=_forget_parents_termination)
    os.register_at_fork(after_in_child=_run_child_hooks)
    os.register_at_fork(after_in_child=_watch_forked_worker)
