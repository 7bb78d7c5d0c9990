"""What a ``TracingClient`` reads back from its store: one trace, searches, counts; deletes.

A mixin of ``TracingClient`` (kept apart so the recording core stays small). Reads first
let the store's export lane take what this client ended before the call (read-your-writes:
a trace ended a moment ago is found), and never create a store that does not exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lowtrace._stores.uri import open_store

if TYPE_CHECKING:
    from collections.abc import Sequence

    from lowtrace._model import Trace
    from lowtrace._stores.base import TraceList, TraceStore

__all__ = ["StoreReads"]


class StoreReads:
    """``get_trace``, ``search_traces``, ``count_traces``, ``delete_traces``, ``store``."""

    if TYPE_CHECKING:  # set by TracingClient.__init__; _settle_reads is TraceEdits'
        uri: str
        _store: TraceStore | None

        def _settle_reads(self) -> None: ...

    def get_trace(self, trace_id: str) -> Trace | None:
        """A finished trace from the store (after ``flush()``), or None if it is not there.

        Raises ``StoreNotFoundError`` when the store does not exist (reading never creates
        one) and ``StoreError`` when it cannot be read.
        """
        self._settle_reads()
        return self._require_store().get_trace(trace_id)

    def search_traces(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> TraceList:
        """Stored traces matching ``filter``, newest first unless ``order_by`` says otherwise.

        Returns one page, a ``TraceList`` whose ``next_page_token`` is None on the last page.
        Raises ``FilterError`` (saying where) for a malformed filter or ``order_by``,
        ``InvalidArgumentError`` for a bad page token or ``max_results``, and
        ``StoreNotFoundError`` / ``StoreError`` like ``get_trace``.
        """
        self._settle_reads()
        return self._require_store().search_traces(
            filter, order_by=order_by, max_results=max_results, page_token=page_token
        )

    def count_traces(self, filter: str | None = None) -> int:
        """How many stored traces match ``filter``; raises like ``search_traces``."""
        self._settle_reads()
        return self._require_store().count(filter)

    def delete_traces(
        self, trace_ids: Sequence[str] | None = None, *, older_than_ms: int | None = None
    ) -> int:
        """Delete stored traces by id and/or start time; returns how many were deleted.

        Raises ``InvalidArgumentError`` when neither is given, ``StoreNotFoundError`` /
        ``StoreError`` like ``get_trace``.
        """
        return self._require_store().delete_traces(trace_ids, older_than_ms=older_than_ms)

    @property
    def store(self) -> TraceStore | None:
        """The store named by ``uri``, or the one given (None: disabled and not read yet)."""
        return self._store

    def _require_store(self) -> TraceStore:
        if self._store is None:
            self._store = open_store(self.uri, create=False)
        return self._store
