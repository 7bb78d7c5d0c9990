"""The export pipeline: finished traces to their destinations, off the caller's thread.

Each destination (the store named by the client's URI, then every extra exporter) gets a
``_Lane``: a bounded queue and one daemon worker thread, so a slow or dead destination never
delays the others and never blocks the caller. ``submit`` is O(1) per destination and never
waits on I/O: when a lane's queue is full (by count or bytes) the trace is dropped for that
lane and counted. The worker exports in batches (whatever accumulated while the previous
batch was written), retrying a failed batch with exponential backoff and full jitter up to
a bound; what still fails is counted as lost and logged.

Locking: each lane has one ``threading.Condition``; the queue, the sequence numbers and the
counters of that lane change only while holding it. ``export()`` is called without it.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from collections.abc import Sequence

    from lowtrace._config import PipelineConfig
    from lowtrace._model import Trace

__all__ = ["ExportPipeline", "Exporter", "ExporterStats"]

log = logging.getLogger("lowtrace")
_FOREVER = float("inf")


@runtime_checkable
class Exporter(Protocol):
    """Anything with ``export(traces)``; raising means the batch failed and is retried.

    ``shutdown()`` is optional and is called once by ``TracingClient.close()``.
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

    @property
    def lost(self) -> int:
        return self.dropped + self.failed


class _Lane:
    """One destination: its queue, its worker thread and its counters.

    ``submit`` takes no lock on its common path: ``deque.append`` is atomic, and a lock
    taken by every ending trace would convoy threads on the GIL (a thread preempted while
    holding it stalls all the others). Positions, not timestamps, say what a ``flush()``
    waits for: it snapshots ``taken + len(queue)`` under the lock and waits until that many
    traces are settled. The byte count is kept approximately by producers and recomputed
    exactly by the worker at every batch.
    """

    def __init__(self, exporter: Exporter, name: str, config: PipelineConfig) -> None:
        self.exporter = exporter
        self.name = name
        self.config = config
        self._reset()

    def _reset(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.queue: collections.deque[tuple[Trace, int]] = collections.deque()
        self.queued_bytes = 0  # approximate between batches (see the class docstring)
        self.taken = 0  # traces the worker took off the queue, ever
        self.settled = 0  # traces taken and then delivered or given up on, ever
        self.exported = self.dropped = self.failed = self.retried = 0
        self.lost_seen_by_flush = 0
        self.thread: threading.Thread | None = None
        self.stopping = False
        self.deadline = _FOREVER
        self.busy = 0  # traces taken off the queue and being exported
        self.flushing = 0  # flush() calls waiting: deliver without the export delay

    # -- caller side ------------------------------------------------------------------------

    def submit(self, trace: Trace, size: int) -> bool:
        config = self.config
        queue = self.queue
        if (
            self.stopping
            or len(queue) >= config.max_queue_traces
            or self.queued_bytes + size > config.max_queue_bytes
        ):
            return self._drop()
        queue.append((trace, size))
        self.queued_bytes += size
        if self.thread is None:
            self._start()
        elif len(queue) >= config.max_batch_traces:
            with self.cond:
                self.cond.notify_all()  # a full batch goes at once
        return True

    def _drop(self) -> bool:
        with self.cond:
            self.dropped += 1
            dropped = self.dropped
        if dropped in (1, 10, 100) or dropped % 1000 == 0:
            log.warning(
                "lowtrace: export queue for %s is full; %d trace(s) dropped so far",
                self.name,
                dropped,
            )
        return False

    def _start(self) -> None:
        with self.cond:
            if self.thread is not None:
                return
            self.thread = threading.Thread(
                target=self._run, name=f"lowtrace-export-{self.name}", daemon=True
            )
            self.thread.start()

    def wait_delivered(self, deadline: float) -> bool:
        """Wait until everything submitted so far is delivered or lost; True if no loss."""
        with self.cond:
            target = self.taken + len(self.queue)
            self.flushing += 1  # the worker sends what it has at once
            self.cond.notify_all()
            try:
                while self.settled < target:
                    if deadline == _FOREVER:
                        self.cond.wait()
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self.cond.wait(remaining)
            finally:
                self.flushing -= 1
            lost = self.dropped + self.failed
            ok = lost == self.lost_seen_by_flush
            self.lost_seen_by_flush = lost
            return ok

    def wait_settled(self, deadline: float) -> bool:
        """Wait until what was submitted before this call is delivered or given up on.

        For read-your-writes: unlike ``wait_delivered`` it leaves the loss count that
        ``flush()`` reports alone. Returns False on timeout.
        """
        if threading.current_thread() is self.thread:
            return False  # read from inside export(): waiting for ourselves never ends
        with self.cond:
            target = self.taken + len(self.queue)
            if self.settled >= target:
                return True  # nothing in flight
            self.flushing += 1
            self.cond.notify_all()
            try:
                while self.settled < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self.cond.wait(remaining)
            finally:
                self.flushing -= 1
            return True

    def stats(self) -> ExporterStats:
        with self.cond:
            return ExporterStats(
                self.name,
                len(self.queue) + self.busy,
                self.exported,
                self.dropped,
                self.failed,
                self.retried,
            )

    def stop(self, deadline: float) -> None:
        with self.cond:
            self.stopping = True
            self.deadline = deadline
            self.cond.notify_all()
        thread = self.thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- worker side ------------------------------------------------------------------------

    def _run(self) -> None:
        config = self.config
        while True:
            with self.cond:
                # Traces arriving within the export delay ride in one batch, instead of
                # waking this thread one by one; flush(), close() and a full batch do not
                # wait. Producers do not signal the first trace: this wait is a poll.
                while not self.queue or not (
                    self.stopping or self.flushing or len(self.queue) >= config.max_batch_traces
                ):
                    if not self.queue and self.stopping:
                        return
                    if self.queue and not self.cond.wait(config.export_delay_s):
                        break  # the delay has passed: send what is there
                    if not self.queue:
                        self.cond.wait(config.export_delay_s)
                take = min(len(self.queue), config.max_batch_traces)
                batch = [self.queue.popleft() for _ in range(take)]
                self.taken += take
                self.busy = take
                self.queued_bytes = sum(entry[1] for entry in list(self.queue))
            delivered = self._deliver([entry[0] for entry in batch])
            del batch
            with self.cond:
                self.busy = 0
                if delivered:
                    self.exported += take
                else:
                    self.failed += take
                self.settled += take
                self.cond.notify_all()

    def _deliver(self, batch: list[Trace]) -> bool:
        config = self.config
        delay = config.backoff_initial_s
        for attempt in range(1, config.max_attempts + 1):
            try:
                self.exporter.export(batch)
                return True
            except Exception as exc:  # noqa: BLE001 - any exporter failure is retried
                last = exc
            if attempt == config.max_attempts:
                break
            with self.cond:
                self.retried += 1
                pause = random.uniform(0, delay)
                if self.stopping:
                    pause = min(pause, self.deadline - time.monotonic())
                    if pause <= 0:
                        break
                self.cond.wait(pause)
            delay = min(delay * 2, config.backoff_max_s)
        log.error(
            "lowtrace: gave up exporting %d trace(s) to %s after %d attempt(s): %r",
            len(batch),
            self.name,
            attempt,
            last,
        )
        return False


class ExportPipeline:
    """Fans finished traces out to every destination through per-destination lanes."""

    def __init__(self, exporters: Sequence[tuple[str, Exporter]], config: PipelineConfig) -> None:
        self.config = config
        self.lanes = [_Lane(exporter, name, config) for name, exporter in exporters]
        self._closed = False

    def submit(self, trace: Trace, size: int) -> bool:
        """Queue a finished trace for every destination; False if any lane dropped it."""
        ok = True
        for lane in self.lanes:
            ok = lane.submit(trace, size) and ok
        return ok

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is delivered; True if nothing was lost."""
        deadline = _FOREVER if timeout is None else time.monotonic() + timeout
        ok = True
        for lane in self.lanes:
            ok = lane.wait_delivered(deadline) and ok
        return ok

    def settle(self, lane: int, timeout: float) -> bool:
        """Wait (up to ``timeout``) until one destination took what was submitted so far."""
        return self.lanes[lane].wait_settled(time.monotonic() + timeout)

    def shutdown(self, timeout: float) -> bool:
        """Deliver what is queued within ``timeout``, stop the workers, shut exporters down."""
        if self._closed:
            return True
        self._closed = True
        deadline = time.monotonic() + timeout
        for lane in self.lanes:
            lane.stop(deadline)
        ok = self.flush(timeout=max(0.0, deadline - time.monotonic()))
        for lane in self.lanes:
            shutdown = getattr(lane.exporter, "shutdown", None)
            if callable(shutdown):
                try:
                    shutdown()
                except Exception:
                    log.exception("lowtrace: %s.shutdown() failed", lane.name)
        lost = [s for s in self.stats() if s.lost or s.queued]
        for s in lost:
            log.warning(
                "lowtrace: %s lost %d trace(s) (%d dropped on a full queue, %d failed), "
                "%d undelivered at shutdown",
                s.name,
                s.lost,
                s.dropped,
                s.failed,
                s.queued,
            )
        return ok

    def stats(self) -> list[ExporterStats]:
        return [lane.stats() for lane in self.lanes]

    def after_fork_in_child(self) -> None:
        """The parent delivers what it had queued; the child starts empty, with new locks."""
        for lane in self.lanes:
            lane._reset()
        self._closed = False


def describe(exporter: Any) -> str:
    """A short name for an exporter in logs and stats."""
    uri = getattr(exporter, "uri", None)
    return str(uri) if uri else type(exporter).__name__
