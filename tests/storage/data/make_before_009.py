"""How data/before_009.db was made, by claude_magic before migration 009 (commit 116f124; it
needs that code). Run: python make_before_009.py before_009.db"""
import base64
import sqlite3
import sys
from datetime import datetime, timezone

from claude_magic import SessionManager
from claude_magic.message import Message, Usage

path = sys.argv[1]
T = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"x" * 40).decode()
with SessionManager(f"sqlite:///{path}") as m:
    m.create_session("chat").with_system_prompt("Be brief.").with_metadata("project", "p").build()
    m.append("chat", Message("user", "What is 2+2? Zoë 🦀", created_at=T))
    m.append("chat", Message("assistant", "4", created_at=T, model="claude-sonnet-4-5",
                             backend="anthropic", usage=Usage(12, 5, 3, 7), cost_usd=0.000111,
                             stop_reason="end_turn", duration_ms=812.5,
                             ids={"message_id": "msg_01", "request_id": "req_9"}))
    m.append("chat", Message("user", [{"type": "text", "text": "and this image?"},
                                      {"type": "image", "source": {"type": "base64",
                                       "media_type": "image/png", "data": png}}], created_at=T))
    m.append("chat", Message("assistant", "a picture", created_at=T, status="incomplete",
                             duration_ms=3, usage=Usage(1, 2)))
    m.append("chat", Message("user", "fails", created_at=T))
    m.mark("chat", 4, "error", "the API said no")
    m.create_session("other").build()
    m.append("other", Message("user", "hello other", created_at=T))
db = sqlite3.connect(path)
with db:  # planted by another tool: one row old claude_magic reported as damaged
    db.execute("INSERT INTO messages (session_id, seq, role, content, created_at, extra) VALUES "
               "('other', 1, 'assistant', 'planted', '2025-03-01T12:00:00.000000+00:00', "
               "'{\"usage\": {\"input_tokens\": \"many\"}}')")
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.execute("VACUUM")
db.close()
