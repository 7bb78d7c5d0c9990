"""How a ``TracingClient`` hands finished traces on: queueing, flush, close, exit.

A mixin of ``TracingClient`` (kept apart so the recording core stays small). An ended trace
is queued for every destination before it leaves the live set; ``flush`` waits for the
queues, ``close`` abandons what is still live and stops the workers, and every client
still open at interpreter exit (or when a worker process exits) is closed, each within
its shutdown timeout.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING

from lowtrace import _forksafe
from lowtrace._pipeline import SHUTDOWN_GRACE_S as _SHUTDOWN_GRACE_S
from lowtrace._types import SpanStatus
from lowtrace.errors import LowtraceError

if TYPE_CHECKING:
    from lowtrace._config import PipelineConfig
    from lowtrace._live import LiveTrace
    from lowtrace._model import Trace
    from lowtrace._pipeline import ExportPipeline
    from lowtrace._registry import LiveRegistry

__all__ = ["Delivery", "close_at_exit"]

log = logging.getLogger("lowtrace")


class Delivery:
    """``flush``, ``close``, and the hooks live traces call when they end or are abandoned."""

    _closing: threading.Event | None = None  # set by the first close(), when it finishes

    if TYPE_CHECKING:  # set by TracingClient.__init__
        _closed: bool
        _last_trace_id: str | None
        _registry: LiveRegistry
        _pipeline: ExportPipeline
        _pipeline_config: PipelineConfig

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every trace ended so far reached every destination.

        True when all of them were delivered; False on timeout or if any was lost (dropped
        on a full queue or failed after retries) since the previous ``flush``. Never raises
        for a failing destination: its failures are counted in ``stats()``.
        """
        return self._pipeline.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Abandon live traces, deliver what is queued (bounded in time), stop the workers.

        Calls each exporter's ``shutdown()`` once. Returns ``flush``'s verdict. A later call,
        or one racing the first from another thread, does nothing more: it waits (up to its
        ``timeout``) until the first has finished, then returns True. Never raises for a
        failing destination.
        """
        limit = self._pipeline_config.shutdown_timeout_s if timeout is None else timeout
        with _closing_lock:  # one close() does the work; the others wait for it
            closing = self._closing
            first = closing is None
            if closing is None:
                closing = self._closing = threading.Event()
            self._closed = True
        if not first:
            if not self._pipeline.in_worker():  # (inside export() it would wait for itself)
                closing.wait(limit + _SHUTDOWN_GRACE_S)
            return True
        try:
            for live in list(self._registry.traces.values()):
                self._abandon(live, "the client was closed while the trace was live")
            self._registry.stop()
            _live_clients.discard(self)
            return self._pipeline.shutdown(limit)
        finally:
            closing.set()

    def _trace_finished(self, live: LiveTrace, trace: Trace) -> None:
        self._last_trace_id = live.trace_id
        # Queued before it leaves the live set: a call racing the end finds it either live
        # (and ended) or on its way to the store, never nowhere.
        self._pipeline.submit(trace, live.payload_bytes())
        self._registry.remove(live)

    def _abandon(self, live: LiveTrace, reason: str) -> None:
        try:
            live.finish(
                None,
                None,
                SpanStatus.ERROR,
                f"trace abandoned: {reason}",
                None,
                True,
                abandon_reason=reason,
            )
        except LowtraceError:
            return  # it ended meanwhile: nothing was abandoned
        self._registry.count_abandoned()
        log.warning("lowtrace: trace %s closed as ERROR: abandoned (%s)", live.trace_id, reason)


_closing_lock = threading.Lock()  # held only to check and mark a client as closing


def _new_closing_lock() -> None:
    global _closing_lock  # noqa: PLW0603 - a forked child must not inherit it held
    _closing_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_closing_lock)


def close_at_exit(client: Delivery) -> None:
    """Close ``client`` at interpreter exit unless it was closed before."""
    _live_clients.add(client)


_live_clients: weakref.WeakSet[Delivery] = weakref.WeakSet()


@atexit.register
def _close_clients_at_exit() -> None:
    """Deliver what is queued at interpreter exit, each client within its shutdown timeout."""
    for client in list(_live_clients):
        try:
            client.close()
        except Exception:
            log.exception("lowtrace: closing %r at exit failed", client)


_forksafe.at_worker_exit(_close_clients_at_exit)
