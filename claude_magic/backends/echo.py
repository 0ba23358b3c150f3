"""The ``echo`` backend: offline, no model. Its answers say so in their first words."""

from __future__ import annotations

from collections.abc import Iterator

from ..blocks import describe
from .base import TurnRequest, TurnResult, split_words

LABEL = "[offline echo — no model was called"


def echo_text(prompt: str, reason: str | None = None) -> str:
    """``[offline echo — no model was called: <reason>] You said: <prompt>``."""
    label = f"{LABEL}: {reason}]" if reason else f"{LABEL}]"
    return f"{label} You said: {prompt}"


class EchoBackend:
    """Repeats the prompt, labelled as coming from no model; for demos and tests with no key."""

    name = "echo"

    def stream_turn(self, request: TurnRequest) -> Iterator[str | TurnResult]:
        prompt = request.prompt
        if request.blocks:  # say what else arrived: "[image image/png 640x480, 23 KB]"
            extra = [describe(b) for b in request.blocks if b["type"] != "text"]
            prompt = " ".join([*extra, prompt]) if extra else prompt
        yield from split_words(echo_text(prompt, request.offline_reason))
        yield TurnResult(model=None, stop_reason="end_turn", offline=True)
