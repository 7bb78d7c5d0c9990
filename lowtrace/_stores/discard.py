"""``none://``: keep nothing locally; finished traces go only to the client's exporters.

For processes that export elsewhere (an OTLP collector, a shared PostgreSQL) and should not
grow a local file, and for measuring the client's own cost. Reading from it is an error
that says so, rather than an empty answer that looks like data loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NoReturn

from lowtrace._model import Trace
from lowtrace._stores.base import TraceList, TraceStore
from lowtrace.errors import StoreError

__all__ = ["DiscardStore"]


class DiscardStore(TraceStore):
    """Accepts every trace and keeps none of them."""

    def __init__(self, uri: str = "none://") -> None:
        self.uri = uri

    @classmethod
    def from_uri(cls, uri: str, *, create: bool = True) -> DiscardStore:
        """``none://`` (nothing to find or create: it starts empty)."""
        return cls(uri)

    def export(self, traces: Sequence[Trace]) -> None:
        """Nothing to do: the exporters got their copy."""

    def _refuse(self) -> NoReturn:
        raise StoreError(
            f"{self.uri} keeps no traces: read them from an exporter's destination, "
            "or use a sqlite:/// or memory:// URI"
        )

    def get_trace(self, trace_id: str) -> Trace | None:
        self._refuse()

    def search_traces(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> TraceList:
        self._refuse()

    def count(self, filter: str | None = None) -> int:
        self._refuse()

    def update_trace(self, trace_id: str, change: Callable[[Trace], Trace]) -> Trace:
        self._refuse()

    def delete_traces(
        self, trace_ids: Sequence[str] | None = None, *, older_than_ms: int | None = None
    ) -> int:
        self._refuse()
