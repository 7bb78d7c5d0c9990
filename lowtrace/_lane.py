"""One destination of the export pipeline: its bounded queue, its worker and its counters.

Three conditions share the lane's one lock, so each wait is woken only by what it waits
for: ``work`` (traces arrived, a flush or close wants them now) wakes the worker; ``progress``
(traces were taken or settled) wakes ``flush()`` and producers blocked on a full queue;
``nap`` (close() wants the worker now) is the only thing that ends a retry's backoff sleep
early, so a failing destination keeps its backoff schedule however busy the producers are.

How a batch is exported (split on failure, retried with backoff, through a circuit
breaker) is ``Retrying`` (``_retry``); nothing an exporter raises ends the worker.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING

from lowtrace._retry import Retrying

if TYPE_CHECKING:
    from lowtrace._config import PipelineConfig
    from lowtrace._model import Trace
    from lowtrace._pipeline import Exporter

__all__ = ["FOREVER", "Lane", "LaneCounts"]

log = logging.getLogger("lowtrace")
FOREVER = float("inf")
_POLL_S = 0.5  # how often a waiting flush() checks that the worker is still alive


class LaneCounts:
    """What happened to one destination's traces (read and written under the lane's lock)."""

    __slots__ = ("dropped", "exported", "failed", "rejected", "retried")

    def __init__(self) -> None:
        self.exported = self.dropped = self.failed = self.retried = self.rejected = 0


class _Waiter:
    """A ``flush()`` in progress: set when a trace is lost while it waits."""

    __slots__ = ("lost",)

    def __init__(self, lost: bool) -> None:
        self.lost = lost


class Lane(Retrying):
    """One destination: a queue, one daemon worker thread, counters.

    ``submit`` takes no lock on its common path: ``deque.append`` is atomic, and a lock
    taken by every ending trace would convoy threads on the GIL. Positions, not timestamps,
    say what a ``flush()`` waits for: it snapshots ``taken + len(queue)`` under the lock and
    waits until that many traces are settled. The byte count is kept approximately by
    producers and recomputed exactly by the worker at every batch.
    """

    def __init__(self, exporter: Exporter, name: str, config: PipelineConfig) -> None:
        self.exporter = exporter
        self.name = name
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Fresh, empty state with new locks (also what a forked child starts from)."""
        lock = threading.Lock()
        self.lock = lock
        self.work = threading.Condition(lock)
        self.progress = threading.Condition(lock)
        self.nap = threading.Condition(lock)
        self.queue: collections.deque[tuple[Trace, int]] = collections.deque()
        self.queued_bytes = 0  # approximate between batches (see the class docstring)
        self.taken = 0  # traces the worker took off the queue, ever
        self.settled = 0  # traces taken and then delivered, rejected or given up on, ever
        self.counts = LaneCounts()
        self.thread: threading.Thread | None = None
        self.worker_up = False  # a worker runs: set when it starts, cleared as it leaves
        self.stopping = False
        self.deadline = FOREVER
        self.busy = 0  # traces taken off the queue and being exported
        self.idle = False  # the worker waits for work (producers then signal a full batch)
        self.flushing = 0  # flush() calls waiting: deliver without the export delay
        self.blocked = 0  # producers waiting for room (when_full="block")
        self.waiters: list[_Waiter] = []
        self.unreported_loss = False  # a loss no completed flush() has reported yet
        self._rejection: BaseException | None = None  # the worker's last final answer
        # The circuit breaker (worker thread only): batches given up on in a row; once
        # _BREAKER_AFTER of them, each batch gets one attempt (a probe), no retries.
        self.failed_batches = 0
        self.tripped = False

    # -- caller side ------------------------------------------------------------------------

    def submit(self, trace: Trace, size: int) -> bool:
        config = self.config
        queue = self.queue
        if (
            self.stopping
            or len(queue) >= config.max_queue_traces
            or self.queued_bytes + size > config.max_queue_bytes
        ):
            return self._full(trace, size)
        queue.append((trace, size))
        self.queued_bytes += size
        if self.stopping:  # close() ran meanwhile: its worker may have left already
            return self._queued_while_stopping(trace)
        if not self.worker_up:  # not started yet, or died (it should not, but if it did)
            self._start()
        elif self.idle and len(queue) >= config.max_batch_traces:
            with self.lock:
                self.work.notify()  # a full batch goes at once (no lock while it is busy)
        return True

    def _fits(self, size: int) -> bool:
        config = self.config
        return (
            len(self.queue) < config.max_queue_traces
            and self.queued_bytes + size <= config.max_queue_bytes
        )

    def _full(self, trace: Trace, size: int) -> bool:
        """The queue is full: drop the newest trace, or first wait for room (``block``)."""
        config = self.config
        if config.when_full == "block" and not self.stopping:
            deadline = time.monotonic() + config.block_timeout_s
            queued = False
            with self.lock:
                self.blocked += 1
                try:
                    while not self.stopping:
                        if self._fits(size):
                            self.queue.append((trace, size))
                            self.queued_bytes += size
                            self.work.notify()
                            queued = True
                            break
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self.progress.wait(remaining)
                finally:
                    self.blocked -= 1
                if queued:
                    self._start_locked()
                    return True
        return self._drop()

    def _queued_while_stopping(self, trace: Trace) -> bool:
        """A trace queued as ``close()`` stopped the lane: the worker takes it if it is
        still there (it leaves only once the queue is empty); if it has left, nobody ever
        will, so the trace is taken back and counted as dropped."""
        with self.lock:
            if self.worker_up:
                return True
            for index, (queued, size) in enumerate(self.queue):
                if queued is trace:
                    del self.queue[index]
                    self.queued_bytes -= size
                    self.taken += 1  # settled as well: a flush() counting it is not kept waiting
                    self.settled += 1
                    self.progress.notify_all()
                    break
            else:
                return True  # a worker started by flush() took it
            dropped = self._count_drop()
        self._warn_dropped(dropped)
        return False

    def _drop(self) -> bool:
        with self.lock:
            dropped = self._count_drop()
        self._warn_dropped(dropped)
        return False

    def _count_drop(self) -> int:
        """Count one dropped trace (under the lock); the number dropped so far."""
        self.counts.dropped += 1
        self._lost()
        return self.counts.dropped

    def _warn_dropped(self, dropped: int) -> None:
        if self.stopping:
            if dropped == 1:
                log.warning("lowtrace: %s is closed; traces ending now are dropped", self.name)
            return
        if dropped in (1, 10, 100) or dropped % 1000 == 0:
            log.warning(
                "lowtrace: export queue for %s is full; %d trace(s) dropped so far",
                self.name,
                dropped,
            )

    def _lost(self) -> None:
        """Record a loss for every flush() that must report it (under the lock)."""
        self.unreported_loss = True
        for waiter in self.waiters:
            waiter.lost = True

    def _start(self) -> None:
        with self.lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self.worker_up:
            return
        self.thread = threading.Thread(
            target=self._run, name=f"lowtrace-export-{self.name}", daemon=True
        )
        self.thread.start()
        self.worker_up = True  # before the worker can take the lock, so before it leaves

    def wait_delivered(self, deadline: float) -> bool:
        """Wait until everything submitted so far is settled; True if nothing was lost.

        A loss is reported (False) by every flush that was waiting when it happened, and by
        the next one to start if none was; a timed-out flush reports nothing away.
        """
        with self.lock:
            target = self.taken + len(self.queue)
            waiter = _Waiter(self.unreported_loss)
            self.waiters.append(waiter)
            self.flushing += 1  # the worker sends what it has at once
            self.work.notify()
            try:
                while self.settled < target:
                    if self.queue and self.thread is not None and not self.worker_up:
                        self._start_locked()  # a dead worker (see submit)
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self.progress.wait(min(remaining, _POLL_S))
            finally:
                self.flushing -= 1
                self.waiters.remove(waiter)
            self.unreported_loss = False
            return not waiter.lost

    def wait_settled(self, deadline: float) -> bool:
        """Wait until what was submitted before this call is settled (read-your-writes).

        Unlike ``wait_delivered`` it reports no loss and leaves flush()'s reporting alone.
        Returns False on timeout, and at once inside ``export()`` (it would wait for itself).
        """
        if self.is_worker():
            return False
        with self.lock:
            target = self.taken + len(self.queue)
            if self.settled >= target:
                return True
            self.flushing += 1
            self.work.notify()
            try:
                while self.settled < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self.progress.wait(min(remaining, _POLL_S))
            finally:
                self.flushing -= 1
            return True

    def snapshot(self) -> tuple[int, LaneCounts]:
        """(traces waiting or being exported, a copy of the counters)."""
        with self.lock:
            counts = LaneCounts()
            for name in LaneCounts.__slots__:
                setattr(counts, name, getattr(self.counts, name))
            return len(self.queue) + self.busy, counts

    def stop(self, deadline: float) -> None:
        with self.lock:
            self.stopping = True
            self.deadline = deadline
            self.work.notify_all()
            self.nap.notify_all()
            self.progress.notify_all()
        thread = self.thread
        if thread is not None and thread.ident is not None and not self.is_worker():
            thread.join(max(0.0, deadline - time.monotonic()))

    def is_worker(self) -> bool:
        """Whether the caller is this lane's worker (inside the exporter's ``export()``)."""
        return threading.current_thread() is self.thread

    # -- worker side ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._work()
        finally:
            with self.lock:
                if self.thread is threading.current_thread():  # not a successor's flag
                    self.worker_up = False

    def _work(self) -> None:
        config = self.config
        while True:
            with self.lock:
                # Traces arriving within the export delay ride in one batch, instead of
                # waking this thread one by one; flush(), close() and a full batch do not
                # wait. Producers do not signal the first trace: this wait is a poll.
                while not self.queue or not (
                    self.stopping or self.flushing or len(self.queue) >= config.max_batch_traces
                ):
                    if not self.queue and self.stopping:
                        self.worker_up = False  # in this lock section: see submit()
                        return
                    self.idle = True
                    try:
                        if self.queue and not self.work.wait(config.export_delay_s):
                            break  # the delay has passed: send what is there
                        if not self.queue:
                            self.work.wait(config.export_delay_s)
                    finally:
                        self.idle = False
                take = min(len(self.queue), config.max_batch_traces)
                batch = [self.queue.popleft()[0] for _ in range(take)]
                self.taken += take
                self.busy = take
                self.queued_bytes = sum(entry[1] for entry in list(self.queue))
                if self.blocked:
                    self.progress.notify_all()  # room for producers waiting on a full queue
            exported = rejected = failed = 0
            try:
                exported, rejected, failed = self._deliver(batch)
            finally:
                del batch
                with self.lock:
                    counts = self.counts
                    failed = take - exported - rejected  # an internal error fails the rest
                    counts.exported += exported
                    counts.rejected += rejected
                    counts.failed += failed
                    if rejected or failed:
                        self._lost()
                    self.busy = 0
                    self.settled += take
                    self.progress.notify_all()
