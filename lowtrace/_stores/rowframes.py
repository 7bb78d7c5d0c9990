"""Framing the rows of a compressed inference table so damage costs only the damaged rows.

Each row is written as a record of two zstd frames: a *skippable* frame holding a header
(a marker, the length and the CRC-32 of the data), then a normal frame holding the row's
JSON line. zstd decoders skip skippable frames, so the file stays one valid zstd stream
(``zstdcat table.jsonl.zst`` prints every row). A reader checks each record against its
header; when a record is torn (a writer killed mid-write) or damaged, it counts the bad
bytes and scans forward to the next marker, so every row appended later is still read.

Tables written before this framing (whole batches as plain zstd frames) are read as well:
a plain zstd frame where a record could start is decoded as a batch of lines.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import attrs
import zstandard

__all__ = ["Damage", "encode_row", "iter_lines"]

log = logging.getLogger("lowtrace")

#: A skippable zstd frame (magic 0x184D2A5E) of 12 bytes that starts with b"LTR1".
_MARKER: Final = struct.pack("<II", 0x184D2A5E, 12) + b"LTR1"
_HEADER: Final = struct.Struct("<II")  # data length, CRC-32 of the data
_HEADER_END: Final = len(_MARKER) + _HEADER.size
_ZSTD_MAGIC: Final = struct.pack("<I", 0xFD2FB528)
#: The largest record accepted (a forged length must not make the reader allocate more).
_MAX_DATA: Final = 1 << 31
#: (process id, resolved path) -> the damage (bad bytes + bad lines) last logged for it.
_reported: dict[tuple[int, str], int] = {}


@attrs.define
class Damage:
    """What a read skipped: bytes that were no record, and lines that were no JSON row."""

    bad_bytes: int = 0
    bad_lines: int = 0
    good_lines: int = 0

    def __bool__(self) -> bool:
        return bool(self.bad_bytes or self.bad_lines)

    def report(self, path: Path) -> None:
        """Log what was skipped, so damage is never silent: once per file per process, and
        again only when a read finds more of it (every read still counts it)."""
        if not self:
            return
        key = (os.getpid(), str(path.resolve()))  # a forked child reports for itself
        size = self.bad_bytes + self.bad_lines
        if _reported.get(key, 0) >= size:  # no lock: a race costs one duplicate line
            return
        _reported[key] = size
        log.warning(
            "inference table %s: skipped %d damaged byte(s) and %d unreadable row(s); "
            "%d row(s) read",
            path,
            self.bad_bytes,
            self.bad_lines,
            self.good_lines,
        )


def encode_row(line: bytes, compressor: zstandard.ZstdCompressor) -> bytes:
    """One record: the header frame, then ``line`` (a JSON line) as its own zstd frame."""
    data = compressor.compress(line)
    return _MARKER + _HEADER.pack(len(data), zlib.crc32(data)) + data


def _record(buf: mmap.mmap, start: int, dctx: zstandard.ZstdDecompressor) -> tuple[bytes, int]:
    """The payload of the framed record at ``start`` and where it ends; ValueError if bad."""
    if start + _HEADER_END > len(buf):
        raise ValueError("torn header")
    length, crc = _HEADER.unpack_from(buf, start + len(_MARKER))
    end = start + _HEADER_END + length
    if length > _MAX_DATA or end > len(buf):
        raise ValueError("torn record")
    data = buf[start + _HEADER_END : end]
    if zlib.crc32(data) != crc:
        raise ValueError("checksum mismatch")
    try:
        return dctx.decompressobj().decompress(data), end
    except zstandard.ZstdError as exc:
        raise ValueError(str(exc)) from None


def _legacy_frame(
    buf: mmap.mmap, start: int, dctx: zstandard.ZstdDecompressor
) -> tuple[bytes, int]:
    """A plain zstd frame at ``start`` (a batch of rows, the older format) and its end."""
    obj = dctx.decompressobj()
    out: list[bytes] = []
    position = start
    while not obj.eof:
        if position >= len(buf):
            raise ValueError("torn frame")
        chunk = buf[position : position + (1 << 20)]
        try:
            out.append(obj.decompress(chunk))
        except zstandard.ZstdError as exc:
            raise ValueError(str(exc)) from None
        position += len(chunk)
    return b"".join(out), position - len(obj.unused_data)


def _next_start(buf: mmap.mmap, position: int) -> int:
    """Where the next record (or older-format frame) may start after damage."""
    found = [i for i in (buf.find(_MARKER, position), buf.find(_ZSTD_MAGIC, position)) if i >= 0]
    return min(found) if found else len(buf)


def _frames(buf: mmap.mmap, damage: Damage) -> Iterator[bytes]:
    """The payload of every readable record or older frame, in file order."""
    dctx = zstandard.ZstdDecompressor()
    position = 0
    while position < len(buf):
        head = buf[position : position + len(_MARKER)]
        try:
            if head == _MARKER:
                payload, position = _record(buf, position, dctx)
                yield payload
                continue
            if head[:4] == _ZSTD_MAGIC:
                payload, position = _legacy_frame(buf, position, dctx)
                yield payload
                continue
        except ValueError:
            pass
        # Damage: skip past this start (and a damaged record's own data frame).
        skip = _HEADER_END if head == _MARKER else 1
        resume = _next_start(buf, min(position + skip, len(buf)))
        damage.bad_bytes += resume - position
        position = resume


def iter_lines(path: Path, damage: Damage) -> Iterator[bytes]:
    """Every non-blank JSON line of a compressed table; damage is skipped and counted."""
    with path.open("rb") as raw:
        if raw.seek(0, 2) == 0:
            return
        with mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for payload in _frames(buf, damage):
                for line in payload.splitlines():
                    if line.strip():
                        yield line
