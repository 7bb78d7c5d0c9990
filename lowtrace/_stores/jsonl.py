"""``jsonl:///path/table.jsonl.zst``: the append-only inference table.

One JSON line per request: its request (root inputs), response (root outputs), status,
latency, tags, token usage and the full trace. Each exported batch is appended as one
complete zstd frame (concatenated frames form a valid zstd stream) under an exclusive
``flock`` so several processes can append to one file, then flushed and fsynced: rows are
readable, and survive a crash, as soon as ``flush()`` returns. The file is never rewritten.
A path without ``.zst`` is written as plain JSON lines.

Reading scans the file and answers ``get_trace``/``search_traces`` with the same filter
language as the other stores (fine for review offline; use SQLite or PostgreSQL to query
large volumes).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import zstandard

from lowtrace._model import Trace, merge_traces
from lowtrace._serde import trace_from_json, trace_to_dict
from lowtrace._stores.scanning import ScanningStore
from lowtrace.errors import StoreError, StoreNotFoundError

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


def _zstd_payloads(raw: io.BufferedReader) -> Iterator[bytes]:
    """The decompressed content of each complete zstd frame; stops at a torn last frame."""
    dctx = zstandard.ZstdDecompressor()
    pending = b""
    while True:
        obj = dctx.decompressobj()
        out: list[bytes] = []
        data = pending or raw.read(1 << 20)
        pending = b""
        while data:
            try:
                out.append(obj.decompress(data))
            except zstandard.ZstdError:
                return  # garbage: the frame being written when a process died
            if obj.eof:
                pending = obj.unused_data
                break
            data = raw.read(1 << 20)
        if not obj.eof:
            return  # end of file (or an incomplete frame): nothing more to read
        yield b"".join(out)


def iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete row of an inference table (a torn last frame after a crash is skipped)."""
    with path.open("rb") as raw:
        if path.suffix == ".zst":
            for payload in _zstd_payloads(raw):
                for line in payload.splitlines():
                    if line.strip():
                        yield orjson.loads(line)
            return
        for line in raw:
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    return  # a torn last line


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

    @classmethod
    def from_uri(cls, uri: str, *, create: bool = True) -> JsonlStore:
        return cls(_path_from_uri(uri), create=create)

    def export(self, traces: Sequence[Trace]) -> None:
        data = b"".join(orjson.dumps(inference_row(t)) + b"\n" for t in traces)
        if self._compress:
            data = zstandard.ZstdCompressor(level=3).compress(data)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
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
        groups: dict[str, list[Trace]] = {}
        for row in iter_rows(self.path):
            trace = trace_from_json(orjson.dumps(row["trace"]))
            groups.setdefault(trace.info.trace_id, []).append(trace)
        return [merge_traces(g) for g in groups.values()]

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
