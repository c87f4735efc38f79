"""The store a test run uses: SQLite files (the default) or a throwaway PostgreSQL server.

`PORTCULLIS_TEST_STORE=postgresql` makes the run start one PostgreSQL server (a cluster made
with `initdb` in a temporary folder, listening on a Unix socket only, run as a non-root user
when the tests run as root) and give every test store a fresh database of its own.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

STORE_ENV = "PORTCULLIS_TEST_STORE"
STORES = ("sqlite", "postgresql")
PG_USER = "portcullis-pg"  # the system user the cluster runs as when the tests run as root
START_TIMEOUT_S = 60


def store_kind() -> str:
    """`sqlite` or `postgresql`, from `PORTCULLIS_TEST_STORE` (default `sqlite`)."""
    kind = os.environ.get(STORE_ENV, "sqlite").strip().lower() or "sqlite"
    if kind not in STORES:
        raise RuntimeError(f"{STORE_ENV}={kind!r}: expected one of {', '.join(STORES)}")
    return kind


def on_postgresql() -> bool:
    return store_kind() == "postgresql"


def pg_bin_dir() -> Path:
    """The folder of `initdb`/`pg_ctl`: on PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not versions:
        raise RuntimeError("PostgreSQL's initdb was not found: install Debian's `postgresql`")
    return versions[-1].parent


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder, reachable through its Unix socket only."""

    def __init__(self) -> None:
        self.bin = pg_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="portcullis-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.log_path = self.root / "server.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            ensure_system_user(PG_USER)
            shutil.chown(self.root, PG_USER, PG_USER)
            self.as_user = ["runuser", "-u", PG_USER, "--"]
        self._names = itertools.count(1)
        self._admin = None
        self.started = False

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, timeout=START_TIMEOUT_S
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")

    def start(self) -> PostgresServer:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        # A throwaway cluster: durability is traded for speed; many test processes at once.
        options = (
            f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=500"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path),
            "-w", "-t", str(START_TIMEOUT_S), "-o", options, "start",
        )  # fmt: skip
        self.started = True
        atexit.register(self.stop)
        return self

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of `database` on this server."""
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg  # only needed on this store

        if self._admin is None:
            self._admin = psycopg.connect(
                host=str(self.socket_dir), user="postgres", dbname="postgres", autocommit=True
            )
        name = f"t{os.getpid()}_{next(self._names)}"
        self._admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def set_reachable(self, database_url: str, reachable: bool) -> None:
        """Let the database at `database_url` take connections, or refuse them and drop the
        open ones (the store going away under running processes)."""
        database = database_name(database_url)
        self._admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {reachable}')
        if not reachable:
            self._admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )

    def dump(self, database_url: str) -> bytes:
        """`pg_dump` of the database at `database_url`: every row it holds, as text."""
        database = database_name(database_url)
        result = subprocess.run(
            [str(self.bin / "pg_dump"), "-h", str(self.socket_dir), "-U", "postgres", database],
            capture_output=True,
            timeout=START_TIMEOUT_S,
            check=True,
        )
        return result.stdout

    def stop(self) -> None:
        """Stop the server and remove its folder (idempotent)."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self.started:
            self.started = False
            subprocess.run(
                [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                 "-w", "stop"],
                capture_output=True,
                timeout=START_TIMEOUT_S,
            )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def database_name(database_url: str) -> str:
    """The database named by a URL of `PostgresServer.url`."""
    return re.search(r"@/([^?]+)\?", database_url).group(1)


def ensure_system_user(name: str) -> None:
    """Create the system user `name` (no home, no login) unless it exists."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
        )


_server: PostgresServer | None = None
_urls: dict[Path, str] = {}


def start_server() -> PostgresServer | None:
    """Start the run's PostgreSQL server when the run is on PostgreSQL (once)."""
    global _server
    if on_postgresql() and _server is None:
        _server = PostgresServer().start()
    return _server


def stop_server() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None


def server() -> PostgresServer:
    started = start_server()
    if started is None:
        raise RuntimeError("not a PostgreSQL test run")
    return started


def database_url_for(var_dir: Path) -> str | None:
    """The DATABASE_URL of the store that belongs to `var_dir`; None for SQLite's default.

    On PostgreSQL each `var_dir` gets a database of its own the first time it is asked for,
    and the same one after, so an admin restarted on the same folder finds its data.
    """
    if not on_postgresql():
        return None
    key = Path(var_dir).resolve()
    if key not in _urls:
        _urls[key] = server().create_database()
    return _urls[key]


def scratch_database_url(folder: Path) -> str:
    """A store for code run inside the test process: a file in `folder`, or a fresh database."""
    return database_url_for(folder) or f"sqlite:///{Path(folder) / 'store.db'}"


def store_bytes(database_url: str, sqlite_files: list[Path]) -> bytes:
    """Everything the store holds as bytes: SQLite's files, or a `pg_dump` of the database."""
    if database_url.startswith("postgresql"):
        return server().dump(database_url)
    return b"".join(p.read_bytes() for p in sqlite_files if p.exists())
