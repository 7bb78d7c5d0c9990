"""Exporters: further destinations for finished traces (``TracingClient(exporters=[...])``).

``OTLPExporter`` sends them to any OpenTelemetry (OTLP/HTTP) receiver. It imports without
its extra; creating one without ``opentelemetry-proto`` raises ``MissingExtraError`` that
names ``pip install 'lowtrace[otlp]'``.
"""

from __future__ import annotations

from lowtrace.exporters.otlp import OTLPExporter, OTLPExporterStats

__all__ = ["OTLPExporter", "OTLPExporterStats"]
