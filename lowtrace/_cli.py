"""The ``lowtrace`` command: list, show, search, export and delete stored traces, log feedback;
serve the UI; compact a Delta table.

Every subcommand takes ``--uri`` (default: ``LOWTRACE_URI``, then the default SQLite file).
Reading never creates a store. Every failure prints one line on stderr and exits non-zero,
never a traceback: 1 for a bad filter, an unknown trace, a missing, unreadable or damaged
store (or, as a last resort, a bug); 2 for bad usage.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from lowtrace._annotate import with_info
from lowtrace._assessment import make_assessment
from lowtrace._config import env_uri
from lowtrace._controls import escape_controls
from lowtrace._dataset import golden_row
from lowtrace._model import Trace
from lowtrace._query.filter import string_literal
from lowtrace._serde import chunked
from lowtrace._stores.base import TraceStore, iter_traces
from lowtrace._stores.jsonl import inference_row
from lowtrace._stores.uri import open_store
from lowtrace._textview import failed_spans, format_assessment, format_table, format_tree
from lowtrace.errors import LowtraceError, StoreNotFoundError

__all__ = ["main", "run"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class _Failure(Exception):
    """A user-facing failure: the message is printed, the code is the exit status."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _say(message: str) -> None:
    """One line on stderr: control characters escaped, unencodable ones replaced."""
    line = escape_controls(" ".join(message.split("\n"))).strip()
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    line = line.encode(encoding, "backslashreplace").decode(encoding, "replace")
    print(f"lowtrace: {line}", file=sys.stderr)


def _store(args: argparse.Namespace) -> TraceStore:
    return open_store(args.uri or env_uri(), create=False)


def _cmd_list(args: argparse.Namespace, out: IO[str]) -> int:
    store = _store(args)
    filter, order_by = getattr(args, "filter", None), args.order_by
    if args.session is not None:  # a conversation, turn by turn
        turn = f"session_id = {string_literal(args.session)}"
        filter = f"({filter}) AND {turn}" if filter else turn
        order_by = order_by or "start_time_ms ASC"
    traces = list(iter_traces(store, filter, order_by=order_by, limit=args.limit))
    if args.json:
        for trace in traces:  # the trace as ``Trace.to_json`` writes it, and its failed spans
            row = orjson.loads(trace.to_json()) | {"failed_spans": failed_spans(trace)}
            out.write(orjson.dumps(row).decode() + "\n")
    else:
        out.write(format_table([t.info for t in traces], [failed_spans(t) for t in traces]) + "\n")
        if not traces:
            out.write("(no traces)\n")
    return EXIT_OK


def _traces(count: int) -> str:
    return f"{count:,} trace{'' if count == 1 else 's'}"


def _cmd_show(args: argparse.Namespace, out: IO[str]) -> int:
    store = _store(args)
    if args.trace_id is None:  # the newest trace
        newest = store.search_traces(max_results=1)
        if not newest:
            raise _Failure(f"no traces in {args.uri or env_uri()} yet")
        trace: Trace | None = newest[0]
    else:
        trace = store.get_trace(args.trace_id)
    if trace is None:
        raise _Failure(f"no trace {args.trace_id!r} in {args.uri or env_uri()}")
    if args.html:
        Path(args.html).write_text(trace.to_html(), encoding="utf-8")
        print(f"wrote {args.html} (trace {trace.info.trace_id})", file=sys.stderr)
    elif args.json:
        out.write(orjson.dumps(orjson.loads(trace.to_json()), option=orjson.OPT_INDENT_2).decode())
        out.write("\n")
    else:
        out.write(format_tree(trace, show_io=args.io) + "\n")
    return EXIT_OK


def _progress(total: int | None, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    return tqdm(total=total, unit="trace", file=sys.stderr, leave=False)


def _cmd_export(args: argparse.Namespace, out: IO[str]) -> int:
    store = _store(args)
    total = store.count(args.filter)
    if args.limit is not None:
        total = min(total, args.limit)
    bar = _progress(total, sys.stderr.isatty() and not args.no_progress)
    target = Path(args.output) if args.output and args.output != "-" else None
    count = 0

    def lines() -> Iterator[bytes]:
        nonlocal count
        for trace in iter_traces(store, args.filter, order_by=args.order_by, limit=args.limit):
            if args.golden:
                row = orjson.dumps(golden_row(trace))
            elif args.rows:
                row = orjson.dumps(inference_row(trace))
            else:
                row = trace.to_json()
            count += 1
            if bar is not None:
                bar.update(1)
            yield row + b"\n"

    sink = target.open("wb") if target else None
    try:
        import zstandard

        writer: Any = sink
        if sink is not None and target is not None and target.suffix == ".zst":
            writer = zstandard.ZstdCompressor(level=3).stream_writer(sink)
        for chunk in chunked(lines()):
            if writer is None:
                out.write(chunk.decode())
            else:
                writer.write(chunk)
        if writer is not None and writer is not sink:
            writer.close()
    finally:
        if sink is not None and not sink.closed:
            sink.close()
        if bar is not None:
            bar.close()
    if target is not None:
        print(f"exported {_traces(count)} to {target}", file=sys.stderr)
    return EXIT_OK


def _cmd_feedback(args: argparse.Namespace, out: IO[str]) -> int:
    try:
        value: Any = orjson.loads(args.value)  # true, 4, "text", {...}
    except orjson.JSONDecodeError:
        value = args.value  # a bare word is a string
    source = {"type": args.source_type, **({"id": args.source} if args.source else {})}
    assessment = make_assessment(
        "expectation" if args.expectation else "feedback",
        args.name,
        value,
        source,
        None if args.expectation else args.rationale,
        None,
    )
    _store(args).update_trace(
        args.trace_id,
        lambda t: with_info(t, assessments=(*t.info.assessments, assessment)),
    )
    out.write(f"{assessment.assessment_id}  {format_assessment(assessment)}\n")
    return EXIT_OK


def _cmd_delete(args: argparse.Namespace, out: IO[str]) -> int:
    if not args.trace_ids and args.older_than_days is None:
        raise _Failure("delete needs TRACE_ID... or --older-than-days N", EXIT_USAGE)
    if not args.yes:
        raise _Failure("refusing to delete without --yes", EXIT_USAGE)
    older = None
    if args.older_than_days is not None:
        days = args.older_than_days
        if not math.isfinite(days) or days < 0:  # -1 would delete every trace
            raise _Failure("--older-than-days takes a number of days >= 0", EXIT_USAGE)
        older = int(max(0.0, time.time() - days * 86400) * 1000)  # before 1970: nothing
    deleted = _store(args).delete_traces(args.trace_ids or None, older_than_ms=older)
    out.write(f"deleted {_traces(deleted)}\n")
    return EXIT_OK


def _cmd_compact(args: argparse.Namespace, out: IO[str]) -> int:
    store = _store(args)
    compact = getattr(store, "compact", None)
    if not callable(compact):
        raise _Failure(f"compact works on delta:// tables, not {store.uri}", EXIT_USAGE)
    done = compact(retention_hours=args.retention_hours)
    out.write(
        f"compacted {done['files_removed']} file(s) into {done['files_added']}; "
        f"vacuumed {done['files_vacuumed']} unreferenced file(s)\n"
    )
    return EXIT_OK


def _load_prices(path: str | None) -> dict[str, tuple[float, ...]] | None:
    if path is None:
        return None
    try:
        raw = orjson.loads(Path(path).read_bytes())
        table = {str(model): tuple(float(p) for p in price) for model, price in raw.items()}
        if any(not 2 <= len(price) <= 4 for price in table.values()):
            raise ValueError("2 to 4 prices per model")
        return table
    except (OSError, orjson.JSONDecodeError, AttributeError, TypeError, ValueError, IndexError):
        raise _Failure(
            f"--prices {path}: expected a JSON object of model -> [input_per_million, "
            "output_per_million, (cache_read_per_million, (cache_creation_per_million))]",
            EXIT_USAGE,
        ) from None


def _cmd_ui(args: argparse.Namespace, out: IO[str]) -> int:
    from lowtrace._ui.server import serve

    prices = _load_prices(args.prices)
    serve(
        args.uri or env_uri(),
        host=args.host,
        port=args.port,
        allow_remote=args.allow_remote,
        allowed_hosts=args.allowed_host,
        read_only=args.read_only,
        prices=prices,
    )
    return EXIT_OK


def _count(text: str) -> int:
    """A ``--limit``: a whole number, 0 or more (a negative one would silently list nothing)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"takes a whole number, 0 or more, not {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lowtrace",
        description="Look at, search, give feedback on, export and delete stored traces; "
        "compact a Delta table; browse the traces in the web UI.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--uri", help="store URI (default: $LOWTRACE_URI, else sqlite:///lowtrace.db)"
    )
    table = argparse.ArgumentParser(add_help=False)
    table.add_argument("--uri", help="the Delta table, delta:///path (default: $LOWTRACE_URI)")
    sub = parser.add_subparsers(dest="command", required=True)

    def listing(p: argparse.ArgumentParser) -> None:
        p.add_argument("--limit", type=_count, default=50, help="at most N traces (default 50)")
        p.add_argument("--order-by", help='e.g. "duration_ms DESC" (default: newest first)')
        p.add_argument("--json", action="store_true", help="one JSON trace per line")

    p = sub.add_parser("list", parents=[common], help="list the newest traces")
    listing(p)
    p.add_argument("--session", metavar="ID", help="one conversation's traces, oldest first")
    p.set_defaults(run=_cmd_list)
    p = sub.add_parser("search", parents=[common], help="list traces matching a filter")
    p.add_argument("filter", help="e.g. \"status = 'ERROR' AND duration_ms > 500\"")
    listing(p)
    p.set_defaults(run=_cmd_list, session=None)
    p = sub.add_parser("feedback", parents=[common], help="log feedback on a stored trace")
    p.add_argument("trace_id", metavar="TRACE_ID", help="the stored trace to annotate")
    p.add_argument("name", metavar="NAME", help="e.g. correct, score, comment")
    p.add_argument("value", metavar="VALUE", help='JSON (true, 4, "text") or a bare word')
    p.add_argument("--rationale", help="why (feedback only)")
    p.add_argument("--source", metavar="ID", help="who: a user name or a judge id")
    p.add_argument("--source-type", default="HUMAN", help="HUMAN (default), LLM_JUDGE, CODE")
    p.add_argument("--expectation", action="store_true", help="log the expected answer instead")
    p.set_defaults(run=_cmd_feedback)
    p = sub.add_parser("show", parents=[common], help="show one trace as a tree")
    p.add_argument("trace_id", nargs="?", help="default: the newest trace")
    p.add_argument("--html", metavar="FILE", help="write the trace as a self-contained page")
    p.add_argument("--io", action="store_true", help="also show each span's inputs and outputs")
    p.add_argument("--json", action="store_true", help="the full trace as JSON")
    p.set_defaults(run=_cmd_show)
    p = sub.add_parser("export", parents=[common], help="export traces as JSON lines")
    p.add_argument("--filter", help="only traces matching this filter")
    p.add_argument("--order-by", help='e.g. "duration_ms DESC" (default: newest first)')
    p.add_argument("--limit", type=_count, default=None, help="at most N traces (default: all)")
    p.add_argument("-o", "--output", help="file (.jsonl, or .jsonl.zst compressed); default stdout")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--rows", action="store_true", help="inference-table rows instead of traces")
    kind.add_argument(
        "--golden",
        action="store_true",
        help="a golden evaluation dataset: root inputs, outputs and tags per trace",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_cmd_export)
    p = sub.add_parser("delete", parents=[common], help="delete traces")
    p.add_argument("trace_ids", nargs="*", metavar="TRACE_ID", help="traces to delete by id")
    p.add_argument("--older-than-days", type=float, help="delete traces started before N days ago")
    p.add_argument("--yes", action="store_true", help="do it (required)")
    p.set_defaults(run=_cmd_delete)
    p = sub.add_parser(
        "compact", parents=[table], help="merge a Delta table's small files, then vacuum"
    )
    p.add_argument(
        "--retention-hours",
        type=float,
        help="delete unreferenced files older than this (default: the table's, 7 days)",
    )
    p.set_defaults(run=_cmd_compact)
    p = sub.add_parser("ui", parents=[common], help="serve the web UI (extra 'ui')")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=5800, help="port (default 5800; 0 picks one)")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the UI has no login)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer to this Host name (repeatable; '*' for any, which re-opens DNS "
        "rebinding)",
    )
    p.add_argument(
        "--read-only", action="store_true", help="look only: no delete and no feedback form"
    )
    p.add_argument(
        "--prices",
        metavar="FILE",
        help='JSON {"model": [input_per_1M, output_per_1M, cache_read_per_1M, '
        "cache_write_per_1M]} to show costs (the cache prices are optional)",
    )
    p.set_defaults(run=_cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args, sys.stdout)
    except _Failure as exc:
        _say(str(exc))
        return exc.code
    except StoreNotFoundError as exc:
        print(f"lowtrace: {exc}", file=sys.stderr)
        print(
            "  Give the store with --uri (e.g. --uri sqlite:///path/to/traces.db) or "
            "LOWTRACE_URI, or run this where your app records traces.",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except LowtraceError as exc:
        # The first line says it all (a FilterError's first line names the position).
        first = (str(exc).splitlines() or [""])[0]
        _say(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # the output file or the store's file system
        _say(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - a bug: still one line, never a traceback
        first = (str(exc).splitlines() or [""])[0]
        _say(f"internal error: {type(exc).__name__}: {first}")
        return EXIT_ERROR
    return code


def run() -> None:
    """The ``lowtrace`` command: ``main()``, then exit the process with its status.

    After a ``delta://`` store was read, the process ends with ``os._exit`` once the output
    is flushed: deltalake's pyarrow dataset leaves native threads that abort the interpreter's
    teardown now and then ("terminate called without an active exception", exit 134; seen in
    3 of 40 runs here; delta-rs issue 2184), which would turn a good answer into a failure.
    """
    code = main()
    if "deltalake" in sys.modules:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (BrokenPipeError, OSError):
            pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
