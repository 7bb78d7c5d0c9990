"""W3C Trace Context across process boundaries: ``inject`` on the way out, ``extract`` on
the way in.

The calling side writes its span into the outgoing request's headers; the called side
reads them and continues the same trace (same trace id, its root's parent is the caller's
span, the caller's sampling decision and ``tracestate`` carried on unchanged)::

    from lowtrace import propagation

    headers: dict[str, str] = {}
    propagation.inject(span, headers)            # traceparent (+ tracestate)
    requests.post(url, json=payload, headers=headers)

    # in the service
    remote = propagation.extract(request.headers)
    root = client.start_trace("tool", **remote.start_args() if remote else {})

Headers may be a mapping, an ``http.client.HTTPMessage``, a WSGI environ
(``HTTP_TRACEPARENT``) or (key, value) pairs; names are matched in any letter case.
OpenTelemetry services understand the same two headers.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TypedDict

import attrs

from lowtrace._traceparent import (
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    Headers,
    extract_tracestate,
    parse_traceparent_fields,
)
from lowtrace._traceparent import extract as _extract_traceparent
from lowtrace._traceparent import inject as _inject

__all__ = [
    "TRACEPARENT_HEADER",
    "TRACESTATE_HEADER",
    "RemoteContext",
    "StartArgs",
    "extract",
    "inject",
]


class StartArgs(TypedDict):
    """The keywords that continue a remote trace in ``start_trace`` / ``start_span``."""

    traceparent: str
    tracestate: str | None


@attrs.frozen
class RemoteContext:
    """The caller's span as its headers describe it."""

    trace_id: str
    span_id: str
    sampled: bool
    traceparent: str
    tracestate: str | None = None

    def start_args(self) -> StartArgs:
        """``traceparent`` and ``tracestate``, as ``start_trace``/``start_span`` take them."""
        return {"traceparent": self.traceparent, "tracestate": self.tracestate}


def inject(span: object, headers: MutableMapping[str, str]) -> None:
    """Write ``span``'s ``traceparent`` (and its trace's ``tracestate``, if any) into headers.

    A span of an unsampled trace writes ``-00`` so the next hop does not record either; a
    disabled-mode handle (all-zero ids) writes nothing.
    """
    _inject(span, headers)


def extract(headers: Headers) -> RemoteContext | None:
    """The remote context in ``headers``, or None without a valid ``traceparent``.

    An invalid ``tracestate`` is dropped (the ``traceparent`` still counts), as the W3C
    spec asks.
    """
    value = _extract_traceparent(headers)
    if value is None:
        return None
    parsed = parse_traceparent_fields(value)
    return RemoteContext(
        trace_id=parsed.trace_id,
        span_id=parsed.span_id,
        sampled=parsed.sampled,
        traceparent=value,
        tracestate=extract_tracestate(headers),
    )
