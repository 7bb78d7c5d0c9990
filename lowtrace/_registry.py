"""The registry of live traces of one client, with the bounds that stop leaks.

Lookups on the span hot path are plain ``dict.get`` calls without a lock (atomic in
CPython); the registry lock is taken only to add or remove a trace. Two bounds keep a
client from holding unfinished traces forever: ``max_live_traces`` (the oldest live trace
is abandoned when a new one would exceed it) and ``idle_timeout_s`` (a housekeeping thread
abandons traces nobody touched for that long). Abandoned traces are closed with status
ERROR and exported, never dropped silently.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import threading
import time
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from lowtrace._config import Limits
    from lowtrace._live import LiveTrace

__all__ = ["LiveRegistry"]

_RECENTLY_ENDED = 8_192  # ended trace ids remembered, to say "ended" rather than "unknown"


class LiveRegistry:
    """Live traces by id, plus a bounded memory of recently ended ones."""

    def __init__(self, limits: Limits, abandon: Callable[[LiveTrace, str], None]) -> None:
        self._limits = limits
        self._abandon = abandon
        self._lock = threading.Lock()
        self.traces: dict[str, LiveTrace] = {}
        self._ended: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._reaper: threading.Thread | None = None
        self._stop = threading.Event()
        # Counters: itertools.count steps are atomic; the rare ones change under the lock.
        self._started = itertools.count()
        self._finished = itertools.count()
        self.abandoned = self.dropped_spans = 0

    def get(self, trace_id: str) -> LiveTrace | None:
        """The live trace with this id (lock-free)."""
        return self.traces.get(trace_id)

    def add(self, live: LiveTrace) -> None:
        """Register a new live trace, abandoning the oldest one if the cap is reached."""
        traces = self.traces
        if len(traces) >= self._limits.max_live_traces or self._reaper is None:
            self._add_slow(live)
            return
        # The common path takes no lock (a lock here convoys threads on the GIL): a dict
        # store and a counter step, each atomic in CPython. Eviction takes the lock.
        traces[live.trace_id] = live
        next(self._started)

    def _add_slow(self, live: LiveTrace) -> None:
        evicted: list[LiveTrace] = []
        with self._lock:
            limit = self._limits.max_live_traces
            while len(self.traces) >= limit:
                oldest = next(iter(self.traces))
                self._ended[oldest] = None  # being abandoned: "ended" to callers from now on
                evicted.append(self.traces.pop(oldest))
            self.traces[live.trace_id] = live
            next(self._started)
            if self._reaper is None:
                self._start_reaper()
        for old in evicted:
            self._abandon(old, f"more than {self._limits.max_live_traces} live traces")

    def remove(self, live: LiveTrace) -> None:
        """Forget a finished trace, remembering its id as ended (atomic steps, no lock)."""
        trace_id = live.trace_id
        ended = self._ended
        ended[trace_id] = None  # before it leaves ``traces``: never "not found" in between
        self.traces.pop(trace_id, None)
        next(self._finished)
        if live.dropped_spans:
            with self._lock:
                self.dropped_spans += live.dropped_spans
        if len(ended) > _RECENTLY_ENDED:
            with contextlib.suppress(KeyError):  # another thread may have trimmed it
                ended.popitem(last=False)

    @property
    def started(self) -> int:
        return _count(self._started)

    @property
    def finished(self) -> int:
        return _count(self._finished)

    def count_abandoned(self) -> None:
        with self._lock:
            self.abandoned += 1

    def was_ended(self, trace_id: str) -> bool:
        return trace_id in self._ended

    def owner_of_span(self, span_id: str) -> str | None:
        """Which live trace holds this span id (error path only: scans every live trace)."""
        for live in list(self.traces.values()):
            if span_id in live.spans:
                return live.trace_id
        return None

    def sweep_idle(self, now: float | None = None) -> int:
        """Abandon every trace idle longer than the timeout; returns how many."""
        now = time.monotonic() if now is None else now
        cutoff = now - self._limits.idle_timeout_s
        idle = [t for t in list(self.traces.values()) if t.last_active < cutoff]
        for live in idle:
            self._abandon(live, f"idle for more than {self._limits.idle_timeout_s:g}s")
        return len(idle)

    def _start_reaper(self) -> None:
        interval = min(max(self._limits.idle_timeout_s / 4, 0.01), 30.0)
        self._reaper = threading.Thread(
            target=_reap_loop,
            args=(weakref.ref(self), self._stop, interval),
            name="lowtrace-reaper",
            daemon=True,
        )
        self._reaper.start()

    def stop(self) -> None:
        self._stop.set()

    def after_fork_in_child(self) -> None:
        """The parent owns the live traces; in the child they refuse further changes."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper = None
        for live in self.traces.values():
            live.detach_after_fork()
            self._ended[live.trace_id] = None
        self.traces.clear()  # the same dict: the client keeps a reference to it


def _count(counter: itertools.count[int]) -> int:
    """How many times a counter was stepped (its repr is ``count(N)``; reading is free)."""
    return int(repr(counter)[6:-1])


def _reap_loop(ref: weakref.ref[LiveRegistry], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        registry = ref()
        if registry is None:
            return
        registry.sweep_idle()
        del registry
