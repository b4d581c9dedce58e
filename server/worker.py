"""The background worker: ``flask --app wsgi worker`` runs the periodic jobs (DESIGN.md §2): the suspense sweep,
the owner lookups behind the 사전통지, the business date with the arrears steps and the hotlist, feed compaction.

Each job is a domain step that is safe to repeat (idempotent), run in its own transaction every ``every``. Several
workers may run (on several machines): one of them leads, holding a PostgreSQL advisory lock on its own connection
for as long as it lives; the others wait to take over. A job that fails is logged and tried again on its next turn;
the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from server.runtime import Runtime, runtime, unit_of_work

log = logging.getLogger("jingsu.worker")

_LEADER_LOCK = 0x4A53_5701  # pg_advisory_lock key of the leading worker


@dataclass(frozen=True)
class Job:
    """A periodic step: ``run`` returns one line saying what it did."""

    name: str
    every: timedelta
    run: Callable[[Session, datetime, Runtime], str]


@dataclass
class Outcome:
    job: str
    ok: bool
    summary: str
    seconds: float


def _compact_feed(session: Session, now: datetime, rt: Runtime) -> str:
    from models.feed import compact

    c = rt.config
    done = compact(
        session, now, tombstone_age=timedelta(days=c.tombstone_days), superseded_age=timedelta(days=c.superseded_days)
    )
    return f"{done.superseded} replaced changes, {done.tombstones} tombstones removed; floor {done.feed_floor_id}"


def _sweep_suspense(session: Session, now: datetime, rt: Runtime) -> str:
    from models.payments import sweep_suspense
    from models.suspense import refunds_due

    matched = sweep_suspense(session, now)
    due = refunds_due(session, now, timedelta(days=rt.config.suspense_refund_days))
    return f"{matched} suspense payments matched to notices that arrived; {due} unmatched long enough to refund"


def _sweep_payments(session: Session, now: datetime, rt: Runtime) -> str:
    from server.payments_web import gateway, sweep_payments

    c = rt.config
    return sweep_payments(
        session,
        gateway(),
        c.gateway_name,
        now,
        timedelta(minutes=c.payment_sweep_minutes),
        abandon_after=timedelta(hours=c.payment_abandon_hours),
    ).summary()


def _arrears_steps(session: Session, now: datetime, rt: Runtime) -> str:
    from models import arrears
    from models.base import Actor

    return arrears.advance_to_today(session, now, Actor.system()).summary()


def _lookup_owners(session: Session, now: datetime, rt: Runtime) -> str:
    from models import fines

    report = fines.lookup_owners(session, rt.registry(), rt.cipher, now)
    return (
        f"{report.looked_up} plates looked up, {len(report.noticed)} 사전통지 sent, "
        f"{len(report.not_registered)} not registered"
    )


JOBS: tuple[Job, ...] = (
    Job("sweep-suspense", timedelta(minutes=1), _sweep_suspense),
    Job("sweep-payments", timedelta(minutes=3), _sweep_payments),
    Job("lookup-owners", timedelta(minutes=5), _lookup_owners),
    Job("arrears-steps", timedelta(hours=1), _arrears_steps),
    Job("compact-feed", timedelta(days=1), _compact_feed),
)


def run_once(jobs: Sequence[Job]) -> list[Outcome]:
    """Run each job once, each in its own transaction; a failure is reported, not raised."""
    rt = runtime()
    outcomes = []
    for job in jobs:
        started = time.perf_counter()
        try:
            with unit_of_work() as session:
                summary = job.run(session, rt.clock(), rt)
            outcomes.append(Outcome(job.name, True, summary, time.perf_counter() - started))
        except Exception as exc:  # one job's failure must not stop the others; it is logged and retried
            log.exception("job %s failed", job.name)
            outcomes.append(Outcome(job.name, False, f"{type(exc).__name__}: {exc}", time.perf_counter() - started))
    return outcomes


def run_forever(jobs: Sequence[Job], *, tick: float = 5.0, stop: Callable[[], bool] = lambda: False) -> None:
    """Lead (or wait to lead), then run every job when it is due until ``stop()``."""
    rt = runtime()
    assert rt.engine is not None, "the worker needs its own engine"
    with rt.engine.connect() as leader:
        while not leader.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LEADER_LOCK}).scalar():
            leader.commit()
            if stop():
                return
            time.sleep(tick)
        leader.commit()
        log.info("worker leads: %s", ", ".join(job.name for job in jobs))
        try:
            due = {job.name: 0.0 for job in jobs}
            while not stop():
                now = time.monotonic()
                ready = [job for job in jobs if due[job.name] <= now]
                for outcome in run_once(ready):
                    log.info("%s %s: %s (%.2f s)", outcome.job, "ok" if outcome.ok else "FAILED", outcome.summary,
                             outcome.seconds)  # fmt: skip
                for job in ready:
                    due[job.name] = now + job.every.total_seconds()
                time.sleep(tick)
        finally:
            # the connection goes back to the pool, not away: the session-level lock must be let go explicitly
            leader.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LEADER_LOCK})
            leader.commit()


def table(outcomes: Sequence[Outcome]) -> list[str]:
    lines = [f"{'job':<18} {'result':<7} {'seconds':>8}  what it did", "-" * 78]
    for o in outcomes:
        lines.append(f"{o.job:<18} {'ok' if o.ok else 'FAILED':<7} {o.seconds:>8.2f}  {o.summary}")
    return lines
