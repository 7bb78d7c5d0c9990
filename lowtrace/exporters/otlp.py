"""``OTLPExporter``: finished traces to any OpenTelemetry (OTLP/HTTP) receiver.

Send lowtrace traces to Phoenix, MLflow, Jaeger, an OpenTelemetry Collector or any vendor
that accepts OTLP over HTTP, in protobuf (the default, official ``opentelemetry-proto``
messages) or OTLP/JSON, optionally gzip-compressed::

    from lowtrace import TracingClient
    from lowtrace.exporters.otlp import OTLPExporter

    client = TracingClient(exporters=[OTLPExporter("http://127.0.0.1:6006/v1/traces")])

Delivery, per the OTLP/HTTP spec, with lowtrace's export pipeline doing the backoff:

* 2xx: delivered (spans the receiver reports as rejected in a partial success are counted).
* 429, 502, 503, 504 (retryable): a ``Retry-After`` (seconds or HTTP date; at least one
  second, so "0" is no busy loop, at most 300) that fits in what is left of this batch's
  ``timeout`` is waited out and the request is sent again;
  otherwise ``export`` raises ``OTLPRetryableError`` and the pipeline retries the batch
  with backoff, and the next attempt first waits until the ``Retry-After`` time has passed
  (raising again at once, without sending, if that does not fit in its ``timeout``).
* Every other answer (any other 4xx or 5xx, 501 included, and 3xx) is final, as in the
  OpenTelemetry SDK: the batch is counted in ``stats().rejected_spans`` and ``export``
  raises ``OTLPRejectedError`` (an ``ExportRejectedError``), which the pipeline counts as
  rejected and never retries.
* Connection errors and timeouts: ``export`` raises ``OTLPExportError`` and the pipeline
  retries with backoff, up to its bound.

One ``export`` call never takes longer than ``timeout`` (each request and each wait is
bounded by what is left of it), and ``shutdown()`` returns at once: it cuts an in-flight
request short, so closing a client never hangs on a dead receiver. A batch split into
several requests (bodies above ``max_request_bytes`` before compression) and retried after
a partial failure does not resend the traces that already went through.
"""

from __future__ import annotations

import gzip
import logging
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from lowtrace import _forksafe
from lowtrace._otlp.config import OTLPSettings, resolve_settings
from lowtrace._otlp.encode import (
    INSTALL_HINT,
    count_spans,
    load_proto,
    rejected_spans,
    split_encode,
)
from lowtrace._otlp.mapping import RECEIVERS
from lowtrace._otlp.transport import HttpResponse, HttpTransport, parse_retry_after
from lowtrace.errors import ExportRejectedError, InvalidArgumentError, LowtraceError

if TYPE_CHECKING:
    from lowtrace._model import Trace

__all__ = [
    "INSTALL_HINT",
    "RETRYABLE_STATUS",
    "OTLPExportError",
    "OTLPExporter",
    "OTLPExporterStats",
    "OTLPRejectedError",
    "OTLPRetryableError",
]

log = logging.getLogger("lowtrace")

RETRYABLE_STATUS: Final = frozenset({429, 502, 503, 504})
_MAX_RETRY_AFTER_S: Final = 300.0
_MIN_RETRY_AFTER_S: Final = 1.0  # Retry-After's own resolution
_MLFLOW_EXPERIMENT_HEADER: Final = "x-mlflow-experiment-id"
_CONTENT_TYPES: Final = {"protobuf": "application/x-protobuf", "json": "application/json"}


class OTLPExportError(LowtraceError):
    """A batch could not be delivered this time; raising it makes the pipeline retry."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class OTLPRetryableError(OTLPExportError):
    """The receiver answered 429/502/503/504; ``retry_after`` is its hint in seconds."""

    def __init__(self, message: str, status: int | None, retry_after: float | None = None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class OTLPRejectedError(ExportRejectedError):
    """The receiver's final answer (e.g. 400, 413, 500, 501): the batch is never resent."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@attrs.frozen
class OTLPExporterStats:
    """What an ``OTLPExporter`` did since it was created."""

    requests: int  # HTTP requests sent (every attempt)
    exported_traces: int  # traces the receiver accepted (2xx)
    exported_spans: int
    rejected_traces: int  # refused by a final answer (anything but 2xx, 429, 502, 503, 504)
    rejected_spans: int  # those spans, plus spans rejected in a partial success
    failed_requests: int  # retryable failures (429/502/503/504, connection errors, timeouts)
    retried_requests: int  # Retry-After waits done inside export()
    bytes_sent: int  # request bodies as sent (after compression)


class OTLPExporter:
    """Exports finished traces to an OTLP/HTTP endpoint (protobuf or JSON, gzip or not).

    ``endpoint=None`` reads ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is), else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``, else ``http://localhost:4318/v1/traces``.
    ``headers`` add to (and override) ``OTEL_EXPORTER_OTLP_HEADERS`` and
    ``OTEL_EXPORTER_OTLP_TRACES_HEADERS``; ``timeout`` (seconds, per batch) defaults to
    ``OTEL_EXPORTER_OTLP_TIMEOUT`` (milliseconds) or 10 s; ``compression`` ("gzip"/"none")
    to ``OTEL_EXPORTER_OTLP_COMPRESSION``; ``encoding`` ("protobuf"/"json") to
    ``OTEL_EXPORTER_OTLP_PROTOCOL`` (http/protobuf, http/json). The resource carries
    ``service.name`` (``service_name``, else ``OTEL_SERVICE_NAME``, else "lowtrace") and
    ``OTEL_RESOURCE_ATTRIBUTES``. ``receiver`` ("any", "mlflow", "openinference") says
    which vocabulary inputs and outputs travel in (see ``lowtrace._otlp.mapping``); by
    default "mlflow" when the ``x-mlflow-experiment-id`` header is set, else "any" (both).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        compression: str | None = None,
        encoding: str | None = None,
        service_name: str | None = None,
        resource_attributes: Mapping[str, Any] | None = None,
        max_request_bytes: int = 4 * 1024 * 1024,
        ssl_context: ssl.SSLContext | None = None,
        receiver: str | None = None,
    ) -> None:
        self.settings: OTLPSettings = resolve_settings(
            endpoint,
            headers=headers,
            timeout=timeout,
            compression=compression,
            encoding=encoding,
            service_name=service_name,
            resource_attributes=resource_attributes,
        )
        if self.settings.encoding == "protobuf":
            load_proto()  # fail now, with the install hint, not in the export worker
        if type(max_request_bytes) is not int or max_request_bytes <= 0:
            raise InvalidArgumentError(f"max_request_bytes must be > 0: {max_request_bytes!r}")
        self.max_request_bytes = max_request_bytes
        if receiver is None:
            receiver = "mlflow" if _MLFLOW_EXPERIMENT_HEADER in self.settings.headers else "any"
        if receiver not in RECEIVERS:
            raise InvalidArgumentError(f"receiver must be one of {RECEIVERS}, got {receiver!r}")
        self.receiver = receiver
        self._ssl_context = ssl_context or _tls_context(self.settings)
        self._transport = HttpTransport(self.settings.endpoint, self._ssl_context)
        self._headers = self._request_headers()
        self._lock = threading.Lock()  # one export at a time; guards the counters too
        self._closed = threading.Event()
        self._not_before = 0.0  # monotonic time before which the receiver asked for quiet
        self._carry: list[Trace] = []  # settled part of a batch whose export raised
        self._refusal: OTLPRejectedError | None = None  # to raise once the batch is settled
        self._counts = dict.fromkeys(attrs.fields_dict(OTLPExporterStats), 0)
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        """A forked child gets its own connection (never the parent's socket) and counters."""
        self._transport = HttpTransport(self.settings.endpoint, self._ssl_context)
        self._lock = threading.Lock()
        self._not_before = 0.0
        self._carry = []
        self._refusal = None
        self._counts = dict.fromkeys(self._counts, 0)

    def _request_headers(self) -> dict[str, str]:
        from lowtrace import __version__

        settings = self.settings
        out = {"user-agent": f"lowtrace-otlp/{__version__}", **settings.headers}
        out["content-type"] = _CONTENT_TYPES[settings.encoding]  # what the body really is
        out.pop("content-encoding", None)
        if settings.compression == "gzip":
            out["content-encoding"] = "gzip"
        return out

    @property
    def endpoint(self) -> str:
        """The URL traces are POSTed to."""
        return self.settings.endpoint

    @property
    def uri(self) -> str:
        """The destination's name in ``TracingClient.stats()``: the endpoint."""
        return self.settings.endpoint

    def __repr__(self) -> str:
        return f"<OTLPExporter {self.settings.endpoint} {self.settings.encoding}>"

    def stats(self) -> OTLPExporterStats:
        """A snapshot of the counters."""
        return OTLPExporterStats(**self._counts)

    def _count(self, **deltas: int) -> None:
        counts = self._counts
        for key, delta in deltas.items():
            counts[key] += delta

    # -- exporting ------------------------------------------------------------------------------

    def export(self, traces: Sequence[Trace]) -> None:
        """Send a batch: returns when delivered; ``OTLPRejectedError`` on a final answer,
        another ``OTLPExportError`` when a later attempt may succeed.

        A request refused for good does not stop the batch's other requests: they are sent,
        and the refusal is raised once the rest went through (and again, without sending,
        if the same batch is handed in again).
        """
        if self._closed.is_set():
            raise OTLPExportError("the OTLP exporter is shut down")
        deadline = time.monotonic() + self.settings.timeout_s
        with self._lock:
            carried = {id(t) for t in self._carry}
            pending = [t for t in traces if id(t) not in carried]
            kept = [t for t in traces if id(t) in carried]
            self._carry = []
            refusal = self._refusal if kept else None  # only for the same batch, resent
            self._refusal = None
            if pending:
                settings = self.settings
                requests = split_encode(
                    pending,
                    settings.resource,
                    settings.encoding,
                    self.max_request_bytes,
                    self.receiver,
                )
                done: list[Trace] = []
                try:
                    for group, body in requests:
                        try:
                            self._send(group, body, deadline)
                        except OTLPRejectedError as exc:
                            refusal = refusal or exc
                        done.extend(group)
                except BaseException:
                    self._carry = kept + done
                    self._refusal = refusal
                    raise
            if refusal is not None:
                # Settled for good: should the same batch come again, it is not resent.
                self._carry = list(traces)
                self._refusal = refusal
                raise refusal

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self._closed.wait(seconds):
            raise OTLPExportError("the OTLP exporter was shut down while waiting to retry")

    def _send(self, group: list[Trace], body: bytes, deadline: float) -> None:
        data = gzip.compress(body, 6) if self.settings.compression == "gzip" else body
        while True:
            now = time.monotonic()
            if self._not_before > now:
                if self._not_before > deadline:
                    raise OTLPRetryableError(
                        "the receiver asked to wait (Retry-After) longer than the export timeout",
                        None,
                        self._not_before - now,
                    )
                self._wait(self._not_before - now)
                now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                raise OTLPExportError("the OTLP export timed out")
            self._count(requests=1, bytes_sent=len(data))
            try:
                response = self._transport.post(data, self._headers, remaining)
            except Exception as exc:
                self._count(failed_requests=1)
                if self._closed.is_set():
                    raise OTLPExportError("the OTLP exporter was shut down mid-request") from exc
                raise OTLPExportError(f"OTLP export to {self.endpoint} failed: {exc!r}") from exc
            status = response.status
            if 200 <= status < 300:
                self._delivered(group, response)
                return
            if status in RETRYABLE_STATUS:
                self._count(failed_requests=1)
                delay = parse_retry_after(response.headers.get("retry-after"))
                if delay is not None:  # "0" or a past date: still not a busy loop on a 429
                    delay = min(max(delay, _MIN_RETRY_AFTER_S), _MAX_RETRY_AFTER_S)
                    now = time.monotonic()
                    if now + delay < deadline and not self._closed.is_set():
                        self._count(retried_requests=1)
                        self._wait(delay)
                        continue
                    self._not_before = now + delay
                raise OTLPRetryableError(
                    f"OTLP receiver answered {status}{_excerpt(response)}", status, delay
                )
            self._rejected(group)
            raise OTLPRejectedError(
                f"OTLP receiver {self.endpoint} refused {len(group)} trace(s) with {status}"
                f"{_excerpt(response)}; final, not retried",
                status,
            )

    def _delivered(self, group: list[Trace], response: HttpResponse) -> None:
        spans = count_spans(group)
        rejected, message = rejected_spans(response.body, response.headers.get("content-type", ""))
        rejected = min(max(rejected, 0), spans)  # a receiver's count, not trusted past the request
        self._count(exported_traces=len(group), exported_spans=spans - rejected)
        if rejected:
            self._count(rejected_spans=rejected)
            log.warning(
                "lowtrace: OTLP receiver %s rejected %d of %d span(s): %s",
                self.endpoint,
                rejected,
                spans,
                message or "(no message)",
            )

    def _rejected(self, group: list[Trace]) -> None:
        # Not logged here: the pipeline logs the raised error once.
        self._count(rejected_traces=len(group), rejected_spans=count_spans(group))

    def shutdown(self) -> None:
        """Stop: cut an in-flight request short and refuse further exports. Never blocks."""
        self._closed.set()
        self._transport.abort()


def _tls_context(settings: OTLPSettings) -> ssl.SSLContext | None:
    """An SSL context from the OTEL_EXPORTER_OTLP_*CERTIFICATE/KEY files, if any are set."""
    if not settings.endpoint.startswith("https:"):
        return None
    if not (settings.certificate or settings.client_certificate):
        return None
    try:
        context = ssl.create_default_context(cafile=settings.certificate)
        if settings.client_certificate:
            context.load_cert_chain(settings.client_certificate, settings.client_key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgumentError(f"cannot load the OTLP TLS files: {exc}") from exc
    return context


def _excerpt(response: HttpResponse) -> str:
    """A short, printable excerpt of an error response body, for log messages."""
    text = response.body[:300].decode("utf-8", "replace").strip()
    text = "".join(c if c.isprintable() else " " for c in text)
    return f": {text}" if text else ""
