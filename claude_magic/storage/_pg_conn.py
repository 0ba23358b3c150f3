"""A pooled connection to the PostgreSQL store: transactions, one-line errors, notifications
for other kernels, and the rows it cannot read (reported once as damaged entries, never
overwritten). :class:`~claude_magic.storage.postgres.PostgresStorage` builds the Storage
protocol on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from ..errors import DamagedSession, SessionNotFound, StorageError, ValueOutOfRange
from ..session import SessionSummary
from ..times import MonotonicClock
from . import _pg_text as text
from ._pg_assets import PostgresAssets
from ._pg_names import CHANNEL, SCHEMA
from ._pg_rows import GUARDED_COLUMNS, SESSION_COLUMNS, summary_of
from ._pg_schema import migrate
from ._pg_url import PostgresURL
from .base import DamagedEntry, DamageLog

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from ._pg_listen import Subscription

Scope = Literal["all", "mine", "team"]

_S = f"{SCHEMA}.sessions"
_SCOPES = {"all": "", "mine": "AND owner_role = current_user", "team": "AND visibility = 'team'"}
_DAMAGED = "unreadable row (bad id, JSON, time or total)"


def _driver() -> Any:
    """The psycopg module, or a one-line ``StorageError`` naming the extra to install."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
    except ImportError:
        raise StorageError('the PostgreSQL store needs psycopg 3: '
                           'pip install "claude-magic[postgres]"') from None
    return psycopg


def scope_filter(scope: Scope) -> str:
    """The ``WHERE`` clause part of a scope (``ValueError`` for an unknown one)."""
    try:
        return _SCOPES[scope]
    except KeyError:
        raise ValueError(f"scope must be 'all', 'mine' or 'team', got {scope!r}") from None


class PostgresConnection(PostgresAssets):
    """The store's pool, transactions, errors, notifications and damaged-row checks."""

    def __init__(self, url: str, *, owner: str | None = None, pool_size: int = 4,
                 timeout: float = 15.0) -> None:
        psycopg = _driver()
        from psycopg_pool import ConnectionPool

        self._url = PostgresURL.parse(url)
        self.location = self._url.shown
        self._owner = owner or os.environ.get("JUPYTERHUB_USER") or None
        self._token = uuid.uuid4().hex  # tells this object's own notifications apart
        self._clock = MonotonicClock()
        self._damage = DamageLog()
        self._subscriptions: list[Subscription] = []
        self._lock = threading.Lock()
        try:
            with psycopg.connect(self._url.conninfo, autocommit=True,
                                 connect_timeout=int(timeout)) as setup:
                migrate(setup, self._url.team_role, self.location)
                self._role: str = setup.execute("SELECT current_user").fetchone()[0]
        except psycopg.Error as exc:
            raise self._error(exc, "cannot open") from None
        self._pool: ConnectionPool = ConnectionPool(
            self._url.conninfo, min_size=1, max_size=pool_size, timeout=timeout,
            kwargs={"autocommit": True, "options": "-c TimeZone=UTC"},
            check=ConnectionPool.check_connection, name="claude_magic", open=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    # --- connections, transactions, errors ------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction on a pooled connection, rolled back on any error (``write=False``:
        no BEGIN/COMMIT, each statement is its own transaction: for reads)."""
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                if write:
                    with conn.transaction():
                        yield cur
                else:
                    yield cur
        except PoolTimeout:
            raise StorageError(f"cannot reach the PostgreSQL store {self.location} (no "
                               "connection within the timeout); check the server and try "
                               "again") from None
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._transaction(write=False) as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def _error(self, exc: Exception, doing: str = "failed") -> StorageError:
        """A one-line error for a driver error, the password scrubbed."""
        import psycopg

        message = self._url.scrub(str(exc)) or type(exc).__name__
        state = getattr(exc, "sqlstate", None)
        if state == "22003":
            return ValueOutOfRange(f"a total of the session would overflow ({message}); check "
                                   "the message's usage and cost, or start a new session")
        if state == "42501":
            return StorageError(f"PostgreSQL store {self.location}: permission denied "
                                f"({message}); an administrator grants "
                                f"{self._url.team_role} to this role")
        if isinstance(exc, psycopg.OperationalError):
            lost = "" if doing == "cannot open" else ("; the last write may not have been "
                                                      "saved, check and try again")
            return StorageError(f"PostgreSQL store {self.location}: connection problem "
                                f"({message}){lost}")
        return StorageError(f"PostgreSQL store {self.location} {doing}: {message}")

    def _notify(self, cur: psycopg.Cursor[Any], event: str, session_id: str | None, *,
                team: bool) -> None:
        """Tell other kernels, at commit; a private session's id is never broadcast."""
        payload = {"e": event, "by": self._token, "role": self._role,
                   "id": session_id if team else None}
        cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps(payload)))

    def _report(self, session_id: str, reason: str, where: str = "") -> DamagedEntry:
        return self._damage.report(f"{self.location}#{session_id}{where}", reason, session_id)

    def _report_unreadable(self, cur: psycopg.Cursor[Any]) -> list[DamagedEntry]:
        cur.execute(f"SELECT id FROM {_S} WHERE NOT readable ORDER BY id")
        return [self._report(str(row[0]), _DAMAGED) for row in cur.fetchall()]

    def _python_damaged(self, cur: psycopg.Cursor[Any], scope: Scope = "all"
                        ) -> dict[str, DamagedEntry]:
        """Rows SQL reads but Python refuses (a 5,000-digit number, JSON nested too deep),
        each reported once. Only rows ``plain`` cannot vouch for are read (a small index)."""
        cur.execute(f"SELECT {SESSION_COLUMNS} FROM {_S} WHERE readable AND NOT plain "
                    f"{scope_filter(scope)} ORDER BY id")
        bad = {}
        for row in cur.fetchall():
            try:
                summary_of(row)
            except (ValueError, TypeError) as exc:
                bad[row[0]] = self._report(str(row[0]), f"unreadable row ({exc})")
        return bad

    def _skipped(self, cur: psycopg.Cursor[Any], scope: Scope = "all") -> dict[str, DamagedEntry]:
        """Report every damaged row; return the ids in ``scope`` a listing must leave out."""
        self._report_unreadable(cur)
        return self._python_damaged(cur, scope)

    def _lock_own(self, cur: psycopg.Cursor[Any], session_id: str,
                  extra: str = "") -> tuple[Any, ...]:
        """Lock a session this role owns for a write; returns (shared with the team?,
        *``extra`` columns). SessionNotFound / DamagedSession / StorageError if not writable."""
        cur.execute(f"SELECT readable, plain, visibility = 'team'{extra} FROM {_S} "
                    "WHERE id = %s FOR UPDATE", (session_id,))
        row = cur.fetchone()
        if row is not None and row[0]:
            if not row[1]:
                self._header(cur, session_id)  # DamagedSession when Python refuses the row
            return row[2:]
        if row is not None:
            raise DamagedSession(str(session_id), self.location, _DAMAGED, kind="row")
        cur.execute(f"SELECT owner FROM {_S} WHERE id = %s", (session_id,))
        other = cur.fetchone()
        if other is None:
            raise SessionNotFound(str(session_id))
        raise StorageError(f"session {str(session_id)!r} belongs to {text.dec(other[0])}; only "
                           "its owner changes it (fork it to continue)")

    def _header(self, cur: psycopg.Cursor[Any], session_id: str) -> SessionSummary | None:
        cur.execute(f"SELECT {GUARDED_COLUMNS}, readable FROM {_S} WHERE id = %s",
                    (session_id,))
        row = cur.fetchone()
        if row is None:
            return None
        try:
            if not row[-1]:
                raise ValueError("bad id, JSON, time or total")
            return summary_of(row)
        except (ValueError, TypeError) as exc:
            raise DamagedSession(str(session_id), self.location,
                                 f"unreadable row ({exc})", kind="row") from None

    def close(self) -> None:
        """Stop this object's listeners and close its pool."""
        with self._lock:
            subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.stop()
        self._pool.close()
