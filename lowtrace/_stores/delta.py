"""``delta:///path/to/table``: the inference table as a Delta Lake table (extra ``delta``).

One row per trace (columns in ``delta_table.SCHEMA``), partitioned by ``date``, written with
``deltalake`` (delta-rs: no JVM). Many processes may append to one table: every commit is a
blind append, so Delta's optimistic concurrency resolves races; a commit that still loses
(the table being created or its schema changed at the same moment) is retried with backoff.

Small files are what kills a streamed lake table, so rows are buffered and committed
together when ``commit_traces`` rows or ``commit_bytes`` of trace JSON are waiting, or the
oldest has waited ``commit_delay_s``; ``flush()`` (also called by ``TracingClient.flush()``)
commits at once. ``compact()`` (``lowtrace compact``) runs Delta's optimize and vacuum.
A table written by an older lowtrace (fewer columns) gains the new columns on write.

Reading pushes date and simple column predicates down to the Parquet scan, then evaluates
the filter exactly in memory. The table is append-only: deleting raises ``StoreError``.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from lowtrace._model import Trace, merge_traces
from lowtrace._query.filter import parse_filter
from lowtrace._query.paging import OrderKey, decode_token, parse_order_by
from lowtrace._stores.base import TraceList, TraceStore
from lowtrace.errors import MissingExtraError, StoreError, StoreNotFoundError

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
    from deltalake.exceptions import DeltaError, DeltaProtocolError, SchemaMismatchError
except ImportError as _exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError(
        "delta:// needs deltalake and pyarrow: pip install 'lowtrace[delta]'"
    ) from _exc

from lowtrace._stores.delta_table import SCHEMA, pushdown, to_arrow

__all__ = ["DeltaStore"]

log = logging.getLogger("lowtrace")

_COMMIT_ATTEMPTS: Final = 10
_BACKOFF_INITIAL_S: Final = 0.05
_BACKOFF_MAX_S: Final = 2.0
_WRITER: Final = WriterProperties(compression="ZSTD", compression_level=3)
_KNOBS: Final = {"commit_traces": int, "commit_bytes": int, "commit_delay_s": float}


def _from_uri(uri: str) -> tuple[Path, dict[str, Any]]:
    parts = urllib.parse.urlsplit(uri)
    path = urllib.parse.unquote(parts.netloc + parts.path)
    if not path or path == "/":
        raise StoreError(f"delta URI needs a table path: {uri!r} (e.g. delta:///data/traces)")
    knobs: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key not in _KNOBS:
            raise StoreError(f"unknown delta URI parameter {key!r} in {uri!r}; use {list(_KNOBS)}")
        try:
            knobs[key] = _KNOBS[key](value)
        except ValueError:
            raise StoreError(f"delta URI parameter {key}={value!r} is not a number") from None
    return Path(path), knobs


class DeltaStore(TraceStore):
    """Appends finished traces as rows of a Delta Lake table, batched into few large commits."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        commit_traces: int = 10_000,
        commit_bytes: int = 64 * 1024 * 1024,
        commit_delay_s: float = 30.0,
    ) -> None:
        if commit_traces <= 0 or commit_bytes <= 0 or commit_delay_s < 0:
            raise StoreError("commit_traces and commit_bytes must be > 0, commit_delay_s >= 0")
        self.path = Path(path).absolute()
        self.uri = f"delta://{self.path}"
        self._reset()
        if not create and not self._exists():
            raise StoreNotFoundError(f"no Delta table at {self.path}")
        self.commit_traces = commit_traces
        self.commit_bytes = commit_bytes
        self.commit_delay_s = commit_delay_s

    @classmethod
    def from_uri(cls, uri: str, *, create: bool = True) -> DeltaStore:
        path, knobs = _from_uri(uri)
        return cls(path, create=create, **knobs)

    def _reset(self) -> None:
        """Fresh locks, buffer and timer (also in a forked child: the parent commits its rows)."""
        self._pid = os.getpid()
        self._lock = threading.Condition(threading.Lock())  # guards the buffer and the timer
        self._commit_lock = threading.Lock()  # one commit at a time from this process
        self._pending: list[tuple[pa.Table, int]] = []  # (rows, bytes of trace JSON)
        self._pending_rows = 0
        self._pending_bytes = 0
        self._oldest: float | None = None  # monotonic time the oldest buffered row arrived
        self._timer: threading.Thread | None = None
        self._closed = False

    def _after_fork(self) -> None:
        """In a forked child: start empty, with new locks (the parent commits its own rows)."""
        if self._pid != os.getpid():
            self._reset()

    # -- writing ---------------------------------------------------------------------------

    def export(self, traces: Sequence[Trace]) -> None:
        if not traces:
            return
        self._after_fork()
        batch, size = to_arrow(traces)
        with self._lock:
            if self._closed:
                raise StoreError(f"{self.uri} is shut down")
            self._pending.append((batch, size))
            self._pending_rows += batch.num_rows
            self._pending_bytes += size
            if self._oldest is None:
                self._oldest = time.monotonic()
            due = self._due()
            if self._timer is None:
                self._timer = threading.Thread(
                    target=self._run_timer, name="lowtrace-delta-commit", daemon=True
                )
                self._timer.start()
        if due:  # on failure the caller retries this batch; older rows stay buffered
            self._commit(hand_back=batch)

    def _due(self) -> bool:
        return (
            self._pending_rows >= self.commit_traces
            or self._pending_bytes >= self.commit_bytes
            or (self._oldest is not None and time.monotonic() - self._oldest >= self.commit_delay_s)
        )

    def _run_timer(self) -> None:
        """Commit buffered rows once the oldest has waited ``commit_delay_s``."""
        while True:
            with self._lock:
                if self._closed:
                    return
                wait = self.commit_delay_s
                if self._oldest is not None:
                    wait = max(0.0, self._oldest + self.commit_delay_s - time.monotonic())
                self._lock.wait(max(wait, 0.01))
                due = self._pending_rows > 0 and self._due() and not self._closed
            if due:
                try:
                    self.flush()
                except StoreError:
                    log.exception("lowtrace: commit to %s failed; rows stay buffered", self.uri)
                    time.sleep(min(self.commit_delay_s, _BACKOFF_MAX_S))

    def flush(self) -> None:
        """Commit every buffered row now, as one Delta commit; StoreError if it fails."""
        self._after_fork()
        self._commit()

    def _commit(self, hand_back: pa.Table | None = None) -> None:
        """Commit the buffer. If that fails, the rows go back into it, except ``hand_back``
        (the batch whose ``export`` fails and will be retried by the caller)."""
        with self._commit_lock:
            with self._lock:
                taken, self._pending = self._pending, []
                self._pending_rows = self._pending_bytes = 0
                self._oldest = None
            if not taken:
                return
            try:
                self._write(pa.concat_tables([batch for batch, _ in taken]))
            except BaseException:
                with self._lock:
                    kept = [entry for entry in taken if entry[0] is not hand_back]
                    self._pending[:0] = kept
                    self._pending_rows += sum(batch.num_rows for batch, _ in kept)
                    self._pending_bytes += sum(size for _, size in kept)
                    if self._oldest is None and self._pending:
                        self._oldest = time.monotonic()
                raise

    def _write(self, table: pa.Table) -> None:
        """One append commit, retried with jittered backoff when another writer wins a race."""
        delay = _BACKOFF_INITIAL_S
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            try:
                existing = self._table()
                merge = existing is not None and {f.name for f in existing.schema().fields} != set(
                    SCHEMA.names
                )
                write_deltalake(
                    existing if existing is not None else str(self.path),
                    table,
                    mode="append",
                    partition_by=["date"],
                    schema_mode="merge" if merge else None,
                    writer_properties=_WRITER,
                    commit_properties=CommitProperties(max_commit_retries=50),
                )
                return
            except (SchemaMismatchError, DeltaProtocolError) as exc:
                raise StoreError(f"cannot append to {self.uri}: {exc}") from exc
            except (DeltaError, OSError) as exc:
                if attempt == _COMMIT_ATTEMPTS:
                    raise StoreError(
                        f"commit to {self.uri} failed after {attempt} attempts: {exc}"
                    ) from exc
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, _BACKOFF_MAX_S)

    def shutdown(self) -> None:
        self._after_fork()
        with self._lock:
            self._closed = True
            self._lock.notify_all()
            timer = self._timer
        if timer is not None and timer is not threading.current_thread():
            timer.join()
        self.flush()

    # -- reading ---------------------------------------------------------------------------

    def _exists(self) -> bool:
        """Whether the table has a commit; StoreError where deltalake cannot run (a fork)."""
        try:
            return DeltaTable.is_deltatable(str(self.path))
        except BaseException as exc:
            if type(exc).__name__ != "PanicException":  # pyo3's, a BaseException
                raise
            raise StoreError(
                f"deltalake cannot run in this process ({str(exc).split('.')[0]}): a process "
                "forked after its parent used deltalake must not reuse the parent's delta:// "
                "store; create the TracingClient after the fork, or start workers with 'spawn'"
            ) from exc

    def _table(self) -> DeltaTable | None:
        """The table's current snapshot, or None while nothing was committed."""
        if not self._exists():
            return None
        try:
            return DeltaTable(str(self.path))
        except (DeltaError, OSError) as exc:
            raise StoreError(f"cannot open {self.uri}: {exc}") from exc

    def _read_own_writes(self) -> None:
        try:
            self.flush()
        except StoreError:
            log.exception("lowtrace: commit to %s failed; reading what is committed", self.uri)

    def _fragments(self, where: pc.Expression | None, exact: bool) -> list[Trace]:
        """Stored traces with a row matching ``where`` (all their fragments merged)."""
        try:
            return self._read(where, exact)
        except (DeltaError, OSError, pa.ArrowException) as exc:
            raise StoreError(f"cannot read {self.uri}: {exc}") from exc

    def _read(self, where: pc.Expression | None, exact: bool) -> list[Trace]:
        table = self._table()
        if table is None:
            return []
        dataset = table.to_pyarrow_dataset()
        rows = dataset.to_table(columns=["trace_id", "trace"], filter=where)
        groups: dict[str, list[Trace]] = {}
        for data in rows.column("trace").to_pylist():
            trace = Trace.from_json(str(data))
            groups.setdefault(trace.info.trace_id, []).append(trace)
        if where is not None and not exact and groups:
            # Other fragments of these traces (written by another process) may not match
            # the pushed-down predicate themselves: find them by id (one narrow column).
            ids = pc.field("trace_id").isin(list(groups))
            counts: dict[str, int] = {}
            for tid in dataset.to_table(columns=["trace_id"], filter=ids).column("trace_id"):
                counts[tid.as_py()] = counts.get(tid.as_py(), 0) + 1
            more = [tid for tid, n in counts.items() if n > len(groups[tid])]
            if more:
                extra = dataset.to_table(
                    columns=["trace"], filter=pc.field("trace_id").isin(more)
                ).column("trace")
                for tid in more:
                    groups[tid] = []
                for data in extra.to_pylist():
                    trace = Trace.from_json(str(data))
                    groups[trace.info.trace_id].append(trace)
        return [merge_traces(g) for g in groups.values()]

    def _candidates(self, filter: str | None) -> list[Trace]:
        expr = parse_filter(filter)
        self._read_own_writes()
        table = self._table()
        if table is None:
            return []
        columns = frozenset(f.name for f in table.schema().fields)
        return self._fragments(pushdown(expr, columns), exact=False)

    def _by_start_time(
        self, keys: tuple[OrderKey, ...], max_results: int, page_token: str | None
    ) -> list[Trace]:
        """Enough traces for one unfiltered page in start-time order (the traces list): the
        page is chosen from two narrow columns, and only its traces' JSON is read."""
        self._read_own_writes()
        table = self._table()
        if table is None:
            return []
        descending = keys[0].descending
        if "start_time" not in {f.name for f in table.schema().fields}:
            return self._candidates(None)  # a table from before the column existed
        try:
            dataset = table.to_pyarrow_dataset()
            starts = (  # a trace starts with its earliest fragment
                dataset.to_table(columns=["trace_id", "start_time"])
                .group_by("trace_id")
                .aggregate([("start_time", "min")])
            )
        except (DeltaError, OSError, pa.ArrowException) as exc:
            raise StoreError(f"cannot read {self.uri}: {exc}") from exc
        micros = pc.cast(starts.column("start_time_min"), pa.int64())
        if micros.null_count:  # rows written before the column existed
            return self._candidates(None)
        wanted = max_results + 1  # one more than the page says whether another follows
        if page_token is not None:  # stored times are whole microseconds: keep the token's
            after = pa.scalar(int(decode_token(page_token, None, keys)[0]) // 1000, pa.int64())
            keep = pc.less_equal(micros, after) if descending else pc.greater_equal(micros, after)
            starts, micros = starts.filter(keep), micros.filter(keep)
            # Traces in the token's microsecond may precede it (shown on an earlier page).
            wanted += len(micros.filter(pc.equal(micros, after)))
        if starts.num_rows > wanted:  # the first ``wanted``, and all tied with the last
            order = pc.sort_indices(
                micros, sort_keys=[("", "descending" if descending else "ascending")]
            )
            edge = pa.scalar(micros[order[wanted - 1].as_py()].as_py(), pa.int64())
            keep = pc.greater_equal(micros, edge) if descending else pc.less_equal(micros, edge)
            starts, micros = starts.filter(keep), micros.filter(keep)
        if starts.num_rows == 0:
            return []
        earliest = pc.min(micros).as_py()
        where = pc.field("trace_id").isin(starts.column("trace_id")) & (
            pc.field("start_time") >= pa.scalar(earliest, pa.timestamp("us", tz="UTC"))
        )
        return self._fragments(where, exact=True)

    def get_trace(self, trace_id: str) -> Trace | None:
        self._read_own_writes()
        found = self._fragments(pc.field("trace_id") == trace_id, exact=True)
        return found[0] if found else None

    def search_traces(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> TraceList:
        from lowtrace._query.evaluate import search_in_memory
        from lowtrace._query.paging import check_max_results

        check_max_results(max_results)
        keys = parse_order_by(order_by)
        if filter is None and len(keys) == 2 and keys[0].field.name == "start_time_ms":
            candidates = self._by_start_time(keys, max_results, page_token)
        else:
            candidates = self._candidates(filter)
        return search_in_memory(
            candidates,
            filter,
            order_by=order_by,
            max_results=max_results,
            page_token=page_token,
        )

    def count(self, filter: str | None = None) -> int:
        from lowtrace._query.evaluate import search_in_memory

        if filter is None:  # distinct ids: one narrow column, no JSON parsed
            self._read_own_writes()
            table = self._table()
            if table is None:
                return 0
            try:
                ids = table.to_pyarrow_dataset().to_table(columns=["trace_id"])
            except (DeltaError, OSError, pa.ArrowException) as exc:
                raise StoreError(f"cannot read {self.uri}: {exc}") from exc
            return len(pc.unique(ids.column("trace_id")))
        return len(search_in_memory(self._candidates(filter), filter, max_results=None))

    def delete_traces(
        self, trace_ids: Sequence[str] | None = None, *, older_than_ms: int | None = None
    ) -> int:
        raise StoreError(
            f"{self.uri} is an append-only Delta inference table; rows are never deleted "
            "(drop old date partitions with your lake's tools)"
        )

    # -- maintenance -----------------------------------------------------------------------

    def compact(
        self, *, target_size: int | None = None, retention_hours: float | None = None
    ) -> dict[str, int]:
        """Merge small files (Delta optimize) and delete unreferenced ones (vacuum).

        ``retention_hours`` (default: the table's, normally 7 days) protects files that
        readers of older snapshots may still open; 0 removes every unreferenced file now.
        """
        self._read_own_writes()
        table = self._table()
        if table is None:
            raise StoreNotFoundError(f"no Delta table at {self.path}")
        metrics = table.optimize.compact(target_size=target_size)
        vacuumed = table.vacuum(
            retention_hours=None if retention_hours is None else int(retention_hours),
            dry_run=False,
            enforce_retention_duration=retention_hours is None,
        )
        return {
            "files_added": int(metrics.get("numFilesAdded", 0)),
            "files_removed": int(metrics.get("numFilesRemoved", 0)),
            "files_vacuumed": len(vacuumed),
        }
