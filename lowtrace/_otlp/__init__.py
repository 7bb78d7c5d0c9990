"""OTLP internals: settings, semantic-convention mapping, encoding, HTTP transport."""

__all__: list[str] = []
