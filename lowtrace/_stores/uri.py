"""Opening a store from a URI: ``memory://``, ``sqlite:///...``, ``jsonl:///...``,
``delta:///...``, ``postgresql://``."""

from __future__ import annotations

import re
from typing import Final

from lowtrace._stores.base import TraceStore
from lowtrace.errors import InvalidArgumentError

__all__ = ["open_store", "redact"]

_SCHEMES = (
    "sqlite:///path.db, memory://, jsonl:///path.jsonl.zst, delta:///path, postgresql://..., "
    "none://"
)


def open_store(uri: str, *, create: bool = True) -> TraceStore:
    """The store a URI names. With ``create=False`` a missing store raises instead of appearing."""
    if not isinstance(uri, str) or "://" not in uri:
        raise InvalidArgumentError(f"not a store URI: {uri!r} (expected one of {_SCHEMES})")
    scheme = uri.split("://", 1)[0].lower()
    if scheme == "none":
        from lowtrace._stores.discard import DiscardStore

        return DiscardStore(uri)
    if scheme == "memory":
        from lowtrace._stores.memory import MemoryStore

        return MemoryStore(uri)
    if scheme == "sqlite":
        from lowtrace._stores.sqlite import SQLiteStore

        return SQLiteStore.from_uri(uri, create=create)
    if scheme == "jsonl":
        from lowtrace._stores.jsonl import JsonlStore

        return JsonlStore.from_uri(uri, create=create)
    if scheme == "delta":
        from lowtrace._stores.delta import DeltaStore

        return DeltaStore.from_uri(uri, create=create)
    if scheme in ("postgresql", "postgres"):
        from lowtrace._stores.postgres import PostgresStore

        return PostgresStore.from_uri(uri, create=create)
    raise InvalidArgumentError(f"unknown store URI scheme {scheme!r} in {uri!r}; use {_SCHEMES}")


_SECRET_PARAM: Final = re.compile(r"(?i)((?:^|[?&;])(?:password|passwd|pwd)=)[^&;]*")


def redact(uri: str) -> str:
    """The store URI without its password (in ``user:pw@`` or a ``password=`` parameter)."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    location, slash, tail = rest.partition("/")
    if "@" in location:
        userinfo, _, host = location.rpartition("@")
        user = userinfo.split(":", 1)[0]
        location = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    return _SECRET_PARAM.sub(r"\1***", f"{scheme}://{location}{slash}{tail}")
