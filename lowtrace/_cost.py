"""What a trace cost: token usage priced per model, from a price table you provide.

Prices are per million input and output tokens. Each model call counts once, with the same
rule as ``trace.info.token_usage`` (where a span and its descendant both report usage, only
the outermost counts); the model is the span's ``model`` attribute, which the integrations
set. Usage on a span without a known price is reported, not guessed.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from lowtrace._model import Trace, counted_usage_spans

__all__ = ["ModelPrice", "TraceCost", "estimate_cost"]


@attrs.frozen
class ModelPrice:
    """Price of a model in currency units per million tokens."""

    input_per_million: float
    output_per_million: float


@attrs.frozen
class TraceCost:
    """The priced part of a trace's token usage, and what could not be priced."""

    total: float
    by_model: Mapping[str, float]
    unpriced_tokens: int  # tokens on spans with no model attribute or no price for it


def estimate_cost(
    trace: Trace, prices: Mapping[str, ModelPrice | tuple[float, float]]
) -> TraceCost:
    """Price every model call of ``trace`` with ``prices`` (model name -> per-1M prices)."""
    table = {
        name: price if isinstance(price, ModelPrice) else ModelPrice(*price)
        for name, price in prices.items()
    }
    by_model: dict[str, float] = {}
    unpriced = 0
    for span in counted_usage_spans(trace.spans):
        usage = span.token_usage
        assert usage is not None
        model = span.attributes.get("model")
        price = table.get(model) if isinstance(model, str) else None
        if price is None:
            unpriced += usage.total_tokens
            continue
        cost = (
            usage.input_tokens * price.input_per_million
            + usage.output_tokens * price.output_per_million
        ) / 1_000_000
        by_model[str(model)] = by_model.get(str(model), 0.0) + cost
    return TraceCost(sum(by_model.values()), by_model, unpriced)
