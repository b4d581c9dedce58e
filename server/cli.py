"""Maintenance commands: ``flask --app wsgi <command>``."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import Flask

from server.runtime import runtime, unit_of_work


def register(app: Flask) -> None:
    @app.cli.command("migrate")
    def migrate() -> None:
        """Upgrade the database to the newest migration."""
        from models.migrate import upgrade

        upgrade(runtime().config.database_url)
        click.echo("migrated to head")

    @app.cli.command("demo")
    def demo() -> None:
        """Load the demo data (idempotent) and print fresh enrollment codes of the demo devices."""
        for line in load_demo_and_describe():
            click.echo(line)

    @app.cli.command("bump-epoch")
    def bump_epoch() -> None:
        """Start a new sync epoch (after a restore): every device must push, then refetch its scope."""
        from models.server_state import bump_epoch as bump

        with unit_of_work() as session:
            epoch = bump(session)
        click.echo(f"sync epoch is now {epoch}")

    compact_feed_command(app)
    worker_command(app)
    from server.print_runs import print_run_command

    print_run_command(app)
    from server.api.treasury import treasury_command

    treasury_command(app)


def compact_feed_command(app: Flask) -> None:
    @app.cli.command("compact-feed")
    def compact_feed() -> None:
        """Remove replaced changes and old tombstones from the device feed; raise the feed floor past them."""
        from models.feed import compact

        rt = runtime()
        c = rt.config
        with unit_of_work() as session:
            done = compact(
                session,
                rt.clock(),
                tombstone_age=timedelta(days=c.tombstone_days),
                superseded_age=timedelta(days=c.superseded_days),
            )
        click.echo(f"{'removed':<22} {'rows':>10}")
        click.echo(f"{'replaced changes':<22} {done.superseded:>10,}")
        click.echo(f"{'tombstones':<22} {done.tombstones:>10,}")
        click.echo(f"feed floor is now id {done.feed_floor_id} (older cursors get reset_required)")


def worker_command(app: Flask) -> None:
    @app.cli.command("worker")
    @click.option("--once", is_flag=True, help="run every job once, print what each did, and exit")
    @click.option("--job", "names", multiple=True, help="only these jobs (repeatable)")
    def worker(once: bool, names: tuple[str, ...]) -> None:
        """Run the periodic jobs (suspense sweep, feed compaction …); one worker leads, others stand by."""
        from server.worker import JOBS, run_forever, run_once, table

        unknown = set(names) - {job.name for job in JOBS}
        if unknown:
            raise click.BadParameter(f"no such job: {', '.join(sorted(unknown))}", param_hint="--job")
        jobs = [job for job in JOBS if not names or job.name in names]
        if once:
            outcomes = run_once(jobs)
            for line in table(outcomes):
                click.echo(line)
            if not all(o.ok for o in outcomes):
                raise SystemExit(1)
            return
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        run_forever(jobs)


def load_demo_and_describe() -> list[str]:
    """Load demo data in one transaction; the lines to print (logins and enrollment codes)."""
    from models.demo import DEMO_DISTRICTS, load_demo

    rt = runtime()
    with unit_of_work() as session:
        devices = load_demo(
            session,
            password=rt.config.demo_password,
            now=rt.clock(),
            production=rt.config.is_production,
            code_ttl=timedelta(hours=rt.config.enrollment_code_hours),
        )
    lines = ["", "데모 계정 (password: JINGSU_DEMO_PASSWORD, default jingsu-demo)", "  admin"]
    for district in DEMO_DISTRICTS:
        lines.append(f"  clerk.{district}   officer.{district}.1   officer.{district}.2")
    lines += ["", f"{'device_id':<38} {'jurisdiction':<12} {'enrollment code':<16} label"]
    for d in devices:
        lines.append(f"{d.device_id:<38} {d.jurisdiction:<12} {d.enrollment_code:<16} {d.label}")
    return lines
