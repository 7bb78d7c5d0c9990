"""The export pipeline: finished traces to their destinations, off the caller's thread.

Each destination (the store named by the client's URI, then every extra exporter) gets a
``Lane`` (see ``_lane``): a bounded queue and one daemon worker thread, so a slow or dead
destination never delays the others. ``submit`` is O(1) per destination and never waits on
I/O unless ``PipelineConfig(when_full="block")`` asks it to: when a lane's queue is full
(by count or bytes) the newest trace is dropped for that lane and counted. The worker
exports in batches, retries with backoff, isolates a trace its destination cannot take,
and counts every trace it could not deliver.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from lowtrace._config import PipelineConfig
    from lowtrace._model import Trace

from lowtrace._lane import FOREVER, Lane

__all__ = ["SHUTDOWN_GRACE_S", "ExportPipeline", "Exporter", "ExporterStats"]

log = logging.getLogger("lowtrace")
SHUTDOWN_GRACE_S = 1.0  # what each exporter's shutdown() may take past close()'s timeout


@runtime_checkable
class Exporter(Protocol):
    """Anything with ``export(traces)``; raising means the batch failed and is retried.

    ``shutdown()`` is optional and is called once by ``TracingClient.close()``; ``flush()``
    is optional and is called by ``TracingClient.flush()`` after the queue is delivered.
    """

    def export(self, traces: Sequence[Trace]) -> None: ...


@attrs.frozen
class ExporterStats:
    """Counters of one destination since the client started."""

    name: str
    queued: int  # waiting in the queue right now
    exported: int  # delivered
    dropped: int  # refused because the queue was full
    failed: int  # given up on after every retry
    retried: int  # failed attempts that were retried
    rejected: int = 0  # refused by the destination's final answer (ExportRejectedError)

    @property
    def lost(self) -> int:
        """Traces this destination never received: dropped, failed or rejected."""
        return self.dropped + self.failed + self.rejected


class ExportPipeline:
    """Fans finished traces out to every destination through per-destination lanes."""

    def __init__(
        self,
        exporters: Sequence[tuple[str, Exporter]],
        config: PipelineConfig,
        *,
        store_lane: int | None = None,
    ) -> None:
        self.config = config
        self.lanes = [Lane(exporter, name, config) for name, exporter in exporters]
        #: Which lane writes the client's store (None: no store, e.g. ``none://``).
        self.store_lane = store_lane
        self._closed = False

    def submit(self, trace: Trace, size: int) -> bool:
        """Queue a finished trace for every destination; False if any lane dropped it."""
        ok = True
        for lane in self.lanes:
            ok = lane.submit(trace, size) and ok
        return ok

    def in_worker(self) -> bool:
        """Whether the caller is one of the workers (inside an exporter's ``export()``)."""
        return any(lane.is_worker() for lane in self.lanes)

    def settle_store(self, timeout: float) -> bool:
        """Wait (up to ``timeout``) until the store took what was submitted so far."""
        if self.store_lane is None:
            return True
        return self.lanes[self.store_lane].wait_settled(time.monotonic() + timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is delivered; True if nothing was lost.

        Called from inside an ``export()`` (a worker thread) it does not wait: the worker
        would wait for its own batch, and two workers flushing could wait for each other.
        """
        deadline = FOREVER if timeout is None else time.monotonic() + timeout
        if self.in_worker():
            deadline = time.monotonic()
        ok = True
        for lane in self.lanes:
            ok = lane.wait_delivered(deadline) and ok
            flush = getattr(lane.exporter, "flush", None)
            if callable(flush):
                ok = _call_by(deadline, flush, f"{lane.name}.flush()") and ok
        return ok

    def shutdown(self, timeout: float) -> bool:
        """Deliver what is queued within ``timeout``, stop the workers, shut exporters down."""
        if self._closed:
            return True
        self._closed = True
        deadline = time.monotonic() + timeout
        for lane in self.lanes:
            lane.stop(deadline)
        ok = self.flush(timeout=max(0.0, deadline - time.monotonic()))
        # An exporter's shutdown() may need a moment even when delivery used up the time.
        deadline = max(deadline, time.monotonic() + SHUTDOWN_GRACE_S)
        for lane in self.lanes:
            shutdown = getattr(lane.exporter, "shutdown", None)
            if callable(shutdown):
                _call_by(deadline, shutdown, f"{lane.name}.shutdown()")
        lost = [s for s in self.stats() if s.lost or s.queued]
        for s in lost:
            log.warning(
                "lowtrace: %s lost %d trace(s) (%d dropped on a full queue, %d failed, "
                "%d rejected), %d undelivered at shutdown",
                s.name,
                s.lost,
                s.dropped,
                s.failed,
                s.rejected,
                s.queued,
            )
        return ok

    def stats(self) -> list[ExporterStats]:
        out = []
        for lane in self.lanes:
            queued, c = lane.snapshot()
            out.append(
                ExporterStats(
                    lane.name, queued, c.exported, c.dropped, c.failed, c.retried, c.rejected
                )
            )
        return out

    def after_fork_in_child(self) -> None:
        """The parent delivers what it had queued; the child starts empty, with new locks."""
        for lane in self.lanes:
            lane.reset()
        self._closed = False


def _call_by(deadline: float, call: Callable[[], object], what: str) -> bool:
    """Call an exporter's ``flush()`` or ``shutdown()``, waiting for it until ``deadline``.

    A hook that hangs (a dead backend) must not hang ``flush(timeout)`` or ``close()``: with
    a finite deadline it runs in a daemon thread that is left behind if it is late.
    """
    outcome: list[bool] = []

    def run() -> None:
        try:
            call()
        except Exception:
            log.exception("lowtrace: %s failed", what)
            outcome.append(False)
        else:
            outcome.append(True)

    if deadline == FOREVER:
        run()
        return outcome[0]
    helper = threading.Thread(target=run, name=f"lowtrace-{what}", daemon=True)
    try:
        helper.start()
    except RuntimeError:  # no new threads (interpreter shutdown): call it here
        run()
        return outcome[0]
    helper.join(max(0.0, deadline - time.monotonic()))
    if not outcome:
        log.warning("lowtrace: %s did not return in time; not waiting for it", what)
        return False
    return outcome[0]


def describe(exporter: Any) -> str:
    """A short name for an exporter in logs and stats."""
    uri = getattr(exporter, "uri", None)
    return str(uri) if uri else type(exporter).__name__
