"""The background worker: ``flask --app wsgi worker`` runs the periodic jobs of ``services.jobs`` (DESIGN.md §2):
the suspense sweep, the owner lookups behind the 사전통지, the business date with the arrears steps and the
hotlist, feed compaction — and, every tick, in every worker (leading or standing by), delivers the outbox
(``services.outbox.deliver_due``: claimed ``FOR UPDATE SKIP LOCKED``, so workers share the rows).

Each job runs in its own transaction every ``every``, with no app context: what the jobs need is built from the
configuration (``server.wiring.job_inputs``). Several workers may run (on several machines): one of them leads,
holding a PostgreSQL advisory lock on its own connection for as long as it lives; the others wait to take over.
A job that fails is logged and tried again on its next turn; the others go on.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence

from sqlalchemy import text

from server import wiring
from server.runtime import Runtime
from services import outbox as outbox_service
from services.jobs import JOBS, Job, Outcome, table
from services.jobs import run_once as run_jobs
from services.uow import transactions

__all__ = ["JOBS", "Job", "Outcome", "deliver", "run_forever", "run_once", "table", "worker_id"]

log = logging.getLogger("jingsu.worker")

_LEADER_LOCK = 0x4A53_5701  # pg_advisory_lock key of the leading worker


def run_once(rt: Runtime, jobs: Sequence[Job]) -> list[Outcome]:
    """Run each job once, each in its own transaction; a failure is reported, not raised."""
    return run_jobs(jobs, transactions(rt.sessions), rt.clock, wiring.job_inputs(rt))


def worker_id() -> str:
    """This worker among the running ones (the outbox's leases name it): host, process, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def deliver(rt: Runtime, worker: str) -> outbox_service.DeliveryReport | None:
    """One round of outbox deliveries (``services.outbox.deliver_due``); a failure is logged, not raised."""
    try:
        report = outbox_service.deliver_due(
            transactions(rt.sessions),
            rt.clock,
            wiring.outside(rt),
            worker,
            limit=rt.config.outbox_batch,
            policy=wiring.outbox_policy(rt),
        )
    except Exception:  # the database went away, say: the next tick tries again
        log.exception("outbox delivery failed")
        return None
    if report.claimed:
        log.info("outbox: %s", report.summary())
    return report


def _deliver_then_wait(rt: Runtime, worker: str, tick: float) -> None:
    """A round of deliveries, then the tick's wait — unless the round was full: more may be due at once."""
    report = deliver(rt, worker)
    if report is None or report.claimed < rt.config.outbox_batch:
        time.sleep(tick)


def run_forever(
    rt: Runtime, jobs: Sequence[Job], *, tick: float = 5.0, stop: Callable[[], bool] = lambda: False
) -> None:
    """Lead (or wait to lead), then run every job when it is due until ``stop()``; deliver the outbox every tick
    either way."""
    assert rt.engine is not None, "the worker needs its own engine"
    worker = worker_id()
    with rt.engine.connect() as leader:
        while not leader.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LEADER_LOCK}).scalar():
            leader.commit()
            if stop():
                return
            _deliver_then_wait(rt, worker, tick)
        leader.commit()
        log.info("worker leads: %s", ", ".join(job.name for job in jobs))
        try:
            due = {job.name: 0.0 for job in jobs}
            while not stop():
                now = time.monotonic()
                ready = [job for job in jobs if due[job.name] <= now]
                for outcome in run_once(rt, ready):
                    log.info("%s %s: %s (%.2f s)", outcome.job, "ok" if outcome.ok else "FAILED", outcome.summary,
                             outcome.seconds)  # fmt: skip
                for job in ready:
                    due[job.name] = now + job.every.total_seconds()
                _deliver_then_wait(rt, worker, tick)
        finally:
            # the connection goes back to the pool, not away: the session-level lock must be let go explicitly
            leader.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LEADER_LOCK})
            leader.commit()
