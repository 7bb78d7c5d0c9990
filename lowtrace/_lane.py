"""One destination of the export pipeline: its bounded queue, its worker and its counters.

Three conditions share the lane's one lock, so each wait is woken only by what it waits
for: ``work`` (traces arrived, a flush or close wants them now) wakes the worker; ``progress``
(traces were taken or settled) wakes ``flush()`` and producers blocked on a full queue;
``nap`` (close() wants the worker now) is the only thing that ends a retry's backoff sleep
early, so a failing destination keeps its backoff schedule however busy the producers are.

A batch that fails is split: each trace is tried alone, so one trace the destination cannot
take is isolated and the others are delivered. ``ExportRejectedError`` is a final answer
(never retried). Any other exception, ``BaseException`` included, is retried with
exponential backoff and full jitter up to ``max_attempts``; none of them ends the worker.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from typing import TYPE_CHECKING

from lowtrace.errors import ExportRejectedError

if TYPE_CHECKING:
    from collections.abc import Callable

    from lowtrace._config import PipelineConfig
    from lowtrace._model import Trace
    from lowtrace._pipeline import Exporter

__all__ = ["FOREVER", "Lane", "LaneCounts"]

log = logging.getLogger("lowtrace")
FOREVER = float("inf")
_PROBES = 2  # single-trace attempts that all fail before a destination counts as down
_POLL_S = 0.5  # how often a waiting flush() checks that the worker is still alive
_BREAKER_AFTER = 3  # batches given up on in a row before the destination counts as dead


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


class Lane:
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
        if self.thread is None:
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
                        self._start_locked()  # defensive: a worker never dies, but if it did
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

    def _attempt(self, traces: list[Trace]) -> BaseException | None:
        """One export call; the exception it raised, if any (never raises itself).

        The exporter gets its own list: one that consumes or changes it must not change what
        the lane counts as delivered or tries again.
        """
        try:
            self.exporter.export(list(traces))
        except BaseException as exc:  # noqa: BLE001 - nothing an exporter raises ends the worker
            return exc
        return None

    def _isolate(self, pending: list[Trace]) -> tuple[int, int, list[Trace]]:
        """Try each trace alone: (delivered, rejected, still failing + untried).

        When the first few single tries deliver nothing, the destination is the problem,
        not one trace: all failed means it is down (the rest wait for the next attempt;
        those tried go last, so the next pass probes others), all rejected means it refuses
        everything (the rest are rejected without more calls).
        """
        delivered = 0
        rejected: list[Trace] = []
        failing: list[Trace] = []
        for index, trace in enumerate(pending):
            error = self._attempt([trace])
            if error is None:
                delivered += 1
            elif _is_rejection(error):
                rejected.append(trace)
                self._rejection = error
            else:
                failing.append(trace)
            if not delivered and index + 1 == _PROBES:
                if not rejected:
                    return 0, 0, pending[index + 1 :] + failing
                if not failing:
                    return 0, len(pending), []
        return delivered, len(rejected), failing

    def _deliver(self, batch: list[Trace]) -> tuple[int, int, int]:
        """Export a batch: (delivered, rejected, failed), through the circuit breaker.

        A dead destination must not make every queued batch wait out the full backoff in
        turn (a ``flush()`` would take minutes): after ``_BREAKER_AFTER`` batches in a row
        were given up on with nothing in them delivered or rejected, each batch is tried
        once and failed at once if that probe fails; the first probe that is answered closes
        the breaker.
        """
        if self.tripped:
            error = self._attempt(batch)
            if error is not None and not _is_rejection(error):
                return 0, 0, len(batch)  # counted as failed by the caller, logged at tripping
            self.tripped = False
            self.failed_batches = 0
            log.warning("lowtrace: %s answers again; exporting with retries again", self.name)
            if error is None:
                return len(batch), 0, 0
        delivered, rejected, failed = self._retry(batch)
        # Only a batch the destination answered nothing of shows it dead: one bad trace
        # among delivered ones must not make later batches fail whole, unisolated.
        dead = failed and not delivered and not rejected
        self.failed_batches = self.failed_batches + 1 if dead else 0
        if self.failed_batches >= _BREAKER_AFTER:
            self.tripped = True
            log.error(
                "lowtrace: %s failed %d batches in a row: failing queued traces fast (one "
                "attempt per batch, counted as failed) until it answers again",
                self.name,
                self.failed_batches,
            )
        return delivered, rejected, failed

    def _retry(self, batch: list[Trace]) -> tuple[int, int, int]:
        """Export a batch with retries: (delivered, rejected, failed); logs once per batch."""
        config = self.config
        delay = config.backoff_initial_s
        pending = batch
        delivered = rejected = 0
        attempt = 0
        error: BaseException | None = None
        self._rejection = None
        while pending:
            attempt += 1
            error = self._attempt(pending)
            if error is None:
                delivered += len(pending)
                pending = []
                break
            if len(pending) > 1:
                ok, no, pending = self._isolate(pending)
                delivered += ok
                rejected += no
            elif _is_rejection(error):
                self._rejection = error
                rejected += 1
                pending = []
            if not pending or attempt >= config.max_attempts or not self._sleep(delay):
                break
            delay = min(delay * 2, config.backoff_max_s)
        if rejected:
            log.error(
                "lowtrace: %s rejected %d trace(s), a final answer (not retried): %s",
                self.name,
                rejected,
                _describe(self._rejection, str),
            )
        if pending:
            log.error(
                "lowtrace: gave up exporting %d trace(s) to %s after %d attempt(s): %s",
                len(pending),
                self.name,
                attempt,
                _describe(error, repr),
            )
        return delivered, rejected, len(pending)

    def _sleep(self, delay: float) -> bool:
        """The backoff pause before a retry; False if close()'s deadline leaves no time."""
        with self.lock:
            self.counts.retried += 1
            end = time.monotonic() + random.uniform(0, delay)
            while True:
                if self.stopping:
                    end = min(end, self.deadline)
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return not (self.stopping and time.monotonic() >= self.deadline)
                self.nap.wait(remaining)


def _is_rejection(error: BaseException) -> bool:
    """Whether an exporter's error is a final answer; by its real type, since ``isinstance``
    reads ``__class__``, which an exception may make raise (and end the worker)."""
    return issubclass(type(error), ExportRejectedError)


def _describe(error: BaseException | None, text: Callable[[object], str]) -> str:
    """An exporter's error as text for the log; its own ``__str__`` may raise anything."""
    try:
        return text(error)
    except BaseException:  # noqa: BLE001 - the worker must outlive the exporter's errors
        return f"<{type(error).__qualname__} whose text could not be made>"
