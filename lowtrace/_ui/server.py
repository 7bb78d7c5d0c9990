"""``lowtrace ui``: serve the web UI with uvicorn, on loopback unless told otherwise.

The UI has no login. Bound to a loopback address only this machine can reach it, and the
Host check keeps web pages from reaching it through DNS rebinding. Any other address is
refused unless ``allow_remote`` says the user means it, and then a warning is printed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any, Final

from lowtrace._stores.uri import open_store, redact
from lowtrace.errors import InvalidArgumentError, MissingExtraError

__all__ = ["LOOPBACK_NAMES", "bind", "host_names", "is_loopback", "serve", "uvicorn_config"]

LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0 picks a free one)."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except (OSError, OverflowError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InvalidArgumentError(f"cannot listen on {host}:{port}: {reason}") from None


def uvicorn_config(app: Any) -> Any:
    """The server settings: quiet, and request lines long enough for a full page selection.

    Selecting every row of a 500-row page puts 500 trace ids (about 20 KB) in the URL of
    the compare/export/delete form; h11's default 16 KB limit would refuse it.
    """
    import uvicorn

    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        h11_max_incomplete_event_size=64 * 1024,
    )


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def host_names(host: str, extra: Sequence[str] = ()) -> set[str] | None:
    """The Host header names the UI answers to; None (any) only for an explicit ``*``.

    On loopback: the loopback names. Listening more widely: also this machine's name,
    fully qualified name and addresses, and the bound address. ``extra`` adds names (a
    DNS alias, a proxy's name).
    """
    if "*" in extra:
        return None
    names = {*LOOPBACK_NAMES, host.strip("[]").lower(), *(h.strip("[]").lower() for h in extra)}
    if not is_loopback(host):
        for name in (socket.gethostname(), socket.getfqdn()):
            names.add(name.lower())
            with contextlib.suppress(OSError):
                names.update(str(info[4][0]) for info in socket.getaddrinfo(name, None))
    return names - {"0.0.0.0", "::", ""}


def serve(
    uri: str,
    *,
    host: str = "127.0.0.1",
    port: int = 5800,
    allow_remote: bool = False,
    allowed_hosts: Sequence[str] = (),
    read_only: bool = False,
    prices: Mapping[str, Any] | None = None,
    out: IO[str] | None = None,
) -> None:
    """Serve the store at ``uri`` until interrupted (Ctrl+C)."""
    out = out or sys.stderr
    if not 0 <= port <= 65535:
        raise InvalidArgumentError(f"port must be between 0 and 65535, not {port}")
    loopback = is_loopback(host)
    if not loopback and not allow_remote:
        raise InvalidArgumentError(
            f"refusing to serve on {host!r}: the UI has no login, so it listens on loopback "
            "only; pass --allow-remote if other machines should reach it"
        )
    try:
        import uvicorn

        from lowtrace._ui.app import create_app
    except ImportError as exc:
        raise MissingExtraError(
            f"the web UI needs the 'ui' extra: pip install 'lowtrace[ui]' ({exc})"
        ) from None
    allowed = host_names(host, allowed_hosts)
    store = open_store(uri, create=False)
    try:
        app = create_app(store, read_only=read_only, allowed_hosts=allowed, prices=prices)
        sock = bind(host, port)
        try:
            where = (
                "loopback only: other machines cannot connect"
                if loopback
                else "WARNING: reachable from other machines, and there is no login; answers "
                + ("any Host name" if allowed is None else "Host " + ", ".join(sorted(allowed)))
            )
            mode = ", read-only" if read_only else ""
            # The socket listens from here on: early requests wait in its backlog for uvicorn.
            shown = redact(store.uri)
            print(
                f"lowtrace ui: {_url(sock)} serving {shown} ({where}{mode}). Ctrl+C stops.",
                file=out,
            )
            uvicorn.Server(uvicorn_config(app)).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C once it has shut down cleanly
            print("lowtrace ui: stopped", file=out)
        finally:
            sock.close()
    finally:
        store.shutdown()
