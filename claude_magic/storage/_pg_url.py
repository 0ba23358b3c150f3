"""PostgreSQL store URLs: the team-role option, and the password masked wherever shown.

No driver import here: :class:`~claude_magic.storage.StorageBackend` uses this to show a
``postgresql://`` spec without its password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from ..errors import StorageError

SCHEMES = ("postgresql://", "postgres://")
DEFAULT_TEAM_ROLE = "claude_magic_team"
_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}\Z")
_PASSWORD_PARAM = re.compile(r"(?i)(password=)[^&\s]*")


def is_postgres_url(text: str) -> bool:
    return text.startswith(SCHEMES)


def mask(url: str) -> str:
    """``url`` with any password replaced by ``***`` (in the user part or a query option)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hostinfo}"
    query = _PASSWORD_PARAM.sub(r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def password_of(url: str) -> str | None:
    """The password a URL carries (to scrub it from driver messages), or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.password:
        return unquote(parts.password)
    for key, value in parse_qsl(parts.query):
        if key == "password":
            return value
    return None


@dataclass(frozen=True, slots=True)
class PostgresURL:
    """A store URL split into what libpq gets and what claude_magic keeps for itself."""

    conninfo: str = field(repr=False)  # passed to libpq (our own options removed)
    team_role: str
    shown: str  # masked: safe for repr, errors, the panel and logs
    password: str | None = field(repr=False)

    @classmethod
    def parse(cls, url: str) -> PostgresURL:
        """Split ``url``; a bad ``team_role`` is a one-line StorageError."""
        if not is_postgres_url(url):
            raise StorageError(f"not a PostgreSQL URL: {mask(url)!r}; use "
                               "postgresql://user@host/database")
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        team_role = DEFAULT_TEAM_ROLE
        kept = []
        for key, value in query:
            if key == "team_role":
                team_role = value
            else:
                kept.append((key, value))
        if not _ROLE_NAME.match(team_role):
            raise StorageError(f"team_role {team_role!r} is not a plain role name; use letters, "
                               "digits and '_' (e.g. claude_magic_team)")
        conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path,
                               urlencode(kept, quote_via=quote, safe="/"), parts.fragment))
        shown = mask(url)
        return cls(conninfo, team_role, shown, password_of(url))

    def scrub(self, text: str) -> str:
        """``text`` (a driver message) with the password removed, on one line."""
        if self.password:
            text = text.replace(self.password, "***")
        return " ".join(line.strip() for line in text.splitlines() if line.strip())
