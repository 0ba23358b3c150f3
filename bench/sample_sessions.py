"""The sessions the benchmarks fill their stores with: realistic sizes, deterministic content."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from claude_magic.message import Message, Usage
from claude_magic.session import Session, SessionId

PROJECTS = ["web-api", "data", "ml", "docs", "infra", "mobile", "research"]
START = datetime(2025, 1, 1, tzinfo=timezone.utc)


def session_id(i: int) -> str:
    return f"session-{i:05d}"


def sample_session(i: int, messages: int, session: str | None = None) -> Session:
    """Session ``i`` (id ``session-0000i`` unless given) with ``messages`` alternating
    questions and answers, metadata (project, owner, n, tags) and usage on the answers."""
    created = START + timedelta(minutes=i)
    history = []
    for j in range(messages):
        user = j % 2 == 0
        history.append(Message(
            "user" if user else "assistant",
            f"{'Question' if user else 'Answer'} {j} about topic {i % 97}: " + "lorem ipsum " * 12,
            created_at=created + timedelta(seconds=j),
            model=None if user else ("claude-sonnet-4-5" if i % 3 else "claude-opus-4-1"),
            usage=Usage() if user else Usage(200 + j, 80 + j), cost_usd=None if user else 0.002))
    updated = history[-1].created_at if history else created
    return Session(id=SessionId(session or session_id(i)),
                   system_prompt=f"You help with topic {i % 13}.",
                   metadata={"project": PROJECTS[i % 7], "owner": f"user{i % 11}", "n": i,
                             "tags": ["bench", f"t{i % 5}"]},
                   created_at=created, updated_at=updated, messages=history)
