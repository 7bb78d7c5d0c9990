"""Snapshotting user values into JSON at the moment they are recorded.

Inputs, outputs, attributes and event attributes are copied when recorded, so a caller who
later mutates its objects does not change the trace. Anything orjson cannot encode is
recorded readably (a dict for models and mappings, ``repr`` otherwise) and never raises
into the caller. A value whose JSON is larger than the configured cap is replaced by a
string preview that ends with a visible truncation marker.

Sanitised once, here, so that no recorded value can make a later export fail: an int
outside JSON's 64-bit range (``< -2**63`` or ``>= 2**64``) is kept as its decimal string,
and a string that is not valid Unicode (a lone surrogate) has each bad code point replaced
by U+FFFD. Names, tags, attribute keys, event names and status messages go through
``clean_str`` as well.
"""

from __future__ import annotations

import collections.abc
import contextlib
import math
import reprlib
from typing import Any, Final

import attrs
import orjson

from lowtrace.errors import InvalidArgumentError

__all__ = [
    "ENTRY_BYTES",
    "EVENT_BYTES",
    "JSON_INT_END",
    "JSON_INT_MIN",
    "SCALAR_TYPES",
    "SPAN_BYTES",
    "TRACE_BYTES",
    "UNREADABLE",
    "attribute_bytes",
    "clean_int",
    "clean_str",
    "encode_value",
    "mapping_bytes",
    "safe_repr",
    "safe_str",
    "snapshot_mapping",
    "snapshot_sized",
    "snapshot_value",
    "truncation_marker",
    "value_bytes",
]

_OPTIONS: Final = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_MAX_DEPTH: Final = 200
_REPR = reprlib.Repr()
_REPR.maxstring = 2000
_REPR.maxother = 2000
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 100
_REPR.maxlevel = 6

#: Types recorded as they are: immutable, and encoded natively by orjson.
SCALAR_TYPES: Final[frozenset[type]] = frozenset({str, int, float, bool, type(None)})


#: The attribute that stands for a mapping that could not be read (its ``items()`` raised).
UNREADABLE: Final = "lowtrace.unreadable_mapping"

_COMPACT_BELOW: Final = 16 * 1024
#: The ints JSON tools read as numbers: signed or unsigned 64-bit.
JSON_INT_MIN: Final = -(2**63)
JSON_INT_END: Final = 2**64
_isfinite = math.isfinite


def clean_str(text: str) -> str:
    """``text`` if it is valid Unicode, else a copy with each lone surrogate as U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def clean_int(value: int) -> int | str:
    """An int JSON tools can read as a number, else its decimal string (hex past the
    digits Python converts to decimal: ``sys.get_int_max_str_digits``)."""
    if JSON_INT_MIN <= value < JSON_INT_END:
        return value
    try:
        return str(value)
    except ValueError:
        return hex(value)


def truncation_marker(original_bytes: int, limit: int) -> str:
    """The text appended to a truncated value, so nobody mistakes it for the whole."""
    return f"...[truncated by lowtrace: {original_bytes} bytes, limit {limit}]"


def _safe_repr(obj: object) -> str:
    try:
        return _REPR.repr(obj)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not reach the caller
        return f"<unrepresentable {type(obj).__qualname__} object>"


def safe_repr(obj: object) -> str:
    """``repr(obj)`` for an error message, shortened; never raises (a broken ``__repr__``)."""
    return _safe_repr(obj)


def safe_str(obj: object) -> str:
    """``str(obj)`` as valid Unicode; a value whose ``__str__`` raises is named instead."""
    try:
        return clean_str(obj if type(obj) is str else str(obj))
    except Exception:  # noqa: BLE001 - a broken __str__ must not reach the caller
        return f"<unprintable {type(obj).__qualname__}>"


def _default(obj: Any) -> Any:
    """orjson's fallback: turn common non-JSON objects into JSON-able ones, else a repr."""
    dump = getattr(obj, "model_dump", None)  # pydantic v2 models (OpenAI, LangChain types)
    if callable(dump) and not isinstance(obj, type):
        try:
            return dump(mode="json")
        except Exception:  # noqa: BLE001 - any failure falls back to repr
            return _safe_repr(obj)
    if attrs.has(type(obj)):
        return attrs.asdict(obj, recurse=False)
    if isinstance(obj, (set, frozenset)):
        try:
            return sorted(obj)
        except TypeError:
            return list(obj)
    if isinstance(obj, BaseException):
        return {"type": type(obj).__qualname__, "message": str(obj)}
    if isinstance(obj, collections.abc.Mapping):
        return dict(obj)
    if isinstance(obj, (collections.abc.Sequence, collections.abc.Set)) and not isinstance(
        obj, (bytes, bytearray, memoryview, str)
    ):
        return list(obj)
    return _safe_repr(obj)


def _sanitize(obj: Any, depth: int, active: set[int]) -> Any:
    """Slow path for values orjson refuses: cycles, huge ints, bad strings, deep nesting."""
    if depth > _MAX_DEPTH:
        return "<max depth reached>"
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return clean_int(int(obj))
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, str):
        return clean_str(str(obj))
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in active:
            return "<cycle>"
        active.add(id(obj))
        try:
            if isinstance(obj, dict):
                return {
                    clean_str(k if isinstance(k, str) else _safe_repr(k)): _sanitize(
                        v, depth + 1, active
                    )
                    for k, v in obj.items()
                }
            return [_sanitize(v, depth + 1, active) for v in obj]
        finally:
            active.discard(id(obj))
    try:  # what orjson encodes natively: datetimes, UUIDs, enums, dataclasses, numpy
        return orjson.loads(orjson.dumps(obj, option=_OPTIONS))
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        converted = _default(obj)
    except Exception:  # noqa: BLE001 - any failure falls back to repr
        return _safe_repr(obj)
    if isinstance(converted, str):
        return _sanitize(converted, depth, active)
    return _sanitize(converted, depth + 1, active)


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError, RecursionError):
        pass
    try:
        return orjson.dumps(_sanitize(value, 0, set()), default=_safe_repr, option=_OPTIONS)
    except Exception:  # noqa: BLE001 - the last resort never raises
        return orjson.dumps(_safe_repr(value))


def _truncate_json(data: bytes, limit: int) -> bytes:
    """Replace JSON longer than ``limit`` bytes by a string preview with a marker."""
    marker = truncation_marker(len(data), limit)
    keep = max(0, limit - len(marker) - 16)
    preview = data[:keep].decode("utf-8", "ignore")
    if data[:1] == b'"':  # a string: show its own text, not its JSON quoting
        with contextlib.suppress(orjson.JSONDecodeError):
            preview = orjson.loads(data)[: max(0, keep - 2)]
    return orjson.dumps(preview + marker)


def _compact(data: bytes) -> bytes:
    """A right-sized copy of a small orjson result.

    orjson's output buffer starts at several KiB and is not shrunk: a 10-byte result kept
    for the life of a trace would hold ~4 KiB of memory. Copying costs ~0.2 us.
    """
    return bytes(memoryview(data)) if len(data) < _COMPACT_BELOW else data


def encode_value(value: Any, limit: int) -> tuple[bytes, bool]:
    """Encode ``value`` to JSON bytes (never raising); returns (json, was_truncated)."""
    data = _dumps(value)
    if len(data) > limit:
        return _compact(_truncate_json(data, limit)), True
    return _compact(data), False


def snapshot_value(value: Any, limit: int) -> tuple[Any, bool]:
    """A deep, JSON-shaped copy of ``value`` (scalars as they are); returns (copy, truncated)."""
    cls = type(value)
    if cls in SCALAR_TYPES:
        if cls is str:
            if len(value) * 4 > limit and len(value.encode("utf-8", "replace")) > limit:
                return orjson.loads(_truncate_json(_dumps(value), limit)), True
            return clean_str(value), False
        if cls is int:
            return clean_int(value), False
        if cls is float and not math.isfinite(value):
            return None, False  # JSON has no NaN/inf; orjson writes null too
        return value, False
    data, truncated = encode_value(value, limit)
    return orjson.loads(data), truncated


def snapshot_mapping(values: Any, limit: int, what: str) -> tuple[dict[str, Any], int]:
    """Snapshot a str-keyed mapping of values; returns (copy, number of truncated values)."""
    copy, truncated, _ = snapshot_sized(values, limit, what)
    return copy, truncated


def snapshot_sized(values: Any, limit: int, what: str) -> tuple[dict[str, Any], int, int]:
    """``snapshot_mapping`` plus the memory the copy holds (``mapping_bytes`` of it).

    The size comes from the same pass that checks the values, so a live trace can keep its
    export-queue size up to date without walking its spans again when it ends.
    """
    if type(values) is dict:
        # Fast path: small scalar values under ASCII str keys are copied as they are
        # (str subclasses, huge ints, lone surrogates and NaN take the slow path below).
        small = limit >> 2
        size = ENTRY_BYTES * len(values)
        for key, value in values.items():
            if type(key) is not str or not key.isascii():
                break
            cls = type(value)
            if cls is str:
                if len(value) > small or not value.isascii():
                    break
                size += len(value)
            elif cls is int:
                if not JSON_INT_MIN <= value < JSON_INT_END:
                    break
            elif cls is float:
                if not _isfinite(value):
                    break
            elif value is None:
                size += 32
            elif cls is not bool:
                break
        else:
            return values.copy(), 0, size
    elif not isinstance(values, collections.abc.Mapping):
        raise InvalidArgumentError(
            f"{what} must be a mapping of str to values, got {type(values).__name__}"
        )
    out: dict[str, Any] = {}
    truncated = 0
    try:
        items = list(values.items())
    except Exception as exc:  # noqa: BLE001 - a broken mapping is recorded, never raised
        # Recorded as text, as a value whose __repr__ raises is: the call goes through.
        out[UNREADABLE] = f"<unreadable {type(values).__qualname__}: {safe_repr(exc)}>"
        return out, truncated, mapping_bytes(out)
    for key, value in items:
        if not isinstance(key, str):
            raise InvalidArgumentError(f"{what} keys must be str, got {safe_repr(key)}")
        out[clean_str(str(key))], cut = snapshot_value(value, limit)
        truncated += cut
    return out, truncated, mapping_bytes(out)


# What CPython objects of a finished trace hold while it waits in an export queue (measured
# on 3.11: a span of a few small attributes ~1.2 KiB); ``LiveTrace.payload_bytes`` adds them.
TRACE_BYTES: Final = 1024  # LiveTrace, Trace, TraceInfo, tags, span list
SPAN_BYTES: Final = 768  # LiveSpan, ids, blobs, its record once built
EVENT_BYTES: Final = 256
ENTRY_BYTES: Final = 100  # a dict slot, its key and a small value


def attribute_bytes(value: Any) -> int:
    """What one snapshotted attribute value adds to its span's size (``ENTRY_BYTES`` aside)."""
    cls = type(value)
    if cls is str:
        return len(value)
    if cls is int or cls is float or cls is bool:
        return 0
    return value_bytes(value)


def mapping_bytes(values: dict[str, Any]) -> int:
    """What a snapshotted attribute mapping adds to its span's size."""
    return ENTRY_BYTES * len(values) + sum(map(attribute_bytes, values.values()))


def value_bytes(value: Any) -> int:
    """Roughly ``sys.getsizeof`` of a snapshotted (JSON-shaped) value, deeply."""
    cls = type(value)
    if cls is str:
        return 50 + len(value)
    if isinstance(value, dict):
        return 100 + sum(
            24 + (50 + len(key) if type(key) is str else 32) + value_bytes(item)
            for key, item in value.items()
        )
    if isinstance(value, (list, tuple)):
        return 56 + sum(8 + value_bytes(item) for item in value)
    return 32
