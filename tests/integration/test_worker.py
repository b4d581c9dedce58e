"""The background worker (``flask --app wsgi worker``) and its jobs, claimed from PostgreSQL (``models.jobs``):

- the suspense sweep matches a payment that raced its notice's push;
- ``worker --once`` runs every periodic job and prints a table; ``jobs run NAME`` runs one by hand and records the
  run (counts), ``jobs list`` shows each job's last run and when it is due; unknown names are refused;
- a failing job records its error and the others go on;
- two real worker processes on one database share the queued print runs: each run printed exactly once, each worker
  printed some of them;
- a worker SIGKILLed while it holds a print run's lease: ``GET /api/v1/print-runs/<id>`` shows the progress it
  committed, and another worker takes the run over once the lease ran out and finishes it from its cursor.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from flask import Flask
from sqlalchemy import Connection, Engine, create_engine, func, select, text
from sqlalchemy.orm import Session

from adapters.postal import parse_manifest
from models import jobs, payment_refs, payments, print_runs
from models.base import Actor, Scope
from models.fines.tables import ADVANCE_NOTICE, FineDocument
from models.notices import Notice, receivable_of
from server import create_app, wiring
from server.config import ROOT, Config
from server.runtime import Runtime
from server.worker import JOBS, worker
from services import mailing
from tests.conftest import LiveServer
from tests.factories import advance_noticed, maker, paid
from tests.support.device import staff_token
from tests.support.workers import WorkerProcess, until, worker_env, workers  # noqa: F401  (fixture)

ON = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
ACTOR = Actor(label="clerk-test")


def test_a_payment_that_raced_the_push_of_its_notice_is_matched_by_the_sweep(db_session, issue):  # noqa: F811
    # the payment commits first and finds no notice; the push then commits without seeing the payment
    payments.post_payment(db_session, paid("111102600000012", 32000, ON), Actor.system(), ON)
    notice = issue("111102600000012")
    assert notice.status == "issued"

    assert payments.sweep_suspense(db_session, ON) == 1
    assert db_session.get(Notice, notice.id).status == "paid"
    assert payments.sweep_suspense(db_session, ON) == 0  # matched once


def test_a_suspense_payment_whose_notice_never_came_stays_open(db_session):
    payments.post_payment(db_session, paid("111102600000020", 40000, ON, txn="t9"), Actor.system(), ON)
    assert payments.sweep_suspense(db_session, ON) == 0
    assert payments.suspense_total(db_session, "111102600000020") == 40000


def test_worker_once_runs_every_job_and_prints_a_table(connection: Connection, test_config: Config) -> None:
    app: Flask = create_app(test_config, bind=connection)
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["job", "result", "seconds"]
    for job in JOBS:
        assert any(line.startswith(job.name) and " ok " in line for line in lines), result.output


def test_worker_refuses_an_unknown_job(connection: Connection, test_config: Config) -> None:
    app: Flask = create_app(test_config, bind=connection)
    result = app.test_cli_runner().invoke(args=["worker", "--once", "--job", "no-such-job"])
    assert result.exit_code != 0 and "no such job: no-such-job" in result.output


def test_jobs_run_runs_a_job_by_hand_and_records_it_and_jobs_list_shows_each_jobs_last_run(
    connection: Connection, test_config: Config
) -> None:
    app = create_app(test_config, bind=connection)
    cli = app.test_cli_runner()

    ran = cli.invoke(args=["jobs", "run", "sweep-suspense"])

    assert ran.exit_code == 0, ran.output
    [line] = [line for line in ran.output.splitlines() if line.startswith("sweep-suspense")]
    assert line.split()[1] == "ok" and "0 suspense payments matched" in line
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        row = jobs.job(session, "sweep-suspense")
        assert row is not None and row.status == "queued" and row.leased_by is None
        [run] = jobs.runs(session, row.id)
        assert run.ok and run.counts == {"matched": 0, "refund_due": 0} and run.finished_at is not None
        assert run.worker.endswith(":by-hand") and run.started_at <= run.finished_at
        # due again a minute after it ran, by the database's clock
        assert 59 <= (row.run_after - run.finished_at).total_seconds() <= 61

    listed = cli.invoke(args=["jobs", "list"])

    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line for line in listed.output.splitlines()[2:] if line.strip()}
    assert rows.keys() == {job.name for job in JOBS}, listed.output
    swept = rows["sweep-suspense"].split()
    assert swept[1] == "1m" and swept[6] == "ok" and "0 suspense payments matched" in rows["sweep-suspense"]
    assert swept[7] != "now"  # its next run is a minute away
    for name in ("lookup-owners", "compact-feed"):
        assert rows[name].split()[-3:] == ["now", "never", "ran"], rows[name]
    assert rows["compact-feed"].split()[1] == "1d"

    unknown = cli.invoke(args=["jobs", "run", "no-such-job"])

    assert unknown.exit_code != 0 and "no such job: no-such-job" in unknown.output


def test_a_failing_job_records_its_error_and_the_others_go_on(
    connection: Connection, test_config: Config, engine: Engine
) -> None:
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        maker(session).parking(ON, plate="55가5555")  # a plate the owner lookups must queue for the registry
        session.commit()
    connection.execute(text("SET LOCAL lock_timeout = '300ms'"))
    app = create_app(test_config, bind=connection)
    with engine.connect() as migration:  # an operator's long DDL holds the fine cases: the lookups cannot run
        migration.execute(text("LOCK TABLE fine_cases IN ACCESS EXCLUSIVE MODE"))

        result = app.test_cli_runner().invoke(args=["worker", "--once"])

        migration.rollback()
    assert result.exit_code == 1, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[2:]}
    assert lines["lookup-owners"].split()[1] == "FAILED" and "lock timeout" in lines["lookup-owners"], result.output
    for job in JOBS:
        if job.name != "lookup-owners":
            assert lines[job.name].split()[1] == "ok", result.output
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        failed = jobs.job(session, "lookup-owners")
        assert failed is not None and failed.status == "queued" and "lock timeout" in (failed.error or "")
        [run] = jobs.runs(session, failed.id)
        assert run.ok is False and run.counts is None and "lock timeout" in (run.error or "")
        swept = jobs.job(session, "sweep-suspense")
        assert swept is not None and [r.counts for r in jobs.runs(session, swept.id)] == [
            {"matched": 0, "refund_due": 0}
        ]
    listed = app.test_cli_runner().invoke(args=["jobs", "list"])
    [row] = [line for line in listed.output.splitlines() if line.startswith("lookup-owners")]
    assert " FAILED " in row and "lock timeout" in row


# --- real worker processes ------------------------------------------------------------------------------------------


def test_a_periodic_job_renews_its_lease_at_each_chunk_and_stops_when_another_worker_took_it(
    connection: Connection, test_config: Config
) -> None:
    app = create_app(test_config, bind=connection)
    me = worker(app.extensions["jingsu"], "chunky")
    me.schedule()
    with me.transaction() as session:
        claim = jobs.take(session, "arrears-steps", me.name, timedelta(seconds=30))
        first = jobs.job(session, "arrears-steps")
        assert first is not None and first.leased_until is not None
        leased_until = first.leased_until
    with me.holding(claim)() as session:  # a chunk's transaction: the lease is renewed before it writes
        renewed = jobs.job(session, "arrears-steps")
        assert renewed is not None and renewed.leased_until is not None and renewed.leased_until >= leased_until
    with me.transaction() as session:  # its lease ran out (a chunk too slow, say) and another worker claimed it
        session.execute(text("UPDATE jobs SET leased_until = now() - interval '1 minute' WHERE name = 'arrears-steps'"))
        jobs.take(session, "arrears-steps", "another-worker", timedelta(seconds=30))
    with pytest.raises(jobs.LeaseLost), me.holding(claim)():
        raise AssertionError("the next chunk must not start")


def queue_runs(env: dict[str, str], count: int, size: int) -> list[int]:
    """``count`` print runs of ``size`` documents each, queued as the API queues them (no worker leased)."""
    rt = Runtime.build(Config.from_env(env))
    try:
        room = wiring.mailroom(rt)
        selection = print_runs.PrintSelection(ADVANCE_NOTICE, "11110", limit=size)
        return [mailing.start_run(room, selection, Scope.everything(), ACTOR).id for _ in range(count)]
    finally:
        assert rt.engine is not None
        rt.engine.dispose()


@contextmanager
def noticed_database(clone_db: Callable[[], str], count: int) -> Iterator[tuple[str, Engine]]:
    """A database of its own (workers in other processes see what is committed) with ``count`` 사전통지 sent."""
    url = clone_db()
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            advance_noticed(s, count)
            s.commit()
        yield url, engine
    finally:
        engine.dispose()


def test_two_worker_processes_share_the_queued_print_runs_and_print_each_exactly_once(
    clone_db: Callable[[], str],
    tmp_path: Path,
    workers: Callable[..., WorkerProcess],  # noqa: F811
) -> None:
    with noticed_database(clone_db, 40) as (url, engine):
        env = worker_env(url, tmp_path / "var", JINGSU_WORKER_POLL_MS="50", JINGSU_PRINT_RUN_CHUNK="2")
        first, second = (workers(env, name, jobs=["print-run"]) for name in ("w1", "w2"))
        for w in (first, second):
            w.wait_for(f"worker {w.name} runs print-run")

        ids = queue_runs(env, 8, 5)

        def all_printed() -> bool:
            with Session(engine) as s:
                statuses = s.scalars(select(print_runs.PrintRun.status).where(print_runs.PrintRun.id.in_(ids)))
                return set(statuses) == {"printed"}

        until("the eight runs printed", all_printed, timeout=120)
        assert first.stop() == 0 and second.stop() == 0  # SIGTERM: each stops between jobs
        listed = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "list"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        [one_off] = [line.split() for line in listed.stdout.splitlines() if line.startswith("print-run")]
        assert one_off[:5] == ["print-run", "0", "0", "8", "0"] and one_off[5] == "ok", listed.stdout
        with Session(engine) as s:
            by_worker: dict[str, int] = {}
            for run_id in ids:
                row = jobs.job(s, mailing.job_key(run_id))
                assert row is not None and row.status == "done"
                [run] = jobs.runs(s, row.id)  # exactly one run of each job, none lost
                assert run.ok and run.counts == {"documents": 5, "pages": 5, "resumed_at": 0}, run.error
                by_worker[run.worker] = by_worker.get(run.worker, 0) + 1
            assert by_worker.keys() == {"w1", "w2"} and sum(by_worker.values()) == 8, by_worker
            item = print_runs.PrintRunItem
            printed = s.scalars(
                select(item.document_id).where(item.run_id.in_(ids), item.printed_at.is_not(None))
            ).all()
            assert len(printed) == len(set(printed)) == 40
            for run_id in ids:
                done = s.get(print_runs.PrintRun, run_id)
                assert done is not None and done.manifest_path
                assert parse_manifest(Path(done.manifest_path).read_bytes()).total_pages == 5


def test_a_worker_killed_holding_a_print_runs_lease_is_taken_over_once_the_lease_ran_out(
    clone_db: Callable[[], str],
    tmp_path: Path,
    workers: Callable[..., WorkerProcess],  # noqa: F811
    live_server: Callable[..., LiveServer],
) -> None:
    with noticed_database(clone_db, 12) as (url, engine):
        env = worker_env(url, tmp_path / "var", JINGSU_JOB_LEASE_SECONDS="2", JINGSU_WORKER_POLL_MS="50",
                         JINGSU_PRINT_RUN_CHUNK="3")  # fmt: skip
        [run_id] = queue_runs(env, 1, 12)
        # hold up the 7th document (the third chunk's first): the first six have their virtual accounts already, the
        # seventh's the worker must issue, and the table is locked against inserts by a transaction of ours (a
        # table lock takes no transaction id, so no other database's change feed waits for it) — so the worker waits
        # there with two chunks committed and its lease live
        with Session(engine) as s:
            bank = payment_refs.Bank("088", "신한은행", "5620")
            receivables = []
            for document_id in print_runs.claimed_document_ids(s, run_id)[:7]:
                document = s.get(FineDocument, document_id)
                receivables.append(receivable_of(s, document.notice_id) if document else None)
            for receivable in receivables[:6]:
                assert receivable is not None
                payment_refs.account_for(s, receivable, bank)
            s.commit()
            assert receivables[6] is not None
            seventh = receivables[6].id
        blocker = engine.connect()
        blocker.execute(text("LOCK TABLE virtual_accounts IN SHARE MODE"))

        doomed = workers(env, "doomed", jobs=["print-run"])

        def waiting() -> bool:  # a connection of its own each time: pg_stat_activity is a snapshot per transaction
            with engine.connect() as probe:
                return bool(probe.execute(text(
                    "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    " AND query ILIKE 'INSERT INTO virtual_accounts%'")).scalar())  # fmt: skip

        until("the worker to wait at the 7th document", waiting)
        server = live_server(db_url=url)
        with httpx.Client(base_url=server.url) as client:
            token = staff_token(client, "clerk.11110")
            shown = client.get(f"/api/v1/print-runs/{run_id}", headers={"Authorization": f"Bearer {token}"}).json()
        assert (shown["status"], shown["rendered"], shown["documents"]) == ("printing", 6, 12), shown
        with Session(engine) as s:
            held = jobs.job(s, mailing.job_key(run_id))
            assert held is not None and (held.status, held.leased_by) == ("running", "doomed")
            lease_ran_out = held.leased_until
            assert lease_ran_out is not None

        doomed.kill()
        blocker.rollback()
        blocker.close()
        heir = workers(env, "heir", jobs=["print-run"])

        def printed() -> print_runs.PrintRun | None:
            with Session(engine) as s:
                run = s.get(print_runs.PrintRun, run_id)
                return run if run is not None and run.status == "printed" else None

        done = until("the heir to finish the run", printed, timeout=60)
        assert heir.stop() == 0
        assert (done.documents, done.rendered, done.pages) == (12, 12, 12)
        manifest = parse_manifest(Path(done.manifest_path or "").read_bytes())
        assert [p.seq for p in manifest.pieces] == list(range(1, 13)) and manifest.total_pages == 12
        with Session(engine) as s:
            row = jobs.job(s, mailing.job_key(run_id))
            assert row is not None and (row.status, row.attempts) == ("done", 2)
            lost, finished = jobs.runs(s, row.id)
            assert (lost.worker, lost.ok) == ("doomed", False) and "lost: worker doomed" in (lost.error or "")
            assert (finished.worker, finished.ok) == ("heir", True), finished.error
            assert finished.started_at >= lease_ran_out  # taken over only once the lease had run out
            assert finished.counts == {"documents": 12, "pages": 12, "resumed_at": 6}  # the first six not redone
            account = payment_refs.VirtualAccount
            assert s.scalar(select(func.count()).where(account.receivable_id == seventh)) == 1
            item = print_runs.PrintRunItem
            assert s.scalar(select(func.count()).where(item.run_id == run_id, item.printed_at.is_not(None))) == 12
