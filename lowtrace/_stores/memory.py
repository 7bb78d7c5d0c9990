"""``memory://``: finished traces kept in this process, owned by one client.

For tests and notebooks. Same semantics as the persistent stores: traces arrive through the
export pipeline (visible after ``flush()``), fragments of one trace id are merged on read,
and search speaks the same filter language.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from lowtrace._model import Trace, merge_traces
from lowtrace._stores.scanning import ScanningStore
from lowtrace.errors import InvalidArgumentError, TraceNotFoundError

__all__ = ["MemoryStore"]


class MemoryStore(ScanningStore):
    """An in-process store; two clients never share one."""

    def __init__(self, uri: str = "memory://") -> None:
        self.uri = uri
        self._lock = threading.Lock()
        self._fragments: dict[str, list[Trace]] = {}

    @classmethod
    def from_uri(cls, uri: str, *, create: bool = True) -> MemoryStore:
        """``memory://`` (nothing to find or create: it starts empty)."""
        return cls(uri)

    def export(self, traces: Sequence[Trace]) -> None:
        with self._lock:
            for trace in traces:
                self._fragments.setdefault(trace.info.trace_id, []).append(trace)

    def _traces(self) -> list[Trace]:
        with self._lock:
            groups = list(self._fragments.values())
        return [merge_traces(g) for g in groups]

    def get_trace(self, trace_id: str) -> Trace | None:
        with self._lock:
            group = list(self._fragments.get(trace_id, ()))
        return merge_traces(group) if group else None

    def update_trace(self, trace_id: str, change: Callable[[Trace], Trace]) -> Trace:
        with self._lock:
            group = self._fragments.get(trace_id)
            if not group:
                raise TraceNotFoundError(f"no stored trace {trace_id} in {self.uri}")
            new = change(merge_traces(group))
            self._fragments[trace_id] = [new]
        return new

    def count(self, filter: str | None = None) -> int:
        if filter is None:
            with self._lock:
                return len(self._fragments)
        return super().count(filter)

    def delete_traces(
        self,
        trace_ids: Sequence[str] | None = None,
        *,
        older_than_ms: int | None = None,
    ) -> int:
        if trace_ids is None and older_than_ms is None:
            raise InvalidArgumentError("delete_traces needs trace_ids and/or older_than_ms")
        wanted = set(trace_ids) if trace_ids is not None else None
        with self._lock:
            doomed = [
                tid
                for tid, group in self._fragments.items()
                if (wanted is None or tid in wanted)
                and (
                    older_than_ms is None
                    or min(t.info.start_time_ns for t in group) // 1_000_000 < older_than_ms
                )
            ]
            for tid in doomed:
                del self._fragments[tid]
        return len(doomed)
