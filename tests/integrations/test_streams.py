"""The stream proxies the model integrations hand back: they behave like the stream they
wrap, even where Python looks attributes up on a half-built object (copy, pickle)."""

from __future__ import annotations

import copy
from typing import Any

from lowtrace import SpanType, TracingClient
from lowtrace.integrations._common import Run, start_run
from lowtrace.integrations._streams import TracedStream


class Collect:
    """An accumulator that keeps what it saw."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        self.items.append(item)

    def outputs(self) -> tuple[Any, dict[str, Any]]:
        return self.items, {}


def test_a_traced_stream_copies_and_reads_through_without_recursion() -> None:
    with TracingClient("memory://") as client:
        run = start_run(client, "model", SpanType.CHAT_MODEL, None, {})
        stream = TracedStream(iter([1, 2]), Collect(run), "test")
        assert list(stream) == [1, 2]
        twin = copy.copy(stream)  # copy looks up __setstate__ on an object without _stream
        assert twin._stream is stream._stream
        bare = TracedStream.__new__(TracedStream)
        assert not hasattr(bare, "anything")
        assert client.stats().violations == {}
