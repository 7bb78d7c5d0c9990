"""Stores lowtrace does not ship: passed as an instance, or registered by an entry point.

A package adds a URI scheme by declaring an entry point in the ``lowtrace.stores`` group;
these tests install such a package the way pip would (a ``.dist-info`` directory on
``sys.path``) and open its scheme by URI.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from lowtrace import InvalidArgumentError, StoreError, Trace, TraceList, TraceStore, TracingClient
from lowtrace._stores.uri import ENTRY_POINT_GROUP, open_store


class ListStore(TraceStore):
    """A user's store: keeps traces in a list (search returns them all, newest first)."""

    def __init__(self, uri: str = "list://") -> None:
        self.uri = uri
        self.lock = threading.Lock()
        self.traces: list[Trace] = []
        self.shutdowns = 0

    @classmethod
    def from_uri(cls, uri: str, *, create: bool = True) -> ListStore:
        return cls(uri)

    def export(self, traces: Sequence[Trace]) -> None:
        with self.lock:
            self.traces.extend(traces)

    def get_trace(self, trace_id: str) -> Trace | None:
        with self.lock:
            return next((t for t in self.traces if t.info.trace_id == trace_id), None)

    def search_traces(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> TraceList:
        with self.lock:
            return TraceList(reversed(self.traces[-max_results:]))

    def count(self, filter: str | None = None) -> int:
        with self.lock:
            return len(self.traces)

    def delete_traces(
        self, trace_ids: Sequence[str] | None = None, *, older_than_ms: int | None = None
    ) -> int:
        return 0

    def shutdown(self) -> None:
        self.shutdowns += 1


def not_a_store(uri: str, *, create: bool = True) -> object:
    """An opener that breaks the contract: it returns something that is not a TraceStore."""
    return object()


def install_plugin(root: Path, monkeypatch: pytest.MonkeyPatch, **entry_points: str) -> None:
    """Install a distribution whose ``lowtrace.stores`` entry points are ``scheme=target``."""
    info = root / "lowtrace_plugin_example-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lowtrace-plugin-example\nVersion: 1.0\n"
    )
    lines = "".join(f"{scheme} = {target}\n" for scheme, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    monkeypatch.syspath_prepend(str(root))


def record_one_trace(client: TracingClient) -> str:
    root = client.start_trace("agent", inputs={"question": "why?"})
    child = client.start_span("search", trace_id=root.trace_id, parent_id=root.span_id)
    child.end(outputs=["doc"])
    client.end_trace(root.trace_id, outputs={"answer": "because"})
    assert client.flush(timeout=10)
    return root.trace_id


def test_a_store_instance_receives_the_traces_and_answers_reads() -> None:
    store = ListStore()
    with TracingClient(store) as client:
        trace_id = record_one_trace(client)
        assert client.store is store
        assert [t.info.trace_id for t in store.traces] == [trace_id]
        stored = client.get_trace(trace_id)
        assert stored is not None and [s.name for s in stored.spans] == ["agent", "search"]
        assert [t.info.trace_id for t in client.search_traces()] == [trace_id]
        assert client.count_traces() == 1
        assert client.uri == "list://"
    assert store.shutdowns == 1  # the client closes the store it was given


def test_a_store_instance_is_read_even_when_tracing_is_disabled() -> None:
    store = ListStore()
    with TracingClient(store) as writer:
        trace_id = record_one_trace(writer)
    with TracingClient(store, enabled=False) as reader:
        assert reader.start_trace("ignored").is_recording is False
        assert reader.get_trace(trace_id) is not None
    assert len(store.traces) == 1


def test_an_entry_point_store_is_found_by_its_scheme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path, monkeypatch, liststore="tests.test_store_seam:ListStore")
    with TracingClient("liststore://team-a") as client:
        store = client.store
        assert isinstance(store, ListStore) and store.uri == "liststore://team-a"
        trace_id = record_one_trace(client)
        assert [t.info.trace_id for t in store.traces] == [trace_id]
    assert isinstance(open_store("LISTSTORE://other", create=False), ListStore)


def test_an_unknown_scheme_names_the_known_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path, monkeypatch, liststore="tests.test_store_seam:ListStore")
    with pytest.raises(InvalidArgumentError, match=r"'nosuch'.*liststore, memory"):
        TracingClient("nosuch://x")


def test_a_broken_plugin_is_a_store_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(
        tmp_path,
        monkeypatch,
        missing="tests.no_such_module:Store",
        wrong="tests.test_store_seam:not_a_store",
    )
    with pytest.raises(StoreError, match=r"tests\.no_such_module:Store"):
        open_store("missing://x")
    with pytest.raises(StoreError, match=r"not_a_store returned .* not a TraceStore"):
        open_store("wrong://x")


def test_two_packages_claiming_one_scheme_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path / "a", monkeypatch, twice="tests.test_store_seam:ListStore")
    other = tmp_path / "b" / "another_plugin-2.0.dist-info"
    other.mkdir(parents=True)
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: another-plugin\nVersion: 2.0\n")
    (other / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ntwice = tests.test_store_seam:not_a_store\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    with pytest.raises(StoreError, match="several packages register the store scheme twice://"):
        open_store("twice://x")


def test_built_in_schemes_win_over_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path, monkeypatch, memory="tests.test_store_seam:ListStore")
    assert not isinstance(open_store("memory://"), ListStore)
