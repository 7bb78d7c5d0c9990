"""A finished trace builds its span records on first read, under a lock shared by a stripe
of traces: a slow build of one trace must not hold up reading the others."""

from __future__ import annotations

import threading

from lowtrace._records import SpanList, SpanRecord, build_lock


def test_reading_one_traces_spans_does_not_wait_for_another_traces_build() -> None:
    started, release = threading.Event(), threading.Event()

    def slow_records() -> list[SpanRecord]:
        started.set()
        release.wait(10)
        return []

    first = SpanList(source=slow_records)
    candidates = [SpanList(source=list) for _ in range(64)]
    # Any list of another stripe: sixty-four of them cannot all share the first one's lock.
    others = [spans for spans in candidates if build_lock(spans) is not build_lock(first)]
    assert others, "every trace shares one build lock"
    reader = threading.Thread(target=len, args=(first,), daemon=True)
    reader.start()
    try:
        assert started.wait(10)
        other = threading.Thread(target=len, args=(others[0],), daemon=True)
        other.start()
        other.join(10)
        assert not other.is_alive()
    finally:
        release.set()
        reader.join(10)
