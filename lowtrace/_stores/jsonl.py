"""``jsonl:///path/table.jsonl.zst``: the append-only inference table.

One JSON line per request: its request (root inputs), response (root outputs), status,
latency, tags, token usage and the full trace. Each exported batch is appended in one
write under an exclusive ``flock`` so several processes can append to one file, then
fsynced: rows are readable, and survive a crash, as soon as ``flush()`` returns. The file
is never rewritten. In a ``.zst`` table each row is its own checksummed zstd record
(``rowframes``), so a torn write or damaged bytes cost only themselves: readers skip and
count them and find every later row. A path without ``.zst`` is written as plain JSON
lines; a torn last line is ended before the next append, and unreadable lines are skipped.

Reading scans the file and answers ``get_trace``/``search_traces`` with the same filter
language as the other stores (fine for review offline; use SQLite or PostgreSQL to query
large volumes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import zstandard
from cattrs.errors import BaseValidationError

from lowtrace._model import Trace, merge_traces
from lowtrace._query.budget import check_deadline
from lowtrace._serde import trace_from_json, trace_to_dict
from lowtrace._stores.forkgate import ForkGate, fork_gate
from lowtrace._stores.rowframes import Damage, encode_row, iter_lines
from lowtrace._stores.scanning import ScanningStore
from lowtrace.errors import LowtraceError, StoreError, StoreNotFoundError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["JsonlStore", "inference_row", "iter_rows"]


def _path_from_uri(uri: str) -> Path:
    rest = uri.split("://", 1)[1]
    if not rest or rest == "/":
        raise StoreError(f"jsonl URI needs a file path: {uri!r} (e.g. jsonl:///tmp/t.jsonl.zst)")
    # jsonl:///abs/path -> "/abs/path"; jsonl://relative/path -> "relative/path"
    return Path(rest)


def inference_row(trace: Trace) -> dict[str, Any]:
    """The inference-table row of a trace: request, response, status, latency, full trace."""
    root = trace.root
    info = trace.info
    usage = info.token_usage
    return {
        "trace_id": info.trace_id,
        "name": info.name,
        "request_time_ms": info.start_time_ms,
        "execution_duration_ms": round(info.duration_ms, 3),
        "status": str(info.status),
        "status_message": info.status_message,
        "request": orjson.Fragment(root.inputs_json) if root else None,
        "response": orjson.Fragment(root.outputs_json) if root else None,
        "tags": dict(info.tags),
        "token_usage": (
            {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
            }
            if usage
            else None
        ),
        "trace": trace_to_dict(trace),
    }


def _lines(path: Path, damage: Damage) -> Iterator[bytes]:
    if path.suffix == ".zst":
        yield from iter_lines(path, damage)
        return
    with path.open("rb") as raw:
        for line in raw:
            if line.strip():
                yield line


def iter_rows(path: Path, damage: Damage | None = None) -> Iterator[dict[str, Any]]:
    """Every readable row of an inference table, in file order.

    A torn write (a process killed mid-write), garbage bytes or a line that is not a JSON
    object are skipped and counted in ``damage``; the rows around them are still read.
    """
    damage = damage if damage is not None else Damage()
    for line in _lines(path, damage):
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            damage.good_lines += 1
            yield row
        else:
            damage.bad_lines += 1


def _torn_tail(fd: int) -> bool:
    """True when the file ends inside a line (a writer died mid-write)."""
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


class JsonlStore(ScanningStore):
    """Appends finished traces as rows of a (zstd-compressed) JSON-lines file."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        self.uri = f"jsonl://{self.path}"
        if not self.path.exists():
            if not create:
                raise StoreNotFoundError(f"no inference table at {self.path}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._compress = self.path.suffix == ".zst"
        self._gate = ForkGate()
        #: What the last read skipped (torn writes, garbage, bad rows).
        self.damage = Damage()

    @classmethod
    def from_uri(cls, uri: str, *, create: bool = True) -> JsonlStore:
        return cls(_path_from_uri(uri), create=create)

    def export(self, traces: Sequence[Trace]) -> None:
        lines = [orjson.dumps(inference_row(t)) + b"\n" for t in traces]
        if self._compress:
            compressor = zstandard.ZstdCompressor(level=3, write_checksum=True)
            data = b"".join(encode_row(line, compressor) for line in lines)
        else:
            data = b"".join(lines)
        with fork_gate(self._gate):
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                if not self._compress and _torn_tail(fd):
                    data = b"\n" + data  # end a torn last line so the next row stands alone
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)  # closing releases the lock

    def _traces(self) -> list[Trace]:
        if not self.path.exists():
            return []
        damage = Damage()
        try:
            groups = self._read(damage)
        except OSError as exc:  # a directory, no permission, an I/O error
            raise StoreError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        self.damage = damage
        if damage and not damage.good_lines:
            raise StoreError(
                f"{self.path} is not a lowtrace inference table: no readable row in "
                f"{damage.bad_bytes} damaged byte(s) and {damage.bad_lines} bad line(s)"
            )
        damage.report(self.path)
        return [merge_traces(g) for g in groups.values()]

    def _read(self, damage: Damage) -> dict[str, list[Trace]]:
        """Every stored fragment by trace id; rows that are no trace are counted as damage."""
        groups: dict[str, list[Trace]] = {}
        for row in iter_rows(self.path, damage):
            check_deadline()  # a caller's time limit (the web UI sets one)
            try:
                trace = trace_from_json(orjson.dumps(row["trace"]))
            except (KeyError, TypeError, ValueError, LowtraceError, BaseValidationError):
                damage.good_lines -= 1
                damage.bad_lines += 1  # JSON, but not a row this store wrote
                continue
            groups.setdefault(trace.info.trace_id, []).append(trace)
        return groups

    def get_trace(self, trace_id: str) -> Trace | None:
        for trace in self._traces():
            if trace.info.trace_id == trace_id:
                return trace
        return None

    def delete_traces(
        self, trace_ids: Sequence[str] | None = None, *, older_than_ms: int | None = None
    ) -> int:
        raise StoreError(
            f"{self.uri} is an append-only inference table; rows are never deleted or rewritten"
        )
