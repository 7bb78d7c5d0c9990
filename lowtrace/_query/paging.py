"""Pages of search results: ``TraceList``, the order (``order_by``) and the opaque keyset
page tokens shared by every store.

A page token holds the sort key of the last trace returned plus a fingerprint of the query,
so the next page starts strictly after that trace: pages neither repeat nor skip traces
that existed when the first page was read, even while new traces keep arriving. Missing
values (an absent tag, no token usage) sort last in both directions; ``trace_id`` breaks ties.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

import attrs
import orjson

from lowtrace._model import Trace
from lowtrace._query.filter import Field, field_named
from lowtrace.errors import FilterError, InvalidArgumentError

__all__ = [
    "DEFAULT_ORDER",
    "OrderKey",
    "TraceList",
    "check_max_results",
    "decode_token",
    "encode_token",
    "parse_order_by",
]


@attrs.frozen
class OrderKey:
    field: Field
    descending: bool


DEFAULT_ORDER: Final = (OrderKey(field_named("start_time_ms"), True),)
_TIE_BREAK: Final = OrderKey(field_named("trace_id"), False)
_ITEM: Final = re.compile(r"^\s*(\S+)(?:\s+(ASC|DESC))?\s*$", re.IGNORECASE)


def parse_order_by(order_by: str | Sequence[str] | None) -> tuple[OrderKey, ...]:
    """Sort keys from ``"duration_ms DESC"`` items (a str or a list), tie-broken by trace_id."""
    if order_by is None or (not isinstance(order_by, str) and len(order_by) == 0):
        keys = list(DEFAULT_ORDER)
    else:
        items = [order_by] if isinstance(order_by, str) else list(order_by)
        keys = []
        for item in items:
            if not isinstance(item, str):
                raise FilterError(f"order_by items must be str, got {item!r}")
            for part in item.split(","):
                match = _ITEM.match(part)
                if match is None:
                    raise FilterError(
                        f"order_by item {part!r} must be 'FIELD' or 'FIELD ASC|DESC'", part, 0
                    )
                field = field_named(match.group(1), part, 0)
                if not field.sortable:
                    raise FilterError(f"cannot order by {field.name} (a trace may have many)")
                keys.append(OrderKey(field, (match.group(2) or "ASC").upper() == "DESC"))
    if not any(k.field.name == "trace_id" for k in keys):
        keys.append(_TIE_BREAK)
    return tuple(keys)


def _fingerprint(filter: str | None, keys: tuple[OrderKey, ...]) -> str:
    text = (
        repr((filter or "").strip())
        + "|"
        + ",".join(f"{k.field.name}:{k.descending}" for k in keys)
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_token(filter: str | None, keys: tuple[OrderKey, ...], last: Sequence[Any]) -> str:
    """An opaque token for the page after the trace whose sort key is ``last``."""
    data = orjson.dumps({"v": 1, "q": _fingerprint(filter, keys), "k": list(last)})
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


_INT64: Final = range(-(2**63), 2**63)


def _fits(value: object, field: Field) -> bool:
    """A sort-key value the field could really have: a forged token cannot smuggle in
    an int beyond 64 bits (OverflowError in SQLite) or a str where numbers sort."""
    if value is None:
        return True
    if field.kind == "str":
        return type(value) is str
    if type(value) is int:
        return value in _INT64
    return type(value) is float and math.isfinite(value)


def decode_token(token: str, filter: str | None, keys: tuple[OrderKey, ...]) -> list[Any]:
    """The sort key a token continues after; rejects tokens of another query."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        values = data["k"]
        ok = (
            data["v"] == 1
            and isinstance(values, list)
            and len(values) == len(keys)
            and all(_fits(v, k.field) for v, k in zip(values, keys, strict=True))
        )
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        ok = False
    if not ok:
        raise InvalidArgumentError(f"not a valid page token: {token[:40]!r}")
    if data["q"] != _fingerprint(filter, keys):
        raise InvalidArgumentError(
            "this page token belongs to a different filter or order_by; "
            "pass the same query that produced it"
        )
    return values  # type: ignore[no-any-return]


def check_max_results(max_results: object) -> int:
    """``max_results`` must be a positive int."""
    if type(max_results) is not int or max_results < 1:
        raise InvalidArgumentError(f"max_results must be a positive int, got {max_results!r}")
    return max_results


class TraceList(list[Trace]):
    """One page of ``search_traces`` results; ``next_page_token`` is None on the last page."""

    def __init__(self, traces: Iterable[Trace] = (), next_page_token: str | None = None) -> None:
        super().__init__(traces)
        self.next_page_token = next_page_token

    def __repr__(self) -> str:
        return f"TraceList({list.__repr__(self)}, next_page_token={self.next_page_token!r})"

    def _repr_html_(self) -> str:
        """The page as a table in a Jupyter notebook."""
        from lowtrace._view.html import trace_list_html

        return trace_list_html(self)

    def to_pandas(self):  # type: ignore[no-untyped-def]
        """The page as a pandas DataFrame, one row per trace (needs the ``pandas`` extra)."""
        from lowtrace._stores.frames import traces_to_pandas

        return traces_to_pandas(self)
