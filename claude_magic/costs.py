"""How a session's cost reads, the same in ``list``, ``show`` and the session browser."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .message import SessionStats

UNKNOWN = "—"


def known_cost(stats: SessionStats) -> float | None:
    """The session's cost in USD, or ``None`` when a model answered but reported no cost
    (a model without a price in our table): a model's answers are never free. Sessions
    answered only offline (echo, replay), or not at all, cost ``0.0``."""
    if stats.cost_usd == 0.0 and stats.turns and stats.last_model:
        return None
    return stats.cost_usd


def cost_text(stats: SessionStats) -> str:
    """``—`` when unknown, ``$0.00`` when free, else dollars to four decimals (``$0.0123``)."""
    cost = known_cost(stats)
    if cost is None:
        return UNKNOWN
    return "$0.00" if cost == 0.0 else f"${cost:.4f}"
