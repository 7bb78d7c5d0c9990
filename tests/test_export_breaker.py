"""The export lane's circuit breaker: a dead destination costs full retries only until it
is known dead; then queued batches fail fast (counted, logged once) until a probe succeeds."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from lowtrace import PipelineConfig, Trace, TracingClient

# One trace per batch, so each trace is one batch; retries fast (tests check counts, not time).
CONFIG = PipelineConfig(
    max_batch_traces=1, max_attempts=3, backoff_initial_s=0.001, backoff_max_s=0.002
)


class Switchable:
    """A destination that is down until ``up`` is set; counts every export call."""

    def __init__(self) -> None:
        self.up = False
        self.calls = 0
        self.traces: list[Trace] = []

    def export(self, traces: Sequence[Trace]) -> None:
        self.calls += 1
        if not self.up:
            raise ConnectionError("connection refused")
        self.traces.extend(traces)


def end_traces(client: TracingClient, count: int) -> None:
    for n in range(count):
        client.end_trace(client.start_trace(f"t{n}").trace_id)


def test_queued_batches_fail_fast_once_the_destination_is_known_dead(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = Switchable()
    with (
        caplog.at_level(logging.WARNING, logger="lowtrace"),
        TracingClient("none://", exporters=[dead], pipeline=CONFIG) as client,
    ):
        end_traces(client, 40)
        assert client.flush() is False  # no timeout: it must not wait out 40 full retries
        (stats,) = client.stats().exporters
        assert stats.failed == 40 and stats.exported == 0
        # Full retries for the batches that showed the destination is down, then one
        # attempt (a probe) per batch: 40 batches x 3 attempts would be 120 calls.
        assert dead.calls <= 3 * 3 + 37
        assert stats.retried <= 3 * 2
        assert caplog.text.count("failing queued traces fast") == 1


def test_a_probe_that_succeeds_closes_the_breaker_and_flush_is_true_again() -> None:
    flaky = Switchable()
    with TracingClient("none://", exporters=[flaky], pipeline=CONFIG) as client:
        end_traces(client, 10)
        assert client.flush() is False
        flaky.up = True
        end_traces(client, 5)
        assert client.flush() is True
        assert len(flaky.traces) == 5
        flaky.up = False  # down again: retried in full before it is called dead again
        calls = flaky.calls
        end_traces(client, 1)
        assert client.flush() is False
        assert flaky.calls - calls == 3


class RefusesPoison:
    """A live destination that cannot take one kind of trace (a serialisation bug)."""

    def __init__(self) -> None:
        self.traces: list[Trace] = []

    def export(self, traces: Sequence[Trace]) -> None:
        if any(trace.info.name == "poison" for trace in traces):
            raise ValueError("cannot encode this trace")
        self.traces.extend(traces)


def test_batches_with_one_bad_trace_each_do_not_trip_the_breaker() -> None:
    """The destination answers (the good traces of every batch are delivered): it is not
    dead, so later batches still get their bad trace isolated and the rest delivered."""
    alive = RefusesPoison()
    config = PipelineConfig(
        max_batch_traces=4,
        max_attempts=2,
        backoff_initial_s=0.001,
        backoff_max_s=0.002,
        export_delay_s=60,
    )
    with TracingClient("none://", exporters=[alive], pipeline=config) as client:
        for batch in range(5):
            for name in ("poison", "a", "b", "c"):
                client.end_trace(client.start_trace(name).trace_id)
            assert client.flush() is False  # the bad trace of each batch is lost
            assert len(alive.traces) == 3 * (batch + 1)
        (stats,) = client.stats().exporters
        assert stats.exported == 15 and stats.failed == 5
