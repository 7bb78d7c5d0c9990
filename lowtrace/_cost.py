"""What a trace cost: token usage priced per model, from a price table you provide.

Prices are per million input and output tokens. Each model call counts once, with the same
rule as ``trace.info.token_usage`` (where a span and its descendant both report usage, only
the outermost counts); the model is the span's ``model`` attribute, which the integrations
set. Usage on a span without a known price is reported, not guessed. Prompt-cache tokens
(part of the input) are priced at the cache prices when the table gives them, else as
ordinary input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from lowtrace._records import SpanRecord, counted_usage_spans

if TYPE_CHECKING:
    from lowtrace._model import Trace

__all__ = ["ModelPrice", "PriceTable", "TraceCost", "estimate_cost", "price_table", "span_cost"]


@attrs.frozen
class ModelPrice:
    """Price of a model in currency units per million tokens.

    ``cache_read_per_million`` / ``cache_creation_per_million``: the price of input tokens
    read from / written to the prompt cache (None: priced as ordinary input).
    """

    input_per_million: float
    output_per_million: float
    cache_read_per_million: float | None = None
    cache_creation_per_million: float | None = None


#: Model name -> price, as ``estimate_cost`` accepts it.
PriceTable = Mapping[str, ModelPrice | tuple[float, ...]]


@attrs.frozen
class TraceCost:
    """The priced part of a trace's token usage, and what could not be priced."""

    total: float
    by_model: Mapping[str, float]
    unpriced_tokens: int  # tokens on spans with no model attribute or no price for it


def price_table(prices: PriceTable) -> dict[str, ModelPrice]:
    """The table with every entry as a ``ModelPrice`` (tuples are (input, output[, cache
    read[, cache creation]]) per 1M)."""
    return {
        name: price if isinstance(price, ModelPrice) else ModelPrice(*price)
        for name, price in prices.items()
    }


def span_cost(span: SpanRecord, table: Mapping[str, ModelPrice]) -> float | None:
    """What this span's own token usage cost, or None without usage or a price for its model."""
    usage = span.token_usage
    model = span.attributes.get("model")
    price = table.get(model) if isinstance(model, str) else None
    if usage is None or price is None:
        return None
    cost = usage.input_tokens * price.input_per_million
    for cached, rate in (
        (usage.cache_read_input_tokens, price.cache_read_per_million),
        (usage.cache_creation_input_tokens, price.cache_creation_per_million),
    ):
        if cached and rate is not None:
            cost += cached * (rate - price.input_per_million)  # instead of the input price
    return (cost + usage.output_tokens * price.output_per_million) / 1_000_000


def estimate_cost(trace: Trace, prices: PriceTable) -> TraceCost:
    """Price every model call of ``trace`` with ``prices`` (model name -> per-1M prices)."""
    table = price_table(prices)
    by_model: dict[str, float] = {}
    unpriced = 0
    for span in counted_usage_spans(trace.spans):
        cost = span_cost(span, table)
        if cost is None:
            assert span.token_usage is not None
            unpriced += span.token_usage.total_tokens
            continue
        model = str(span.attributes["model"])
        by_model[model] = by_model.get(model, 0.0) + cost
    return TraceCost(sum(by_model.values()), by_model, unpriced)
