"""OTLP exporter settings from arguments and the ``OTEL_*`` environment variables.

Follows the OpenTelemetry "OTLP Exporter Configuration" spec: an argument beats the
trace-specific variable, which beats the generic one, which beats the default. The
trace-specific endpoint is used as is; the generic one is a base URL to which
``/v1/traces`` is appended. Header lists are ``key=value`` pairs separated by commas, with
percent-encoded keys and values. Timeouts in the environment are milliseconds. TLS files
(``..._CERTIFICATE``, ``..._CLIENT_CERTIFICATE``, ``..._CLIENT_KEY``) apply to https only.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

import attrs

from lowtrace.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_SERVICE_NAME",
    "DEFAULT_TIMEOUT_S",
    "OTLPSettings",
    "parse_key_values",
    "resolve_settings",
]

log = logging.getLogger("lowtrace")

DEFAULT_ENDPOINT: Final = "http://localhost:4318/v1/traces"
DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_SERVICE_NAME: Final = "lowtrace"
_PREFIX: Final = "OTEL_EXPORTER_OTLP_"
_COMPRESSIONS: Final = ("gzip", "none")
_ENCODINGS: Final = {"http/protobuf": "protobuf", "http/json": "json"}


@attrs.frozen
class OTLPSettings:
    """Everything the exporter needs to know, resolved once at construction."""

    endpoint: str
    headers: Mapping[str, str]
    compression: str  # "gzip" or "none"
    timeout_s: float
    encoding: str  # "protobuf" or "json"
    resource: Mapping[str, Any]
    certificate: str | None = None  # CA bundle (PEM) to verify an https receiver
    client_certificate: str | None = None  # client certificate (PEM) for mutual TLS
    client_key: str | None = None  # its private key (PEM)


def parse_key_values(text: str | None, what: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` (percent-encoded, whitespace trimmed) as a dict; bad items are skipped."""
    out: dict[str, str] = {}
    if not text:
        return out
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = urllib.parse.unquote(key.strip())
        if not sep or not key:
            log.warning("lowtrace: ignoring malformed entry %r in %s", item.strip(), what)
            continue
        out[key] = urllib.parse.unquote(value.strip())
    return out


def _env(env: Mapping[str, str], name: str) -> str | None:
    """The trace-specific variable, else the generic one (both stripped), else None."""
    for key in (f"{_PREFIX}TRACES_{name}", f"{_PREFIX}{name}"):
        value = env.get(key, "").strip()
        if value:
            return value
    return None


def _endpoint(endpoint: str | None, env: Mapping[str, str]) -> str:
    if endpoint is None:
        traces = env.get(f"{_PREFIX}TRACES_ENDPOINT", "").strip()
        base = env.get(f"{_PREFIX}ENDPOINT", "").strip()
        if traces:
            endpoint = traces
        elif base:
            endpoint = base.rstrip("/") + "/v1/traces"
        else:
            endpoint = DEFAULT_ENDPOINT
    if not isinstance(endpoint, str):
        raise InvalidArgumentError(f"endpoint must be a str URL, got {endpoint!r}")
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(f"OTLP endpoint must be an http(s) URL, got {endpoint!r}")
    return endpoint


def _compression(compression: str | None, env: Mapping[str, str]) -> str:
    if compression is not None:
        value = str(compression).strip().lower()
        if value not in _COMPRESSIONS:
            raise InvalidArgumentError(f"compression must be 'gzip' or 'none', got {compression!r}")
        return value
    value = (_env(env, "COMPRESSION") or "none").lower()
    if value not in _COMPRESSIONS:
        log.warning(
            "lowtrace: unsupported OTLP compression %r in the environment; using none", value
        )
        return "none"
    return value


def _timeout(timeout: float | None, env: Mapping[str, str]) -> float:
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise InvalidArgumentError(f"timeout must be a positive number of seconds: {timeout!r}")
        return float(timeout)
    raw = _env(env, "TIMEOUT")
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        millis = float(raw)
    except ValueError:
        millis = -1.0
    if not millis > 0:
        log.warning("lowtrace: ignoring invalid OTEL_EXPORTER_OTLP_TIMEOUT %r", raw)
        return DEFAULT_TIMEOUT_S
    return millis / 1000.0


def _encoding(encoding: str | None, env: Mapping[str, str]) -> str:
    if encoding is not None:
        if encoding not in ("protobuf", "json"):
            raise InvalidArgumentError(f"encoding must be 'protobuf' or 'json', got {encoding!r}")
        return encoding
    protocol = (_env(env, "PROTOCOL") or "http/protobuf").lower()
    if protocol not in _ENCODINGS:
        log.warning(
            "lowtrace: OTLP protocol %r is not supported by OTLPExporter; using http/protobuf",
            protocol,
        )
        return "protobuf"
    return _ENCODINGS[protocol]


def resolve_settings(
    endpoint: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    compression: str | None = None,
    encoding: str | None = None,
    service_name: str | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> OTLPSettings:
    """Settings from the arguments, then the environment, then the spec's defaults."""
    env = os.environ if env is None else env
    merged = parse_key_values(env.get(f"{_PREFIX}HEADERS"), f"{_PREFIX}HEADERS")
    merged.update(parse_key_values(env.get(f"{_PREFIX}TRACES_HEADERS"), "..._TRACES_HEADERS"))
    if headers is not None:
        try:
            items = list(headers.items())
        except AttributeError:
            raise InvalidArgumentError(f"headers must be a mapping, got {headers!r}") from None
        for key, value in items:
            if not isinstance(key, str) or not isinstance(value, str) or not key:
                raise InvalidArgumentError(f"header names and values must be str: {key!r}")
            merged[key] = value
    final_headers: dict[str, str] = {}
    for key, value in merged.items():
        if any(c in key + value for c in "\r\n\0"):
            raise InvalidArgumentError(f"header {key!r} contains a line break or NUL")
        final_headers[key.lower()] = value

    resource: dict[str, Any] = dict(
        parse_key_values(env.get("OTEL_RESOURCE_ATTRIBUTES"), "OTEL_RESOURCE_ATTRIBUTES")
    )
    if resource_attributes:
        resource.update(resource_attributes)
    name = service_name or env.get("OTEL_SERVICE_NAME", "").strip() or resource.get("service.name")
    resource["service.name"] = str(name) if name else DEFAULT_SERVICE_NAME
    return OTLPSettings(
        endpoint=_endpoint(endpoint, env),
        headers=final_headers,
        compression=_compression(compression, env),
        timeout_s=_timeout(timeout, env),
        encoding=_encoding(encoding, env),
        resource=resource,
        certificate=_env(env, "CERTIFICATE"),
        client_certificate=_env(env, "CLIENT_CERTIFICATE"),
        client_key=_env(env, "CLIENT_KEY"),
    )
