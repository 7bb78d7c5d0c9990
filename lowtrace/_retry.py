"""How a lane's worker exports one batch: split on failure, retried, through a breaker.

A mixin of ``Lane`` (kept apart so the queue and its waits read on their own). A batch that
fails is split: each trace is tried alone, so one trace the destination cannot take is
isolated and the others are delivered. ``ExportRejectedError`` is a final answer (never
retried). Any other exception, ``BaseException`` included, is retried with exponential
backoff and full jitter up to ``max_attempts``; none of them ends the worker. After
``_BREAKER_AFTER`` batches in a row that the destination answered nothing of, a circuit
breaker gives each batch one attempt until the destination answers again.
"""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING

from lowtrace.errors import ExportRejectedError

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from lowtrace._config import PipelineConfig
    from lowtrace._lane import LaneCounts
    from lowtrace._model import Trace
    from lowtrace._pipeline import Exporter

__all__ = ["Retrying"]

log = logging.getLogger("lowtrace")
_PROBES = 2  # single-trace attempts that all fail before a destination counts as down
_BREAKER_AFTER = 3  # batches given up on in a row before the destination counts as dead


class Retrying:
    """The worker side of a ``Lane``: ``_deliver`` one batch, with retries and a breaker."""

    if TYPE_CHECKING:  # the Lane fields these methods use
        exporter: Exporter
        name: str
        config: PipelineConfig
        lock: threading.Lock
        nap: threading.Condition
        counts: LaneCounts
        stopping: bool
        deadline: float
        failed_batches: int
        tripped: bool
        _rejection: BaseException | None

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
