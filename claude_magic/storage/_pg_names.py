"""Names the PostgreSQL store's modules share: its schema and its NOTIFY channel."""

SCHEMA = "claude_magic"
CHANNEL = "claude_magic"
