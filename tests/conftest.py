"""Fixtures every test tier uses: a real PostgreSQL (``DATABASE_URL``), migrated once per run into a template
database; rolled-back sessions for in-process tests; cloned databases and real gunicorn servers for the rest.

    template_db_url  session   URL of the migrated template (never connect to it; clone it)
    clone_db         function  clone_db() -> URL of a fresh database cloned from the template, dropped at teardown
    work_db_url      session   one clone shared by the in-process tests
    engine           session   SQLAlchemy engine on work_db_url
    db_session       function  Session inside an outer transaction that is rolled back after the test
    test_config      session   Config for in-process apps: work_db_url, fixed test secrets, a temp var dir
    live_server      function  live_server(db_url=None, env=None) -> LiveServer (gunicorn -w 2 on a free port)
    free_port()      helper    a free TCP port on 127.0.0.1
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import URL, Connection, Engine, create_engine, make_url
from sqlalchemy.orm import Session

from models.feed import register_writer
from server.config import ROOT, Config

pytest_plugins = ["pytester", "tests.ci_rules"]

TEST_JWT_SECRET = "7e3c1f0a9b2d4c6e8f1a3b5c7d9e0f2a4b6c8d0e1f3a5b7c9d1e3f5a7b9c0d2e"
TEST_PII_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
TEST_LOOKUP_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

READY_TIMEOUT_S = 20.0


def server_env(db_url: str, var_dir: Path, pay_base_url: str) -> dict[str, str]:
    """The environment a test app or server runs with (see ``Config.from_env``)."""
    return {
        "DATABASE_URL": db_url,
        "JINGSU_VAR_DIR": str(var_dir),
        "JINGSU_JWT_SECRET": TEST_JWT_SECRET,
        "JINGSU_PII_KEY": TEST_PII_KEY,
        "JINGSU_LOOKUP_KEY": TEST_LOOKUP_KEY,
        "JINGSU_PAY_BASE_URL": pay_base_url,
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- databases ------------------------------------------------------------------------------------------------------


class DbAdmin:
    """Creates and drops databases on the server of ``DATABASE_URL``, over one autocommit psycopg connection to the
    database that URL names (it exists and we may connect to it, which is all CREATE/DROP DATABASE needs)."""

    def __init__(self, server_url: str) -> None:
        self.server_url: URL = make_url(server_url)
        if not self.server_url.drivername.startswith("postgresql"):
            raise pytest.UsageError(f"DATABASE_URL must be a postgresql URL, got {self.server_url!r}")
        self.conn = psycopg.connect(libpq_url(self.server_url), autocommit=True)

    def url_for(self, name: str) -> str:
        return render_url(self.server_url.set(drivername="postgresql+psycopg", database=name))

    def create(self, prefix: str, template: str | None = None) -> str:
        name = f"{prefix}{uuid.uuid4().hex[:12]}"
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
        self.conn.execute(query)
        return name

    def seal(self, name: str) -> None:
        """Refuse new connections and end the existing ones, so the database can serve as a template."""
        self.conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
        self.conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )

    def drop(self, name: str) -> None:
        self.conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def close(self) -> None:
        self.conn.close()


def render_url(url: URL) -> str:
    """``url`` as a string with its password, keeping ``host=/var/run/postgresql`` readable: SQLAlchemy would write
    ``%2F``, which libpq decodes but Alembic's ini-style config takes for interpolation."""
    text = url.render_as_string(hide_password=False)
    base, sep, query = text.partition("?")
    return base + sep + query.replace("%2F", "/")


def libpq_url(url: URL | str) -> str:
    """The same URL for psycopg/libpq (no ``+psycopg``)."""
    return render_url(make_url(url).set(drivername="postgresql"))


@pytest.fixture(scope="session")
def db_admin() -> Iterator[DbAdmin]:
    server_url = os.environ.get("DATABASE_URL", "")
    if not server_url:
        pytest.fail(
            "DATABASE_URL is not set. Run the suite with `make test` (which starts the embedded PostgreSQL), or set "
            "DATABASE_URL=postgresql+psycopg://user@host/db for a PostgreSQL you may CREATE DATABASE on.",
            pytrace=False,
        )
    admin = DbAdmin(server_url)
    yield admin
    admin.close()


@pytest.fixture(scope="session")
def template_db_url(db_admin: DbAdmin) -> Iterator[str]:
    from models.migrate import upgrade

    name = db_admin.create("jingsu_t_")
    try:
        url = db_admin.url_for(name)
        upgrade(url)
        _load_demo(url)
        db_admin.seal(name)
        yield url
    finally:
        db_admin.drop(name)


def _load_demo(url: str) -> None:
    """Every test database starts with the demo data (Seoul, codes, schedules, demo logins)."""
    from datetime import timedelta

    from models.base import utcnow
    from models.demo import load_demo

    eng = create_engine(url)
    try:
        with Session(eng) as session:
            load_demo(session, password="jingsu-demo", now=utcnow(), production=False, code_ttl=timedelta(hours=24))
            session.commit()
    finally:
        eng.dispose()


@pytest.fixture(scope="session")
def _template_name(template_db_url: str) -> str:
    return make_url(template_db_url).database or ""


@pytest.fixture(scope="session")
def work_db_url(db_admin: DbAdmin, _template_name: str) -> Iterator[str]:
    name = db_admin.create("jingsu_w_", template=_template_name)
    yield db_admin.url_for(name)
    db_admin.drop(name)


@pytest.fixture
def clone_db(db_admin: DbAdmin, _template_name: str) -> Iterator[Callable[[], str]]:
    """``clone_db()`` returns the URL of a new migrated database; all are dropped after the test."""
    created: list[str] = []

    def clone() -> str:
        name = db_admin.create("jingsu_c_", template=_template_name)
        created.append(name)
        return db_admin.url_for(name)

    yield clone
    for name in created:
        db_admin.drop(name)


@pytest.fixture(scope="session")
def engine(work_db_url: str) -> Iterator[Engine]:
    eng = create_engine(work_db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def db_session(engine: Engine) -> Iterator[Session]:
    """A Session whose commits are savepoints inside an outer transaction that is rolled back after the test."""
    with engine.connect() as conn:
        outer = conn.begin()
        register_writer(conn)  # before any write: the test's whole transaction may write changes for devices
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A Connection in an outer transaction that is rolled back after the test (an app bound to it commits to
    savepoints)."""
    with engine.connect() as conn:
        outer = conn.begin()
        register_writer(conn)  # before any write: the test's whole transaction may write changes for devices
        try:
            yield conn
        finally:
            outer.rollback()


@pytest.fixture(scope="session")
def test_config(work_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """In-process apps: the Flask test client's host is ``localhost``, so payment QR URLs resolve against it."""
    var_dir = tmp_path_factory.mktemp("var")
    return Config.from_env(server_env(work_db_url, var_dir, "http://localhost"))


# --- real servers ---------------------------------------------------------------------------------------------------


class LiveServer:
    """A gunicorn running ``wsgi:app`` in its own process group, so ``kill()`` takes its workers down too."""

    def __init__(self, db_url: str, var_dir: Path, env: Mapping[str, str] | None = None, workers: int = 2) -> None:
        self.db_url = db_url
        self.var_dir = var_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {**os.environ, **server_env(db_url, var_dir, self.url), **(env or {})}
        self.stdout_path = var_dir / "gunicorn.stdout.log"
        self.stderr_path = var_dir / "gunicorn.stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveServer:
        """Start (or restart) on the same port and database; returns once ``/readyz`` answers 200."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"live server on {self.url} is already running")
        gunicorn = Path(sys.executable).parent / "gunicorn"
        # gunicorn's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl): servers side by side
        # would take it from each other
        argv = [str(gunicorn), "-w", str(self.workers), "-b", f"127.0.0.1:{self.port}", "--no-control-socket"]
        argv.append("wsgi:app")
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=out, stderr=err, start_new_session=True)
        self._wait_ready()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM to the master), then SIGKILL for whatever is left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL the master and its workers at once: a crash, mid-request if there is one."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def logs(self) -> str:
        out = self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""
        err = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return f"--- {self.stdout_path} ---\n{out}\n--- {self.stderr_path} ---\n{err}"

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        last_error = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                last_error = f"gunicorn exited with status {self.proc.returncode}"
                break
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return
                    last_error = f"/readyz answered {resp.status}"
            except urllib.error.HTTPError as exc:
                last_error = f"/readyz answered {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = f"/readyz: {exc}"
            time.sleep(0.1)
        else:
            last_error = f"not ready after {READY_TIMEOUT_S:.0f} s ({last_error})"
        self.kill()
        pytest.fail(f"live server on {self.url} did not start: {last_error}\n{self.logs()}", pytrace=False)


@pytest.fixture
def live_server(
    clone_db: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., LiveServer]]:
    """``live_server(db_url=None, env=None)`` starts gunicorn on a cloned (or the given) database; all are stopped
    after the test."""
    servers: list[LiveServer] = []

    def start(db_url: str | None = None, env: Mapping[str, str] | None = None, workers: int = 2) -> LiveServer:
        server = LiveServer(db_url or clone_db(), tmp_path_factory.mktemp("live"), env=env, workers=workers)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
