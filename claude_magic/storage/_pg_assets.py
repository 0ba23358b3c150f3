"""The PostgreSQL store's assets (images, PDFs): one row per owner and SHA-256.

Row-level security follows the sessions': a role reads its own assets and those a message it
can read names (its own sessions and the team's), and writes and deletes only its own. Each
role keeps its own copy of what its sessions use: a session it creates or appends to with a
reference to a teammate's asset (a fork of a shared session) takes a copy in the same
transaction, so a teammate collecting their assets never takes one of its images away.
Collection (``storage/_assets.py``) removes only this role's unreferenced rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..blocks import asset_refs, sha256_of
from ..message import Message
from ._pg_names import SCHEMA

if TYPE_CHECKING:
    import psycopg

_A = f"{SCHEMA}.assets"

#: Migration 004: the table, its indexes and its policies.
ASSETS_SQL = f"""
CREATE TABLE {_A} (
    owner_role text NOT NULL DEFAULT current_user,
    sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{{64}}$'),
    media_type text NOT NULL,
    data       bytea NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_role, sha256)
);
CREATE INDEX assets_sha256 ON {_A} (sha256);
ALTER TABLE {_A} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {_A} FORCE ROW LEVEL SECURITY;
CREATE POLICY assets_read ON {_A} FOR SELECT
    USING (owner_role = current_user OR EXISTS (
        SELECT 1 FROM {SCHEMA}.messages m
        WHERE m.blocks IS NOT NULL AND strpos(m.blocks::text, sha256) > 0));
CREATE POLICY assets_insert ON {_A} FOR INSERT WITH CHECK (owner_role = current_user);
CREATE POLICY assets_update ON {_A} FOR UPDATE
    USING (owner_role = current_user) WITH CHECK (owner_role = current_user);
CREATE POLICY assets_delete ON {_A} FOR DELETE USING (owner_role = current_user);
"""

_PUT = (f"INSERT INTO {_A} (sha256, media_type, data) VALUES (%s, %s, %s) "
        "ON CONFLICT (owner_role, sha256) DO UPDATE SET stored_at = now()")
_ADOPT = (f"INSERT INTO {_A} (sha256, media_type, data) SELECT sha256, media_type, data "
          f"FROM {_A} WHERE sha256 = %s LIMIT 1 "
          "ON CONFLICT (owner_role, sha256) DO UPDATE SET stored_at = now()")


def adopt_assets(cur: psycopg.Cursor[Any], messages: Iterable[Message]) -> None:
    """Give this role its own copy of every asset ``messages`` reference (or make its own
    young again), inside the caller's transaction, after the messages are written."""
    refs: set[str] = set()
    for message in messages:
        refs |= asset_refs(message.content)
    if refs:
        cur.executemany(_ADOPT, [(sha,) for sha in sorted(refs)])


class PostgresAssets:
    """The :class:`~claude_magic.storage._assets.AssetStore` methods over ``assets``."""

    def _transaction(self, *, write: bool = True
                     ) -> AbstractContextManager[psycopg.Cursor[Any]]:  # pragma: no cover
        raise NotImplementedError

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError  # pragma: no cover

    def put_asset(self, sha256: str, media_type: str, data: bytes) -> None:
        with self._transaction() as cur:
            cur.execute(_PUT, (sha256, media_type, data))

    def get_asset(self, sha256: str, media_type: str) -> bytes | None:
        rows = self._read(f"SELECT data FROM {_A} WHERE sha256 = %s", (sha256,))
        return next(_whole(rows, sha256), None)

    def asset_ids(self) -> set[str]:
        """This role's assets (those it may collect)."""
        return {row[0] for row in self._read(
            f"SELECT sha256 FROM {_A} WHERE owner_role = current_user")}

    def asset_times(self) -> dict[str, float]:
        return {row[0]: float(row[1]) for row in self._read(
            f"SELECT sha256, extract(epoch FROM stored_at) FROM {_A} "
            "WHERE owner_role = current_user")}

    def assets_in_use(self) -> set[str]:
        """Every SHA-256 a message row this role can read names, readable or damaged."""
        from ._assets import named_assets

        rows = self._read(f"SELECT blocks::text FROM {SCHEMA}.messages "
                          "WHERE blocks IS NOT NULL AND strpos(blocks::text, '\"asset\"') > 0")
        return named_assets(str(row[0]) for row in rows)

    def delete_assets(self, sha256s: Iterable[str]) -> int:
        with self._transaction() as cur:
            cur.execute(f"DELETE FROM {_A} WHERE owner_role = current_user "
                        "AND sha256 = ANY(%s)", (sorted(set(sha256s)),))
            return cur.rowcount


def _whole(rows: list[tuple[Any, ...]], sha256: str) -> Iterator[bytes]:
    """The rows' data whose bytes still hash to ``sha256``."""
    for row in rows:
        data = bytes(row[0])
        if sha256_of(data) == sha256:
            yield data
