"""PostgreSQL rows of finished traces: written by binary ``COPY``, text made storable.

PostgreSQL text cannot hold NUL, and an index entry cannot pass ~2.7 KB: a batch the server
refused for either is written again with its text made storable (``clean``) and then its
indexed text cut (``cut``); the whole trace, kept as bytes in ``data``, keeps every value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from lowtrace._stores.annotations import write_annotations
from lowtrace._stores.sqlrows import span_rows, summary_row, tag_rows

if TYPE_CHECKING:
    import psycopg

    from lowtrace._model import Trace

__all__ = ["pg_values", "write_rows"]


#: The tables an export fills with ``COPY``: the columns in row order, and their types
#: (binary ``COPY`` sends each value as the column's own type: half the client's CPU of
#: text, which spells out every number and doubles the trace's bytes as hex).
#: Last, the indexed text columns (see ``_cut``).
_TRACES: Final = (
    "traces (trace_id, name, status, status_message, start_time_ms, end_time_ms, "
    "start_time_ns, end_time_ns, duration_ms, span_count, input_tokens, output_tokens, "
    "total_tokens, data)",
    ("text",) * 4 + ("int8",) * 4 + ("float8", "int4", "int8", "int8", "int8", "bytea"),
    (1, 2),
)
_SPANS: Final = (
    "spans (trace_id, span_id, name, type, status, duration_ms, model, input_tokens, "
    "output_tokens, trace_start_ms)",
    ("text",) * 5 + ("float8", "text", "int8", "int8", "int8"),
    (2, 3, 4, 6),
)
_TAGS: Final = ("trace_tags (trace_id, key, value)", ("text",) * 3, (1, 2))

#: UTF-8 bytes of text kept in an indexed column when a batch's rows were refused as too
#: large for their index (PostgreSQL's limit is ~2.7 KB per entry, two text columns in
#: some): the whole value stays in the trace's data; searches see this start of it.
_INDEX_BYTES: Final = 1000


#: PostgreSQL text cannot hold NUL: in the index columns and in the values searched for it
#: is U+FFFD (the whole trace, kept as bytes, keeps it). Both sides map alike, so a NUL
#: is found where it was written; it also matches a U+FFFD written as such.
_NUL_AS: Final = "\ufffd"


def pg_values(values: Iterable[Any]) -> list[Any]:
    """``values`` with NUL in each text replaced as PostgreSQL text requires."""
    return [v.replace("\x00", _NUL_AS) if isinstance(v, str) and "\x00" in v else v for v in values]


def _pg_many(cur: psycopg.Cursor[Any], cut: bool) -> Callable[[str, Any], object]:
    """The cursor's ``executemany``, its rows' text made storable (``_pg_values``), and
    with ``cut`` each text cut to fit an index (``_cut``)."""
    if cut:
        return lambda sql, rows: cur.executemany(
            sql, [pg_values(_cut(row, range(len(row)))) for row in rows]
        )
    return lambda sql, rows: cur.executemany(sql, [pg_values(row) for row in rows])


def _cut(row: Sequence[Any], columns: Iterable[int]) -> list[Any]:
    """``row`` with the text in ``columns`` cut to ``_INDEX_BYTES`` of UTF-8."""
    out = list(row)
    for i in columns:
        value = out[i]
        if isinstance(value, str) and len(value) > _INDEX_BYTES // 4:
            raw = value.encode("utf-8", "surrogatepass")
            if len(raw) > _INDEX_BYTES:
                out[i] = raw[:_INDEX_BYTES].decode("utf-8", "ignore")
    return out


def _copy(
    cur: psycopg.Cursor[Any],
    table: tuple[str, Sequence[str], Sequence[int]],
    rows: Iterable[Sequence[Any]],
    clean: bool,
    cut: bool = False,
) -> None:
    """Rows into a table with one binary ``COPY``: the server parses one stream instead of
    a statement per row, and the whole batch is one round trip. psycopg sends every ~32 KB
    as it fills, so a lazy ``rows`` is built while the server inserts what came before.
    ``clean``: text made storable first (``_pg_values``); else text with NUL fails the
    ``COPY`` with ``psycopg.DataError``. ``cut``: the indexed text cut to fit (``_cut``)."""
    columns, types, indexed = table
    with cur.copy(f"COPY {columns} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        write = copy.write_row
        for row in rows:
            write(pg_values(_cut(row, indexed) if cut else row) if clean else row)


def write_rows(
    cur: psycopg.Cursor[Any],
    fresh: Mapping[str, Trace],
    stored: set[str],
    clean: bool,
    cut: bool = False,
) -> None:
    """Write whole traces (merged with what was stored: ``stored``) and their index rows.

    The stored traces' rows are deleted first, so every row is new and goes in by ``COPY``
    (which cannot update). The caller holds the traces' advisory locks: no other writer
    adds a row for these ids until this transaction ends.

    The client's biggest part is each trace's ``data`` (JSON and zstd); the server's are
    the span rows, then the trace rows. Half of the ``data`` is encoded while the server
    inserts the spans already sent, the other half while it inserts the traces, so that
    neither side waits through a whole table (benchmarks/README.md).
    """
    if stored:
        ids = sorted(stored)
        for table in ("traces", "trace_tags", "spans"):
            cur.execute(f"DELETE FROM {table} WHERE trace_id = ANY(%s)", (pg_values(ids),))
    early: dict[str, tuple[Any, ...]] = {}

    def spans() -> Iterator[tuple[Any, ...]]:
        for n, (tid, trace) in enumerate(fresh.items()):
            yield from span_rows(tid, trace)
            if n % 2:
                early[tid] = summary_row(trace)

    def traces() -> Iterator[tuple[Any, ...]]:
        for tid, trace in fresh.items():
            yield early.pop(tid) if tid in early else summary_row(trace)

    _copy(cur, _SPANS, spans(), clean, cut)
    _copy(cur, _TRACES, traces(), clean, cut)
    _copy(cur, _TAGS, tag_rows(fresh), clean, cut)
    write_annotations(_pg_many(cur, cut), "%s", fresh, stored)
