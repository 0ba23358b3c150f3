"""The PostgreSQL store's schema: ordered migrations, row-level security and the team role.

Everything lives in the ``claude_magic`` schema. Migrations are recorded in
``claude_magic.migrations`` and applied by the database owner under
``pg_advisory_xact_lock``, so several kernels opening a new store at once are safe. Row-level
security is forced on both tables (the owner's own connections obey it too): a role reads its
own sessions and those shared with the team, and writes only its own. Members get table
privileges through the group role, never ownership.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..checks import MAX_DEPTH
from ..errors import StorageError
from ..session import _RESERVED
from ._pg_names import SCHEMA

if TYPE_CHECKING:
    import psycopg

#: ``pg_advisory_xact_lock`` key: the bytes "cmagic01" as a bigint.
LOCK_KEY = int.from_bytes(b"cmagic01", "big") - 2**63

_RESERVED_SQL = ", ".join(f"'{name}'" for name in sorted(_RESERVED))
#: The rules of :class:`~claude_magic.session.SessionId`, in SQL (a test checks they agree).
ID_OK = (
    "(id COLLATE \"C\" ~ '^[A-Za-z0-9_]([A-Za-z0-9._-]{0,126}[A-Za-z0-9_-])?$' "
    "AND strpos(id, '..') = 0 "
    f"AND lower(split_part(id, '.', 1)) NOT IN ({_RESERVED_SQL}))"
)
_TIME_RANGE = ("BETWEEN '0001-01-02 00:00:00+00'::timestamptz "
               "AND '9999-12-30 23:59:59.999999+00'::timestamptz")
_FINITE = "NOT IN ('Infinity'::float8, '-Infinity'::float8, 'NaN'::float8)"
READABLE = (
    f"coalesce({ID_OK} AND json_typeof(metadata_json) = 'object' "
    f"AND json_typeof(settings_json) = 'object' AND created_at {_TIME_RANGE} "
    f"AND updated_at {_TIME_RANGE} AND message_count >= 0 AND turns >= 0 "
    f"AND input_tokens >= 0 AND output_tokens >= 0 AND cost_usd {_FINITE}, false)"
)
#: A message row the store can read (checked when loading; others are reported and skipped).
MESSAGE_OK = (
    f"coalesce(role IN ('user', 'assistant') AND status IN ('ok', 'error', 'incomplete') "
    f"AND created_at {_TIME_RANGE} AND json_typeof(ids) = 'object' AND input_tokens >= 0 "
    "AND output_tokens >= 0 AND cache_creation_input_tokens >= 0 "
    f"AND cache_read_input_tokens >= 0 AND coalesce(cost_usd {_FINITE}, true) "
    f"AND coalesce(duration_ms {_FINITE}, true) "
    "AND coalesce(json_typeof(blocks) = 'array', true), false)"
)

_M001 = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE {SCHEMA}.sessions (
    id            text PRIMARY KEY,
    owner         text NOT NULL DEFAULT current_user,
    owner_role    text NOT NULL DEFAULT current_user,
    visibility    text NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'team')),
    system_prompt text,
    metadata_json json NOT NULL DEFAULT '{{}}',
    metadata      jsonb GENERATED ALWAYS AS (metadata_json::jsonb) STORED,
    settings_json json NOT NULL DEFAULT '{{}}',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    message_count bigint NOT NULL DEFAULT 0,
    turns         bigint NOT NULL DEFAULT 0,
    input_tokens  bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    cost_usd      double precision NOT NULL DEFAULT 0,
    last_model    text,
    readable      boolean GENERATED ALWAYS AS ({READABLE}) STORED
);
CREATE INDEX sessions_listing ON {SCHEMA}.sessions (updated_at DESC, id DESC)
    INCLUDE (owner_role, visibility) WHERE readable;
CREATE INDEX sessions_metadata ON {SCHEMA}.sessions USING gin (metadata jsonb_path_ops);
CREATE TABLE {SCHEMA}.messages (
    session_id    text NOT NULL REFERENCES {SCHEMA}.sessions (id) ON DELETE CASCADE,
    seq           bigint NOT NULL,
    role          text NOT NULL,
    content       text NOT NULL,
    created_at    timestamptz NOT NULL,
    status        text NOT NULL DEFAULT 'ok',
    error         text,
    model         text,
    backend       text,
    input_tokens  bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    cache_creation_input_tokens bigint NOT NULL DEFAULT 0,
    cache_read_input_tokens     bigint NOT NULL DEFAULT 0,
    cost_usd      double precision,
    stop_reason   text,
    duration_ms   double precision,
    ids           json NOT NULL DEFAULT '{{}}',
    PRIMARY KEY (session_id, seq)
);
ALTER TABLE {SCHEMA}.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE {SCHEMA}.sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE {SCHEMA}.messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE {SCHEMA}.messages FORCE ROW LEVEL SECURITY;
CREATE POLICY sessions_read ON {SCHEMA}.sessions FOR SELECT
    USING (owner_role = current_user OR visibility = 'team');
CREATE POLICY sessions_insert ON {SCHEMA}.sessions FOR INSERT
    WITH CHECK (owner_role = current_user);
CREATE POLICY sessions_update ON {SCHEMA}.sessions FOR UPDATE
    USING (owner_role = current_user) WITH CHECK (owner_role = current_user);
CREATE POLICY sessions_delete ON {SCHEMA}.sessions FOR DELETE
    USING (owner_role = current_user);
CREATE POLICY messages_read ON {SCHEMA}.messages FOR SELECT
    USING (EXISTS (SELECT 1 FROM {SCHEMA}.sessions s WHERE s.id = session_id));
CREATE POLICY messages_write ON {SCHEMA}.messages FOR ALL
    USING (EXISTS (SELECT 1 FROM {SCHEMA}.sessions s
                   WHERE s.id = session_id AND s.owner_role = current_user))
    WITH CHECK (EXISTS (SELECT 1 FROM {SCHEMA}.sessions s
                        WHERE s.id = session_id AND s.owner_role = current_user));
"""


def _m001_initial(cur: psycopg.Cursor[Any]) -> None:
    cur.execute(_M001)


def _plain_json(column: str) -> str:
    """No text that might hold a value Python refuses: a digit run past 64 bits, a float
    exponent past its range, an escaped UTF-16 surrogate, more brackets than nesting allows
    (as SQLite's ``plain`` column)."""
    text = f"{column}::text"
    return (f"{text} !~ '[0-9]{{19}}' AND {text} !~ '[eE][-+]?[0-9]{{3}}' "
            f"AND {text} !~ '\\\\u[dD][89a-fA-F]' "
            f"AND length({text}) - length(translate({text}, '[{{', '')) <= {MAX_DEPTH}")


#: Rows SQL can vouch for: Python reads their JSON for sure. The others (``readable`` but
#: not ``plain``: big numbers, deep JSON) are checked in Python; the few that fail are damaged.
PLAIN = f"coalesce({_plain_json('metadata_json')} AND {_plain_json('settings_json')}, false)"


def _m002_plain(cur: psycopg.Cursor[Any]) -> None:
    """``plain``, and small indexes for the rows listing must look at more closely."""
    cur.execute(f"ALTER TABLE {SCHEMA}.sessions ADD COLUMN plain boolean "
                f"GENERATED ALWAYS AS ({PLAIN}) STORED")
    cur.execute(f"CREATE INDEX sessions_suspect ON {SCHEMA}.sessions (id) "
                "WHERE readable AND NOT plain")
    cur.execute(f"CREATE INDEX sessions_unreadable ON {SCHEMA}.sessions (id) WHERE NOT readable")


def _m003_blocks(cur: psycopg.Cursor[Any]) -> None:
    """``blocks``: a message's content blocks (text, images, thinking, tools) as JSON; its
    ``content`` then holds the text blocks joined."""
    cur.execute(f"ALTER TABLE {SCHEMA}.messages ADD COLUMN blocks json")


def _m004_assets(cur: psycopg.Cursor[Any]) -> None:
    """``assets``: images and PDFs once per owner and SHA-256, with row-level security
    (storage/_pg_assets.py)."""
    from ._pg_assets import ASSETS_SQL

    cur.execute(ASSETS_SQL)


def _m005_search(cur: psycopg.Cursor[Any]) -> None:
    """Full-text search: generated ``tsvector`` columns with GIN indexes (_pg_search.py)."""
    from ._pg_search import m005_search

    m005_search(cur)


#: Ordered migrations; append new ones, never edit or reorder released ones.
MIGRATIONS: tuple[tuple[str, Callable[[psycopg.Cursor[Any]], None]], ...] = (
    ("001_initial", _m001_initial),
    ("002_plain", _m002_plain),
    ("003_blocks", _m003_blocks),
    ("004_assets", _m004_assets),
    ("005_search", _m005_search),
)


def _applied(cur: psycopg.Cursor[Any]) -> set[str] | None:
    """Names of applied migrations, or None when the store has never been set up here."""
    # pg_class read by a query, not to_regclass(): the catalog cache may still remember the
    # table as missing after another kernel created it while this one waited for the lock
    cur.execute("SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = 'migrations'",
                (SCHEMA,))
    if cur.fetchone() is None:
        return None
    cur.execute(f"SELECT name FROM {SCHEMA}.migrations")
    return {row[0] for row in cur.fetchall()}


def _may_set_up(cur: psycopg.Cursor[Any]) -> bool:
    """Whether this role owns the store's schema (or, before it exists, the database)."""
    cur.execute(
        "SELECT pg_has_role(current_user, coalesce("
        "(SELECT nspowner FROM pg_namespace WHERE nspname = %s), "
        "(SELECT datdba FROM pg_database WHERE datname = current_database())), 'MEMBER')",
        (SCHEMA,))
    return bool(cur.fetchone()[0])  # type: ignore[index]


def _grant_team(cur: psycopg.Cursor[Any], team_role: str) -> None:
    """Create the group role when missing and grant it what members need (idempotent)."""
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (team_role,))
    if cur.fetchone() is None:
        cur.execute("SELECT rolcreaterole OR rolsuper, current_user FROM pg_roles "
                    "WHERE rolname = current_user")
        may_create, role = cur.fetchone()  # type: ignore[misc]
        if not may_create:
            raise StorageError(
                f"cannot create the group role {team_role}: {role} may not create roles; an "
                f"administrator runs CREATE ROLE {team_role} NOLOGIN once (or grants "
                f"{role} CREATEROLE), then connect again")
        cur.execute(f'CREATE ROLE "{team_role}" NOLOGIN')
    cur.execute(f'GRANT USAGE ON SCHEMA {SCHEMA} TO "{team_role}"')
    cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {SCHEMA}.sessions, {SCHEMA}.messages, "
                f'{SCHEMA}.assets TO "{team_role}"')
    cur.execute(f'GRANT SELECT ON {SCHEMA}.migrations TO "{team_role}"')


def _team_ready(cur: psycopg.Cursor[Any], team_role: str) -> bool:
    cur.execute("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s) AND "
                "has_table_privilege(%s, %s, 'INSERT') AND has_table_privilege(%s, %s, 'INSERT')",
                (team_role, team_role, f"{SCHEMA}.sessions", team_role, f"{SCHEMA}.assets"))
    return bool(cur.fetchone()[0])  # type: ignore[index]


def set_up(conn: psycopg.Connection[Any], team_role: str, where: str) -> str:
    """Create or repair the schema, its policies and the team role explicitly: only the
    database owner may (else a one-line StorageError). Returns what is ready, as a line."""
    with conn.transaction(), conn.cursor() as cur:
        if not _may_set_up(cur):
            cur.execute("SELECT current_user, pg_get_userbyid(datdba) FROM pg_database "
                        "WHERE datname = current_database()")
            role, owner = cur.fetchone()  # type: ignore[misc]
            raise StorageError(f"{role} may not set up the team store {where}: only its "
                               f"database owner ({owner}) can; connect as {owner} to run it")
    migrate(conn, team_role, where, regrant=True)
    return (f"The team store {where} is set up: schema {SCHEMA} ({len(MIGRATIONS)} migrations), "
            f"row-level security, group role {team_role}; add a member with "
            f"CREATE ROLE name LOGIN IN ROLE {team_role}.")


def migrate(conn: psycopg.Connection[Any], team_role: str, where: str, *,
            regrant: bool = False) -> None:
    """Bring the store up to date (owner) or check that it is (member); one transaction.
    ``regrant``: grant the team role its privileges again even when they look complete."""
    known = [name for name, _ in MIGRATIONS]
    with conn.transaction(), conn.cursor() as cur:
        applied = _applied(cur)
        if applied is not None and applied >= set(known) and not regrant and \
                not _may_set_up(cur):
            _check_newer(applied, known, where)
            return  # a member on an up-to-date store: nothing to do, no lock taken
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        applied = _applied(cur)
        if not _may_set_up(cur):
            raise StorageError(
                f"the team store {where} is not set up{' fully' if applied else ''}; its "
                "database owner connects once to create it (members cannot)")
        if applied is None:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            cur.execute(f"CREATE TABLE {SCHEMA}.migrations "
                        "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            applied = set()
        _check_newer(applied, known, where)
        for name, migration in MIGRATIONS:
            if name not in applied:
                migration(cur)
                cur.execute(f"INSERT INTO {SCHEMA}.migrations (name) VALUES (%s)", (name,))
        if regrant or not _team_ready(cur, team_role):
            _grant_team(cur, team_role)


def _check_newer(applied: set[str], known: list[str], where: str) -> None:
    if applied - set(known):
        raise StorageError(f"the store {where} was written by a newer claude_magic (migrations "
                           f"{sorted(applied - set(known))}); upgrade claude_magic")
