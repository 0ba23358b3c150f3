"""A real, throwaway PostgreSQL server for the tests and the benchmark (no Docker).

Debian's ``initdb`` / ``pg_ctl`` run as an unprivileged OS user (PostgreSQL refuses root) in a
temporary directory, listening on a Unix socket and a free 127.0.0.1 port. Local socket
connections are trusted; TCP connections need a password (SCRAM), so password handling is
tested for real.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"
OWNER = "team_owner"  # owns the databases (not a superuser: superusers bypass row security)
OWNER_PASSWORD = "s3cret-Owner-pw"


class NoServer(RuntimeError):
    """PostgreSQL's server programs are not installed."""


def bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` are (``pg_config --bindir``, else Debian's layout)."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
                         reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and \
                (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise NoServer("no PostgreSQL server programs (initdb, pg_ctl); install Debian's "
                   "'postgresql' package: apt-get install postgresql")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """A running server: its socket directory, port and the OS user it runs as."""

    root: Path
    port: int
    bin: Path
    user: str | None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> str:
        return str(self.root / "run")

    def url(self, role: str = OWNER, database: str = "postgres", **params: str) -> str:
        """A socket URL (no password needed); ``params`` become the query string."""
        query = "&".join(f"{k}={v}" for k, v in {"host": self.socket_dir, "port": self.port,
                                                  **params}.items())
        return f"postgresql://{role}@/{database}?{query}"

    def tcp_url(self, role: str, password: str, database: str) -> str:
        return f"postgresql://{role}:{password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        prefix = [] if self.user is None else [
            "setpriv", f"--reuid={self.user}", f"--regid={pwd.getpwnam(self.user).pw_gid}",
            "--clear-groups"]
        result = subprocess.run([*prefix, *command], capture_output=True, text=True,
                                cwd=self.root, timeout=120)
        if result.returncode:
            raise RuntimeError(f"{command[0]} failed: {result.stderr.strip() or result.stdout}")
        return result

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.root / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def sql(self, statement: str, database: str = "postgres", role: str = SUPERUSER) -> None:
        """Run SQL as a role over the socket (autocommit), e.g. to create roles."""
        import psycopg

        with psycopg.connect(self.url(role, database), autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self, name: str) -> str:
        """A new empty database owned by :data:`OWNER`; returns its socket URL."""
        self.sql(f'CREATE DATABASE "{name}" OWNER {OWNER}')
        return self.url(OWNER, name)


def _os_user() -> str | None:
    """None when not root; else an unprivileged user (``nobody``, or one made here)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "claude-magic-pg"], check=True)
    return "claude-magic-pg"


def start_server() -> Server:
    """initdb + pg_ctl start in a new temp directory; raises NoServer without the programs."""
    programs = bindir()
    user = _os_user()
    root = Path(tempfile.mkdtemp(prefix="claude-magic-pg-"))
    (root / "run").mkdir()
    if user is not None:
        record = pwd.getpwnam(user)
        for path in (root, root / "run"):
            os.chown(path, record.pw_uid, record.pw_gid)
    server = Server(root, _free_port(), programs, user)
    (root / "pw").write_text("postgres-superuser-pw\n")
    if user is not None:
        os.chown(root / "pw", pwd.getpwnam(user).pw_uid, -1)
    server._run(str(programs / "initdb"), "-D", str(server.data), "-U", SUPERUSER,
                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                "--locale=C", f"--pwfile={root / 'pw'}")
    with open(server.data / "postgresql.conf", "a") as conf:
        conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {server.port}\n"
                   f"unix_socket_directories = '{server.socket_dir}'\n"
                   "fsync = off\nmax_connections = 200\nshared_buffers = 128MB\n")
    server.start()
    server.sql(f"CREATE ROLE {OWNER} LOGIN CREATEROLE PASSWORD '{OWNER_PASSWORD}'")
    return server


def stop_server(server: Server) -> None:
    try:
        server.stop("immediate")
    finally:
        shutil.rmtree(server.root, ignore_errors=True)
