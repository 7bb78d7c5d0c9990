"""The interface every trace store implements, and the page type search returns.

A store is also an exporter: the client's background worker hands it batches of finished
traces through ``export``. Reading (``get_trace``, ``search_traces``, ``count``) may happen
from any thread while the worker writes.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from lowtrace._model import Trace
from lowtrace._query.paging import TraceList
from lowtrace.errors import StoreError

if TYPE_CHECKING:
    from lowtrace._stores.overview import Overview
    from lowtrace._stores.sessions import SessionSummary

__all__ = ["TraceList", "TraceStore", "iter_traces"]


class TraceStore(abc.ABC):
    """Keeps finished traces and answers queries over them."""

    #: The URI this store was opened from, for messages.
    uri: str = ""

    @abc.abstractmethod
    def export(self, traces: Sequence[Trace]) -> None:
        """Write a batch of finished traces (one transaction where the backend has them)."""

    @abc.abstractmethod
    def get_trace(self, trace_id: str) -> Trace | None:
        """The stored trace with this id (fragments from several processes merged), or None."""

    @abc.abstractmethod
    def search_traces(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> TraceList:
        """Traces matching the filter language, one page at a time, newest first by default."""

    @abc.abstractmethod
    def count(self, filter: str | None = None) -> int:
        """How many stored traces match the filter."""

    @abc.abstractmethod
    def delete_traces(
        self,
        trace_ids: Sequence[str] | None = None,
        *,
        older_than_ms: int | None = None,
    ) -> int:
        """Delete by ids and/or start time before ``older_than_ms``; returns how many went."""

    def overview(
        self,
        filter: str | None = None,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        buckets: int = 30,
        top: int = 8,
    ) -> Overview:
        """Dashboard numbers for traces started in ``[start_ms, end_ms)`` that match ``filter``.

        An open end of the range is the first or last matching trace. This default reads
        every matching trace; SQL stores answer with aggregates instead.
        """
        from lowtrace._stores.overview import scan_overview

        return scan_overview(
            lambda full: iter_traces(self, full), filter, start_ms, end_ms, buckets, top
        )

    def sessions(
        self, filter: str | None = None, *, max_results: int = 100
    ) -> list[SessionSummary]:
        """Conversations (traces sharing a ``session_id``), most recently active first.

        Only traces matching ``filter`` count. This default reads them; SQL stores group.
        """
        from lowtrace._stores.sessions import scan_sessions

        return scan_sessions(lambda full: iter_traces(self, full), filter, max_results)

    def update_trace(self, trace_id: str, change: Callable[[Trace], Trace]) -> Trace:
        """Replace a stored trace by ``change(trace)`` atomically; returns the new trace.

        For tags and assessments added to stored traces. Concurrent updates of one trace
        (threads, processes) are serialised, so none is lost. Raises
        ``TraceNotFoundError`` when the trace is not stored; an append-only store raises
        ``StoreError``.
        """
        raise StoreError(
            f"{self.uri or type(self).__name__} is append-only: stored traces cannot change "
            "(tags, feedback and expectations need a sqlite:///, postgresql:// or memory:// store)"
        )

    def shutdown(self) -> None:
        """Release connections and files. Called once by the client's ``close()``."""


def iter_traces(
    store: TraceStore,
    filter: str | None = None,
    *,
    order_by: Sequence[str] | str | None = None,
    limit: int | None = None,
    page_size: int = 500,
) -> Iterator[Trace]:
    """Every matching trace (up to ``limit``), fetched a page at a time."""
    token: str | None = None
    seen = 0
    while True:
        size = page_size if limit is None else min(page_size, limit - seen)
        if size <= 0:
            return
        page = store.search_traces(filter, order_by=order_by, max_results=size, page_token=token)
        for trace in page:
            yield trace
            seen += 1
        token = page.next_page_token
        if token is None:
            return
