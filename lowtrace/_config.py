"""Client settings: the limits that protect memory, the export queue, and the environment.

Defaults are generous enough that ordinary agents never hit a limit; every limit that bites
is counted and marked in the trace, never silent.
"""

from __future__ import annotations

import os
from typing import Any, Final, Literal

import attrs

from lowtrace.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_URI",
    "ENV_ENABLED",
    "ENV_URI",
    "Limits",
    "PipelineConfig",
    "env_enabled",
    "env_uri",
]

ENV_ENABLED: Final = "LOWTRACE_ENABLED"
ENV_URI: Final = "LOWTRACE_URI"
DEFAULT_URI: Final = "sqlite:///lowtrace.db"

_FALSE = frozenset({"0", "false", "no", "off", "disabled"})


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise InvalidArgumentError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class Limits:
    """Per-trace and per-client bounds on what is kept in memory while traces are live."""

    #: Spans recorded per trace; further spans (and their children) are dropped and counted.
    max_spans_per_trace: int = attrs.field(default=10_000, validator=_positive)
    #: Attributes per span (lowtrace's own ``lowtrace.*`` keys do not count).
    max_attributes_per_span: int = attrs.field(default=256, validator=_positive)
    #: Events per span; the newest extra event is dropped and counted, never the oldest.
    max_events_per_span: int = attrs.field(default=2_048, validator=_positive)
    #: Bytes of JSON per recorded value (an input, output or attribute) before truncation.
    max_value_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=_positive)
    #: Live (unfinished) traces per client; past it the least recently active is abandoned.
    max_live_traces: int = attrs.field(default=10_000, validator=_positive)
    #: Seconds without any call on a live trace before it is closed as abandoned.
    idle_timeout_s: float = attrs.field(default=3600.0, validator=_positive)


@attrs.frozen
class PipelineConfig:
    """The background export pipeline: queue bounds, batching, retries, shutdown."""

    #: Finished traces waiting per destination; past it new traces are dropped and counted.
    #: Large, so a burst is absorbed: ``max_queue_bytes`` is what bounds memory.
    max_queue_traces: int = attrs.field(default=262_144, validator=_positive)
    #: Memory held by the traces waiting per destination (payloads plus the objects that
    #: hold them, estimated per span, attribute and event); past it traces are dropped.
    max_queue_bytes: int = attrs.field(default=512 * 1024 * 1024, validator=_positive)
    #: Traces handed to one ``export()`` call at most; a full batch is sent at once.
    max_batch_traces: int = attrs.field(default=2_048, validator=_positive)
    #: How long a finished trace may wait for others to share its batch (``flush()`` and
    #: ``close()`` do not wait). Batching keeps the worker from waking once per trace.
    export_delay_s: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))
    #: Attempts per batch (the first try plus retries) before it is counted as failed.
    max_attempts: int = attrs.field(default=6, validator=_positive)
    #: First retry delay; doubles per attempt, with full jitter, up to ``backoff_max_s``.
    backoff_initial_s: float = attrs.field(default=0.2, validator=_positive)
    backoff_max_s: float = attrs.field(default=10.0, validator=_positive)
    #: How long ``close()`` and interpreter exit may spend delivering what is queued.
    shutdown_timeout_s: float = attrs.field(default=5.0, validator=_positive)
    #: A full queue: ``"drop"`` the newest whole trace and count it, or ``"block"``:
    #: ``end_trace`` waits up to ``block_timeout_s`` for room, then drops and counts.
    when_full: Literal["drop", "block"] = attrs.field(
        default="drop", validator=attrs.validators.in_(("drop", "block"))
    )
    block_timeout_s: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))


def env_enabled() -> bool:
    """False when ``LOWTRACE_ENABLED`` says so (false/0/no/off)."""
    return os.environ.get(ENV_ENABLED, "true").strip().lower() not in _FALSE


def env_uri() -> str:
    """The destination URI from ``LOWTRACE_URI``, else the default SQLite file."""
    return os.environ.get(ENV_URI, "").strip() or DEFAULT_URI
