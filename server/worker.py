"""The background worker: ``flask --app wsgi worker`` claims the jobs of ``services.jobs`` from PostgreSQL and runs
them (DESIGN.md §2, §8): the periodic ones (suspense sweep, payment sweep, owner lookups behind the 사전통지,
business date with the arrears steps and the hotlist, feed compaction, the outbox's purge) and the one-off ones
(print runs) — and, between jobs, delivers the outbox (``services.outbox.deliver_due``).

Any number of workers may run, on any number of machines: each claims due jobs from the ``jobs`` table, and due
outbox rows from ``outbox``, with ``FOR UPDATE SKIP LOCKED`` under a lease (``JINGSU_JOB_LEASE_SECONDS``,
``JINGSU_OUTBOX_LEASE_SECONDS``), so they share the work and what a dead worker held is taken over when its lease
runs out. No app context: what the jobs need is built from the configuration (``server.wiring``). SIGTERM stops
the worker after the job at hand; Ctrl-C hands that job back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import timedelta

from server import wiring
from server.runtime import Runtime
from services import outbox as outbox_service
from services.job_runs import worker_id
from services.jobs import JOBS, TASKS, Job, Outcome, Worker, table
from services.uow import transactions

__all__ = ["JOBS", "TASKS", "Job", "Outcome", "deliver", "run_forever", "run_once", "table", "worker"]

log = logging.getLogger("jingsu.worker")


def worker(rt: Runtime, name: str | None = None) -> Worker:
    """This process as a worker, named ``name`` (default ``host:pid``)."""
    me = name or worker_id()
    return Worker(
        transaction=transactions(rt.sessions),
        clock=rt.clock,
        inputs=wiring.job_inputs(rt),
        name=me,
        lease=timedelta(seconds=rt.config.job_lease_seconds),
        deliver=lambda: _delivered(rt, me),
    )


def deliver(rt: Runtime, name: str) -> outbox_service.DeliveryReport | None:
    """One round of outbox deliveries (``services.outbox.deliver_due``); a failure is logged, not raised."""
    try:
        report = outbox_service.deliver_due(
            transactions(rt.sessions),
            rt.clock,
            wiring.outside(rt),
            name,
            limit=rt.config.outbox_batch,
            policy=wiring.outbox_policy(rt),
        )
    except Exception:  # the database went away, say: the next round tries again
        log.exception("outbox delivery failed")
        return None
    if report.claimed:
        log.info("outbox: %s", report.summary())
    return report


def _delivered(rt: Runtime, name: str) -> int:
    report = deliver(rt, name)
    return 0 if report is None else report.claimed


def run_once(rt: Runtime, jobs: Sequence[Job], name: str | None = None) -> list[Outcome]:
    """Run each job once, now, recording the runs; a failure is reported, not raised."""
    return worker(rt, name).run_once([job.name for job in jobs])


def run_forever(
    rt: Runtime,
    names: Sequence[str] | None = None,
    *,
    name: str | None = None,
    stop: threading.Event | None = None,
    tick: float | None = None,
) -> None:
    """Claim and run due jobs (of ``names``, default all) and deliver the outbox until ``stop`` is set; wait
    ``tick`` seconds (default ``JINGSU_WORKER_POLL_MS``) whenever nothing was due."""
    idle = tick if tick is not None else rt.config.worker_poll_ms / 1000
    worker(rt, name).serve(stop or threading.Event(), idle=idle, names=names)
