"""The SQL rows behind ``metadata.*``, ``session_id``, ``user_id``, ``feedback.*`` and
``expectation.*`` filters, shared by the SQLite and PostgreSQL stores.

The whole trace stays in the ``data`` column; these rows only index it. They are rewritten
from the trace every time its row is (export, fragment merge, a tag or an assessment
added later), so they can never disagree with it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from lowtrace._assessment import assessment_number, assessment_text
from lowtrace._model import Trace

__all__ = ["SQL_TABLES", "write_annotations"]

#: ``(create statement, index statements)`` of the tables, with ``{text}`` for the text type
#: (``TEXT`` in SQLite, ``TEXT COLLATE "C"`` in PostgreSQL) and ``{real}`` for floats.
SQL_TABLES: tuple[str, ...] = (
    "ALTER TABLE traces ADD COLUMN session_id {text}",
    "ALTER TABLE traces ADD COLUMN user_id {text}",
    "CREATE INDEX traces_session ON traces (session_id, start_time_ns)",
    "CREATE INDEX traces_user ON traces (user_id)",
    """CREATE TABLE trace_metadata (
        trace_id {text} NOT NULL, key {text} NOT NULL, value {text} NOT NULL,
        PRIMARY KEY (trace_id, key)
    ){rowid}""",
    "CREATE INDEX trace_metadata_kv ON trace_metadata (key, value)",
    """CREATE TABLE assessments (
        trace_id {text} NOT NULL, assessment_id {text} NOT NULL,
        kind {text} NOT NULL, name {text} NOT NULL,
        value_text {text}, value_num {real},
        PRIMARY KEY (trace_id, assessment_id)
    ){rowid}""",
    "CREATE INDEX assessments_kind_name ON assessments (kind, name)",
)


def write_annotations(
    run_many: Callable[[str, Any], object],
    mark: str,
    traces: Mapping[str, Trace],
    existing: Collection[str],
    *,
    ids_written: bool = False,
) -> None:
    """Rewrite the session/user columns, metadata and assessment rows of these traces.

    ``run_many(sql, rows)`` is the connection's ``executemany``; ``mark`` its placeholder.
    Runs inside the caller's transaction, after the traces' rows were written.
    ``existing``: the ids that were stored before (their old rows are replaced); a new
    trace's row starts with NULL ids and no rows, so most exports only insert.
    ``ids_written``: the caller's row insert already set the session and user ids.
    """
    if not ids_written:
        run_many(
            f"UPDATE traces SET session_id = {mark}, user_id = {mark} WHERE trace_id = {mark}",
            [
                (t.info.session_id, t.info.user_id, tid)
                for tid, t in traces.items()
                if tid in existing or t.info.session_id is not None or t.info.user_id is not None
            ],
        )
    ids = [(tid,) for tid in existing]
    run_many(f"DELETE FROM trace_metadata WHERE trace_id = {mark}", ids)
    run_many(
        f"INSERT INTO trace_metadata (trace_id, key, value) VALUES ({mark}, {mark}, {mark})",
        [(tid, k, v) for tid, t in traces.items() for k, v in t.info.metadata.items()],
    )
    run_many(f"DELETE FROM assessments WHERE trace_id = {mark}", ids)
    run_many(
        "INSERT INTO assessments (trace_id, assessment_id, kind, name, value_text, value_num) "
        f"VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark})",
        [
            (tid, a.assessment_id, a.kind, a.name, assessment_text(a), assessment_number(a))
            for tid, t in traces.items()
            for a in t.info.assessments
        ],
    )
