"""Maintenance commands: ``flask --app wsgi <command>``.

The commands run without an app context: each takes the app's ``Runtime`` (``_runtime``) and builds what the
services need from its configuration (``server.wiring``), as the worker does.
"""

from __future__ import annotations

import time
from datetime import datetime

import click
from flask import Flask
from flask.cli import ScriptInfo

from models import outbox, print_runs
from models.base import Actor, Scope
from models.errors import DomainError
from server import wiring
from server.runtime import Runtime, runtime
from server.worker import deliver, run_forever, run_once, worker
from services import jobs, mailing
from services import outbox as outbox_service
from services.job_runs import worker_id
from services.uow import transactions


def _runtime() -> Runtime:
    """The runtime of the app the command was started for (``--app``), without pushing its context."""
    app = click.get_current_context().ensure_object(ScriptInfo).load_app()
    found: Runtime = app.extensions["jingsu"]
    return found


def register(app: Flask) -> None:
    @app.cli.command("migrate", with_appcontext=False)
    def migrate() -> None:
        """Upgrade the database to the newest migration."""
        from models.migrate import upgrade

        upgrade(_runtime().config.database_url)
        click.echo("migrated to head")

    @app.cli.command("demo", with_appcontext=False)
    def demo() -> None:
        """Load the demo data (idempotent) and print fresh enrollment codes of the demo devices."""
        for line in load_demo_and_describe(_runtime()):
            click.echo(line)

    @app.cli.command("bump-epoch", with_appcontext=False)
    def bump_epoch() -> None:
        """Start a new sync epoch (after a restore): every device must push, then refetch its scope."""
        from models.server_state import bump_epoch as bump

        with transactions(_runtime().sessions)() as session:
            epoch = bump(session)
        click.echo(f"sync epoch is now {epoch}")

    compact_feed_command(app)
    worker_command(app)
    jobs_command(app)
    outbox_command(app)
    print_run_command(app)
    from server.api.treasury import treasury_command

    treasury_command(app)


def compact_feed_command(app: Flask) -> None:
    @app.cli.command("compact-feed", with_appcontext=False)
    def compact_feed() -> None:
        """Remove replaced changes and old tombstones from the device feed; raise the feed floor past them."""
        from services.compaction import compact_feed

        rt = _runtime()
        settings = wiring.job_inputs(rt).settings
        done = compact_feed(
            transactions(rt.sessions, writes_changes=False),
            rt.clock(),
            tombstone_age=settings.tombstone_age,
            superseded_age=settings.superseded_age,
        )
        click.echo(f"{'removed':<22} {'rows':>10}")
        click.echo(f"{'replaced changes':<22} {done.superseded:>10,}")
        click.echo(f"{'tombstones':<22} {done.tombstones:>10,}")
        click.echo(
            f"feed floor is now id {done.feed_floor_id} (older cursors get reset_required); {done.chunks} chunks"
        )


def worker_command(app: Flask) -> None:
    @app.cli.command("worker", with_appcontext=False)
    @click.option("--once", is_flag=True, help="run every periodic job once now, print what each did, and exit")
    @click.option("--job", "names", multiple=True, help="only these jobs (repeatable; e.g. print-run)")
    @click.option("--worker-id", help="this worker's name in the leases and runs (default host:pid)")
    @click.option("--tick", type=click.FloatRange(0.01, 3600), help="seconds to wait when nothing is due "
                  "(default JINGSU_WORKER_POLL_MS)")  # fmt: skip
    def worker(once: bool, names: tuple[str, ...], worker_id: str | None, tick: float | None) -> None:
        """Claim and run due jobs (periodic sweeps, print runs …) with any other workers, until stopped."""
        rt = _runtime()
        known = [job.name for job in jobs.JOBS] + ([] if once else [task.name for task in jobs.TASKS])
        unknown = set(names) - set(known)
        if unknown:
            raise click.BadParameter(f"no such job: {', '.join(sorted(unknown))}", param_hint="--job")
        if once:
            outcomes = run_once(rt, [job for job in jobs.JOBS if not names or job.name in names], worker_id)
            for line in jobs.table(outcomes):
                click.echo(line)
            if not all(o.ok for o in outcomes):
                raise SystemExit(1)
            return
        import logging
        import signal
        import threading

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())  # finish the job at hand, then stop
        try:
            run_forever(rt, list(names) or None, name=worker_id, stop=stop, tick=tick)
        except KeyboardInterrupt:  # Ctrl-C (make run): the job at hand was handed back
            click.echo("worker stopped")


def jobs_command(app: Flask) -> None:
    @app.cli.group("jobs")
    def jobs_group() -> None:
        """The worker's jobs: their last runs, and running one by hand."""

    @jobs_group.command("list", with_appcontext=False)
    def list_jobs() -> None:
        """A table of the periodic jobs (last run, result, next due) and of the one-off jobs by kind."""
        me = worker(_runtime())
        me.schedule()  # every periodic job listed, run or not
        for line in jobs.listing(me.transaction):
            click.echo(line)

    @jobs_group.command("run", with_appcontext=False)
    @click.argument("name")
    def run_job(name: str) -> None:
        """Run job NAME now (a periodic job's name, or a one-off job's key such as print-run:42) and record it."""
        periodic = [job.name for job in jobs.JOBS]
        one_off = tuple(f"{task.name}:" for task in jobs.TASKS)
        if name not in periodic and not name.startswith(one_off):
            raise click.UsageError(f"no such job: {name} (jobs: {', '.join(periodic)}, or print-run:<run id>)")
        try:
            outcome = worker(_runtime(), worker_id("by-hand")).by_hand(name)
        except DomainError as exc:
            raise click.ClickException(f"{exc.code}: {exc.detail}") from exc
        for line in jobs.table([outcome]):
            click.echo(line)
        if not outcome.ok:
            raise SystemExit(1)


def outbox_command(app: Flask) -> None:
    @app.cli.group("outbox")
    def outbox_group() -> None:
        """The outbox: calls to outside systems waiting, delivered, or dead (models.outbox)."""

    @outbox_group.command("deliver", with_appcontext=False)
    @click.option("--once", is_flag=True, help="one round, print what it did, and exit")
    @click.option("--tick", type=click.FloatRange(0.01, 3600), default=1.0, help="seconds between rounds")
    def deliver_command(once: bool, tick: float) -> None:
        """Deliver due rows (what the worker does every tick), once or until interrupted."""
        rt, me = _runtime(), worker_id("outbox")
        while True:
            report = deliver(rt, me)
            if once:
                click.echo(report.summary() if report is not None else "delivery failed (see the log)")
                raise SystemExit(0 if report is not None else 1)
            time.sleep(tick)

    @outbox_group.command("list", with_appcontext=False)
    @click.option("--status", type=click.Choice(outbox.STATUSES), default=outbox.DEAD, show_default=True)
    @click.option("--target", type=click.Choice(outbox.TARGETS))
    def list_command(status: str, target: str | None) -> None:
        """The rows in a status (default: the dead letters), oldest first."""
        with transactions(_runtime().sessions)() as session:
            rows = outbox.list_rows(session, Scope.everything(), status=status, target=target, limit=1000)
            click.echo(f"{'id':>8} {'target.operation':<18} {'tries':>5}  {'key':<48} last error")
            for row in rows:
                what, error = f"{row.target}.{row.operation}", row.last_error or ""
                click.echo(f"{row.id:>8} {what:<18} {row.attempts:>5}  {row.idempotency_key:<48} {error}")

    @outbox_group.command("retry", with_appcontext=False)
    @click.argument("row_id", type=int)
    @click.option("--reason", required=True, help="why it is sent again (kept)")
    def retry_command(row_id: int, reason: str) -> None:
        """Send a dead row again (audited)."""
        rt = _runtime()
        try:
            with transactions(rt.sessions)() as session:
                outbox_service.retry(session, Scope.everything(), row_id, Actor(label="cli:outbox"), reason, rt.clock())
        except DomainError as exc:
            raise click.ClickException(f"{exc.code}: {exc.detail}") from exc
        click.echo(f"outbox row {row_id} is pending again")


def print_run_command(app: Flask) -> None:
    @app.cli.command("print-run", with_appcontext=False)
    @click.option("--kind", required=True, type=click.Choice(print_runs.KINDS), help="which documents")
    @click.option("--jurisdiction", required=True, help="5-digit jurisdiction code, e.g. 11110")
    @click.option("--from", "issued_from", type=click.DateTime(["%Y-%m-%d"]), help="issued on or after (YYYY-MM-DD)")
    @click.option("--to", "issued_to", type=click.DateTime(["%Y-%m-%d"]), help="issued on or before (YYYY-MM-DD)")
    @click.option("--limit", type=click.IntRange(1, print_runs.MAX_RUN), help="at most this many documents")
    def print_run_cli(
        kind: str, jurisdiction: str, issued_from: datetime | None, issued_to: datetime | None, limit: int | None
    ) -> None:
        """Print the mailed documents no run has printed yet into one PDF and an e-그린우편 manifest, here and now
        (a worker takes the run over should this command stop)."""
        selection = print_runs.PrintSelection(
            kind=kind,
            jurisdiction=jurisdiction,
            issued_from=issued_from.date() if issued_from else None,
            issued_to=issued_to.date() if issued_to else None,
            limit=limit,
        )
        room = wiring.mailroom(_runtime())
        me = worker_id("print-run")
        try:
            run = mailing.start_run(room, selection, Scope.everything(), Actor(label="cli:print-run"), worker=me)
        except DomainError as exc:
            raise click.ClickException(f"{exc.code}: {exc.detail}") from exc
        if run.status == print_runs.CLAIMED:
            with click.progressbar(length=run.documents, label=f"print run {run.id}") as bar:
                done = 0

                def advance(n: int) -> None:
                    nonlocal done
                    bar.update(n - done)
                    done = n

                run = mailing.print_started(room, run.id, me, progress=advance)
        for line in mailing.run_table(run):
            click.echo(line)
        if run.status == print_runs.FAILED:
            raise SystemExit(1)


def load_demo_and_describe(rt: Runtime | None = None) -> list[str]:
    """Load demo data in one transaction; the lines to print (logins and enrollment codes). ``rt``: the app's
    runtime (default: the current app's)."""
    from datetime import timedelta

    from models.demo import DEMO_DISTRICTS, load_demo

    rt = rt or runtime()
    with transactions(rt.sessions)() as session:
        devices = load_demo(
            session,
            password=rt.config.demo_password,
            now=rt.clock(),
            production=rt.config.is_production,
            code_ttl=timedelta(hours=rt.config.enrollment_code_hours),
        )
    lines = ["", "데모 계정 (password: JINGSU_DEMO_PASSWORD, default jingsu-demo)", "  admin   auditor"]
    for district in DEMO_DISTRICTS:
        lines.append(f"  clerk.{district}   approver.{district}   auditor.{district}   officer.{district}.1   "
                     f"officer.{district}.2")  # fmt: skip
    lines += ["", f"{'device_id':<38} {'jurisdiction':<12} {'enrollment code':<16} label"]
    for d in devices:
        lines.append(f"{d.device_id:<38} {d.jurisdiction:<12} {d.enrollment_code:<16} {d.label}")
    return lines
