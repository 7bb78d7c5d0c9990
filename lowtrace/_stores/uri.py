"""Opening a store from a URI: a registry of schemes, built in or from entry points.

A scheme names a *store opener*: a ``TraceStore`` class with a ``from_uri(uri, *, create)``
classmethod, or any callable ``opener(uri, *, create) -> TraceStore``. The built-in schemes
are written as ``"module:attribute"`` and imported on first use, so an optional extra is
needed only by the URIs that use it. A scheme lowtrace does not know is looked up, lazily,
in the ``lowtrace.stores`` entry-point group (the entry point's name is the scheme), so a
package adds a store without touching lowtrace::

    [project.entry-points."lowtrace.stores"]
    mystore = "my_package.store:MyStore"
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any, Final

from lowtrace._stores.base import TraceStore
from lowtrace._stores.redact import redact
from lowtrace.errors import InvalidArgumentError, LowtraceError, StoreError

__all__ = ["ENTRY_POINT_GROUP", "open_store", "redact"]

ENTRY_POINT_GROUP: Final = "lowtrace.stores"

#: The schemes lowtrace ships, each ``"module:attribute"`` of its opener (imported lazily).
_BUILTIN: Final[dict[str, str]] = {
    "sqlite": "lowtrace._stores.sqlite:SQLiteStore",
    "memory": "lowtrace._stores.memory:MemoryStore",
    "jsonl": "lowtrace._stores.jsonl:JsonlStore",
    "delta": "lowtrace._stores.delta:DeltaStore",
    "postgresql": "lowtrace._stores.postgres:PostgresStore",
    "postgres": "lowtrace._stores.postgres:PostgresStore",
    "none": "lowtrace._stores.discard:DiscardStore",
}
_EXAMPLES: Final = (
    "sqlite:///path.db, memory://, jsonl:///path.jsonl.zst, delta:///path, postgresql://..., "
    "none://"
)


def open_store(uri: str, *, create: bool = True) -> TraceStore:
    """The store a URI names. With ``create=False`` a missing store raises instead of appearing.

    Raises ``InvalidArgumentError`` for a malformed URI or a scheme nobody registered,
    ``MissingExtraError`` when the scheme's extra is not installed, and ``StoreError`` when
    a third-party opener fails to load or returns something that is not a ``TraceStore``.
    """
    if not isinstance(uri, str) or "://" not in uri:
        raise InvalidArgumentError(f"not a store URI: {uri!r} (expected one of {_EXAMPLES})")
    scheme = uri.split("://", 1)[0].lower()
    target = _BUILTIN.get(scheme)
    if target is not None:
        module, _, attribute = target.partition(":")
        opener = getattr(importlib.import_module(module), attribute)
        return _call(opener, uri, create, target)
    entry = _entry_point(scheme)
    if entry is None:
        known = sorted({*_BUILTIN, *(e.name for e in _entry_points())})
        raise InvalidArgumentError(
            f"unknown store URI scheme {scheme!r} in {redact(uri)!r}; use {_EXAMPLES} "
            f"(schemes known here: {', '.join(known)})"
        )
    try:
        opener = entry.load()
    except Exception as exc:
        raise StoreError(
            f"the store for {scheme}:// (entry point {entry.value!r} in group "
            f"{ENTRY_POINT_GROUP!r}) could not be loaded: {exc!r}"
        ) from exc
    try:
        return _call(opener, uri, create, entry.value)
    except LowtraceError:
        raise
    except Exception as exc:
        raise StoreError(f"the {entry.value} store could not open {redact(uri)}: {exc!r}") from exc


def _call(opener: Any, uri: str, create: bool, where: str) -> TraceStore:
    from_uri = getattr(opener, "from_uri", None)
    store = from_uri(uri, create=create) if from_uri is not None else opener(uri, create=create)
    if not isinstance(store, TraceStore):
        raise StoreError(f"{where} returned {store!r} for {redact(uri)}, not a TraceStore")
    return store


def _entry_points() -> tuple[metadata.EntryPoint, ...]:
    return tuple(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _entry_point(scheme: str) -> metadata.EntryPoint | None:
    """The one entry point registered for ``scheme`` (a distribution seen twice counts once)."""
    found = {e.value: e for e in _entry_points() if e.name.lower() == scheme}
    if len(found) > 1:
        raise StoreError(
            f"several packages register the store scheme {scheme}:// in {ENTRY_POINT_GROUP!r}: "
            f"{', '.join(sorted(found))}; uninstall all but one"
        )
    return next(iter(found.values()), None)
