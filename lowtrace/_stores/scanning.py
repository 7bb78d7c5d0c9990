"""Stores searched by scanning every trace with the reference evaluator (memory, JSONL).

Small or append-only stores need no query engine of their own: they list their traces and
the reference evaluator (the semantics the SQL stores are tested against) does the rest.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from lowtrace._model import Trace
from lowtrace._query.evaluate import search_in_memory
from lowtrace._stores.base import TraceList, TraceStore

__all__ = ["ScanningStore"]


class ScanningStore(TraceStore):
    """A store searched by scanning every trace with the reference evaluator (memory, JSONL)."""

    @abc.abstractmethod
    def _traces(self) -> list[Trace]:
        """Every stored trace, fragments of one trace id merged."""

    def search_traces(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> TraceList:
        return search_in_memory(
            self._traces(),
            filter,
            order_by=order_by,
            max_results=max_results,
            page_token=page_token,
        )

    def count(self, filter: str | None = None) -> int:
        return len(search_in_memory(self._traces(), filter, max_results=None))
