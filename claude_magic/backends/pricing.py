"""An estimate of what a Messages API call cost, from a small table of list prices.

Prices are US dollars per million tokens (input, output), Anthropic's published list prices for
standard (non-batch) use. Cache writes cost 1.25x the input price (5-minute cache) or 2x (1-hour
cache), cache reads 0.1x. The table
is an estimate: it ignores discounts, batch pricing and long-context premiums, and a model not in
it gets ``None`` (unknown), never a guess. Claude Code reports its own cost; this is not used there.
"""

from __future__ import annotations

import re

from ..message import Usage

PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "claude-opus-4-6": (5.0, 25.0),
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4-0": (15.0, 75.0),
    "claude-opus-4": (15.0, 75.0),
    "claude-3-opus": (15.0, 75.0),
    "claude-sonnet-4-6": (3.0, 15.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-sonnet-4-0": (3.0, 15.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-3-5-sonnet": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
    "claude-3-haiku": (0.25, 1.25),
}
CACHE_WRITE_FACTOR = 1.25
CACHE_WRITE_1H_FACTOR = 2.0
CACHE_READ_FACTOR = 0.1
_SUFFIX = re.compile(r"(-\d{8}|-latest)$")


def price_of(model: str | None) -> tuple[float, float] | None:
    """(input, output) dollars per million tokens, or ``None`` for a model not in the table."""
    if not model:
        return None
    return PRICES_PER_MTOK.get(_SUFFIX.sub("", model.strip().lower()))


def estimate_cost(model: str | None, usage: Usage, hour_writes: int = 0) -> float | None:
    """Estimated dollars for one call, or ``None`` when the model's price is unknown.
    ``hour_writes`` of the cache-write tokens were written to the 1-hour cache (2x)."""
    price = price_of(model)
    if price is None:
        return None
    per_input, per_output = price[0] / 1e6, price[1] / 1e6
    hour = min(hour_writes, usage.cache_creation_input_tokens)
    return round(usage.input_tokens * per_input
                 + (usage.cache_creation_input_tokens - hour) * per_input * CACHE_WRITE_FACTOR
                 + hour * per_input * CACHE_WRITE_1H_FACTOR
                 + usage.cache_read_input_tokens * per_input * CACHE_READ_FACTOR
                 + usage.output_tokens * per_output, 10)
