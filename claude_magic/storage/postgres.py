"""PostgreSQL storage: a team's shared store (``postgresql://user@host/db``).

psycopg 3 with a connection pool; one transaction per logical write; parameterized SQL only.
The schema, its migrations, row-level security and the team role are in ``_pg_schema``;
the pool, transactions, errors and damaged-row checks in ``_pg_conn``.
Each session has an ``owner`` (``JUPYTERHUB_USER``, else the database role) and a
``visibility``: ``private`` (the default) or ``team``. PostgreSQL itself decides what a
connection may read (its own sessions and the team's) and write (its own). Every committed
write sends a ``NOTIFY``; :meth:`PostgresStorage.subscribe` follows other kernels' changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from ..errors import DamagedSession, StorageError
from ..message import Message, SessionStats, Status
from ..session import Session, SessionChanges, SessionId, SessionSummary
from . import _pg_text as text
from ._pg_assets import adopt_assets
from ._pg_conn import PostgresConnection, Scope, scope_filter
from ._pg_names import SCHEMA
from ._pg_rows import (
    INSERT_MESSAGE,
    LISTING_COLUMNS,
    MESSAGE_COLUMNS,
    SESSION_COLUMNS,
    message_of,
    message_row,
    summary_of,
    trusted_id,
)
from ._pg_schema import MESSAGE_OK, set_up
from ._pg_search import free_id, new_row
from .base import DamagedEntry, SummaryColumns

if TYPE_CHECKING:
    from ..search import Matcher, SearchHit

Visibility = Literal["private", "team"]
Callback = Callable[[str, "str | None"], None]

_S = f"{SCHEMA}.sessions"
_M = f"{SCHEMA}.messages"
_STATS = (", message_count, turns, input_tokens, output_tokens, cost_usd, "
          "last_model")
_NEWEST_FIRST = "ORDER BY updated_at DESC, id DESC"
#: A message's columns with its time read only when the row passes ``MESSAGE_OK``: psycopg
#: refuses ``infinity`` or a year past 9999 for the whole result, not for the one row.
_READ_MESSAGE = MESSAGE_COLUMNS.replace("created_at",
                                        f"CASE WHEN {MESSAGE_OK} THEN created_at END", 1)


@dataclass(frozen=True, slots=True)
class Sharing:
    """Who owns a session and who may read it."""

    owner: str
    visibility: Visibility
    mine: bool


class PostgresStorage(PostgresConnection):
    """Sessions in a PostgreSQL database, shared by a team."""

    # --- the Storage protocol -------------------------------------------------------------

    def create(self, session: Session, *, overwrite: bool = False,
               preserve_times: bool = False) -> Session:
        stored = session.checked_copy()
        if not preserve_times:
            stored.created_at = stored.updated_at = self._clock.now()
        stats = stored.stats
        row = (stored.id, self._owner, text.enc(stored.system_prompt),
               text.dumps(stored.metadata), text.dumps(stored.settings), stored.created_at,
               stored.updated_at, stats.message_count, stats.turns, stats.input_tokens,
               stats.output_tokens, stats.cost_usd, text.enc(stats.last_model))
        with self._transaction() as cur:
            free_id(cur, stored.id, overwrite)
            with new_row(cur, stored.id):
                cur.execute(f"INSERT INTO {_S} (id, owner, system_prompt, metadata_json, "
                            "settings_json, created_at, updated_at, message_count, turns, "
                            "input_tokens, output_tokens, cost_usd, last_model) VALUES "
                            "(%s, coalesce(%s, current_user), %s, %s, %s, %s, %s, %s, %s, "
                            "%s, %s, %s, %s)", row)
            cur.executemany(INSERT_MESSAGE,
                            [message_row(stored.id, m) for m in stored.messages])
            adopt_assets(cur, stored.messages)  # a fork of a teammate's images: our own copy
            self._notify(cur, "created", stored.id, team=False)
        return stored

    def load(self, session_id: SessionId) -> Session | None:
        with self._transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot
            summary = self._header(cur, session_id)
            if summary is None:
                return None
            cur.execute(f"SELECT {_READ_MESSAGE}, {MESSAGE_OK} FROM {_M} "
                        "WHERE session_id = %s ORDER BY seq", (session_id,))
            rows = cur.fetchall()
        messages = []
        for row in rows:
            try:
                if not row[-1]:
                    raise ValueError("bad role, status, time or count")
                messages.append(message_of(row))
            except (ValueError, TypeError) as exc:
                self._report(str(session_id), f"unreadable message ({exc})", f":{row[0]}")
        return Session(summary.id, summary.system_prompt, summary.metadata, summary.created_at,
                       summary.updated_at, messages, summary.settings)

    def summary(self, session_id: SessionId) -> SessionSummary | None:
        with self._transaction(write=False) as cur:
            return self._header(cur, session_id)

    def exists(self, session_id: SessionId) -> bool:
        return bool(self._read(f"SELECT 1 FROM {_S} WHERE id = %s", (session_id,)))

    def update(self, session_id: SessionId, changes: SessionChanges) -> None:
        with self._transaction() as cur:
            team, = self._lock_own(cur, session_id)
            summary = self._header(cur, session_id)
            assert summary is not None  # locked above
            session = Session(summary.id, summary.system_prompt, summary.metadata,
                              summary.created_at, summary.updated_at, [], summary.settings)
            changes.apply(session, self._clock.now())
            cur.execute(f"UPDATE {_S} SET system_prompt = %s, metadata_json = %s, "
                        "settings_json = %s, updated_at = %s WHERE id = %s",
                        (text.enc(session.system_prompt), text.dumps(session.metadata),
                         text.dumps(session.settings), session.updated_at, session_id))
            self._notify(cur, "updated", session_id, team=team)

    def append(self, session_id: SessionId, message: Message) -> Message:
        stored = message.copy()  # checks every field: a bad message is refused here
        with self._transaction() as cur:
            team, *totals = self._lock_own(cur, session_id, _STATS)
            try:
                stats = SessionStats(*totals[:-1], text.dec(totals[-1]))
            except (TypeError, ValueError) as exc:
                raise DamagedSession(str(session_id), self.location,
                                     f"unreadable totals ({exc})", kind="row") from None
            stats.add(stored)  # ValueOutOfRange, nothing written, when a total would overflow
            cur.execute(f"SELECT coalesce(max(seq) + 1, 0) FROM {_M} WHERE session_id = %s",
                        (session_id,))
            stored.seq = cur.fetchone()[0]  # type: ignore[index]
            cur.execute(INSERT_MESSAGE, message_row(session_id, stored))
            adopt_assets(cur, [stored])
            cur.execute(
                f"UPDATE {_S} SET updated_at = %s, message_count = %s, turns = %s, "
                "input_tokens = %s, output_tokens = %s, cost_usd = %s, last_model = %s "
                "WHERE id = %s",
                (self._clock.now(), stats.message_count, stats.turns, stats.input_tokens,
                 stats.output_tokens, stats.cost_usd, text.enc(stats.last_model), session_id))
            self._notify(cur, "appended", session_id, team=team)
        return stored.copy()

    def mark(self, session_id: SessionId, seq: int, status: Status,
             error: str | None = None) -> None:
        """:meth:`set_hashes` with no hash: one message's status and error."""
        self.set_hashes(session_id, {}, (seq, status, error))

    def delete(self, session_id: SessionId, *, if_updated_at: datetime | None = None) -> bool:
        """Remove one of this role's sessions. Another member's session: ``StorageError``, or
        ``False`` with ``if_updated_at`` (so ``prune`` passes over the team's sessions)."""
        with self._transaction() as cur:
            cur.execute(f"SELECT owner_role = current_user, owner FROM {_S} WHERE id = %s",
                        (session_id,))
            found = cur.fetchone()
            if found is not None and not found[0]:
                if if_updated_at is not None:
                    return False
                raise StorageError(f"session {str(session_id)!r} belongs to "
                                   f"{text.dec(found[1])}; only its owner deletes it")
            if if_updated_at is None:
                cur.execute(f"DELETE FROM {_S} WHERE id = %s RETURNING visibility",
                            (session_id,))
            else:
                cur.execute(f"DELETE FROM {_S} WHERE id = %s AND updated_at = %s "
                            "RETURNING visibility", (session_id, if_updated_at))
            gone = cur.fetchone()
            if gone is not None:
                self._notify(cur, "deleted", session_id, team=gone[0] == "team")
        return gone is not None

    def clear(self) -> int:
        """Remove every readable session of this role (the team's stay)."""
        with self._transaction() as cur:
            keep = list(self._python_damaged(cur, "mine"))
            cur.execute(f"DELETE FROM {_S} WHERE readable AND owner_role = current_user "
                        "AND NOT (id = ANY(%s))", (keep,))
            count = cur.rowcount
            self._notify(cur, "cleared", None, team=True)
        return count

    def list_ids(self, *, scope: Scope = "all") -> list[SessionId]:
        """Ids of readable sessions this role may see (``mine``, ``team`` or ``all``)."""
        with self._transaction(write=False) as cur:
            bad = self._skipped(cur, scope)
            cur.execute(f"SELECT id FROM {_S} WHERE readable {scope_filter(scope)} {_NEWEST_FIRST}")
            rows = cur.fetchall()
        new = str.__new__
        return [new(SessionId, row[0]) for row in rows if not bad or row[0] not in bad]

    def summaries(self, *, scope: Scope = "all") -> list[SessionSummary]:
        with self._transaction(write=False) as cur:
            self._report_unreadable(cur)
            cur.execute(f"SELECT {SESSION_COLUMNS} FROM {_S} WHERE readable {scope_filter(scope)} "
                        f"{_NEWEST_FIRST}")
            rows = cur.fetchall()
        result = []
        for row in rows:
            try:
                result.append(summary_of(row))
            except (ValueError, TypeError) as exc:
                self._report(str(row[0]), f"unreadable row ({exc})")
        return result

    def summary_columns(self, *, scope: Scope = "all") -> SummaryColumns:
        """One query, column by column; metadata parsed in one ``json.loads`` of them all."""
        with self._transaction(write=False) as cur:
            bad = self._skipped(cur, scope)
            cur.execute(f"SELECT {LISTING_COLUMNS} FROM {_S} WHERE readable {scope_filter(scope)} "
                        f"{_NEWEST_FIRST}")
            rows = cur.fetchall()
        if bad:
            rows = [row for row in rows if row[0] not in bad]
        columns: list[Any] = ([list(column) for column in zip(*rows, strict=True)]
                              or [[] for _ in range(11)])
        try:
            columns[2] = json.loads(text.json_text(f"[{','.join(columns[2])}]"))
        except (TypeError, ValueError):
            return SummaryColumns.of(self.summaries(scope=scope))
        for index in (1, 10):  # prompts and models with an escaped NUL (rare)
            if any(value and text.ESC in value for value in columns[index]):
                columns[index] = [text.dec(value) for value in columns[index]]
        return SummaryColumns(*columns)

    def count(self, *, scope: Scope = "all") -> int:
        with self._transaction(write=False) as cur:
            bad = self._skipped(cur, scope)
            cur.execute(f"SELECT count(*) FROM {_S} WHERE readable {scope_filter(scope)}")
            return cur.fetchone()[0] - len(bad)  # type: ignore[index]

    def damaged(self) -> list[DamagedEntry]:
        """Rows that cannot be read: sessions, and messages of readable sessions."""
        with self._transaction(write=False) as cur:
            entries = self._report_unreadable(cur) + list(self._python_damaged(cur).values())
            cur.execute(f"SELECT session_id, seq FROM {_M} m WHERE NOT ({MESSAGE_OK}) "
                        "ORDER BY session_id, seq")
            rows = cur.fetchall()
        entries += [self._report(str(sid), "unreadable message", f":{seq}") for sid, seq in rows]
        return entries

    # --- owners, visibility, live updates -------------------------------------------------

    def search(self, matcher: Matcher, limit: int, session_ids: list[str] | None
               ) -> list[SearchHit]:
        """Full-text hits over what this role may read (``tsvector`` columns, GIN indexes)."""
        from ._pg_search import search

        with self._transaction(write=False) as cur:
            return search(cur, matcher, limit, session_ids, MESSAGE_OK)

    def rename(self, old: SessionId, new: SessionId, overwrite: bool) -> None:
        """Give one of this role's sessions another id, in one transaction."""
        from ._pg_search import rename

        with self._transaction() as cur:
            team, = self._lock_own(cur, old)
            rename(cur, old, new, overwrite)
            self._notify(cur, "deleted", old, team=team)
            self._notify(cur, "created", new, team=team)

    def set_hashes(self, session_id: SessionId, hashes: Mapping[int, str],
                   mark: tuple[int, Status, str | None] | None = None) -> None:
        """Write the chain hash (``ids.hash``) of the given messages, and with ``mark`` a
        message's status and error, in one transaction."""
        from ._pg_search import set_hashes

        with self._transaction() as cur:
            team, = self._lock_own(cur, session_id)
            set_hashes(cur, session_id, hashes, mark)
            if mark is not None:
                cur.execute(f"UPDATE {_S} SET updated_at = %s WHERE id = %s",
                            (self._clock.now(), session_id))
                self._notify(cur, "marked", session_id, team=team)

    def set_visibility(self, session_id: SessionId, visibility: Visibility) -> None:
        """Share a session with the team (``"team"``) or make it ``"private"`` again."""
        if visibility not in ("private", "team"):
            raise ValueError(f"visibility must be 'private' or 'team', got {visibility!r}")
        with self._transaction() as cur:
            was_team, = self._lock_own(cur, SessionId(session_id))
            cur.execute(f"UPDATE {_S} SET visibility = %s WHERE id = %s",
                        (visibility, session_id))
            self._notify(cur, "updated", session_id, team=was_team or visibility == "team")

    def sharing(self, *, scope: Scope = "all") -> dict[SessionId, Sharing]:
        """Owner and visibility of every session this role may see."""
        rows = self._read(f"SELECT id, owner, visibility, owner_role = current_user FROM {_S} "
                          f"WHERE readable {scope_filter(scope)} {_NEWEST_FIRST}")
        return {trusted_id(r[0]): Sharing(text.dec(r[1]) or "", r[2], r[3]) for r in rows}

    def setup(self) -> str:
        """Create or repair the schema, policies and team role explicitly (``storage SPEC
        --init``): the database owner only, else a one-line ``StorageError``."""
        import psycopg

        try:
            with psycopg.connect(self._url.conninfo, autocommit=True) as conn:
                return set_up(conn, self._url.team_role, self.location)
        except psycopg.Error as exc:
            raise self._error(exc, "cannot be set up") from None

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(event, session_id)`` for changes other store objects commit (other
        kernels, processes), from a listener thread; returns a function that stops it.

        ``session_id`` is ``None`` for ``cleared`` and for changes to private sessions (their
        ids are not broadcast): reload everything then."""
        from ._pg_listen import Subscription

        subscription = Subscription(self._url, self._token, callback)
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription.stop

