"""The background worker: ``flask --app wsgi worker`` claims the jobs of ``services.jobs`` from PostgreSQL and runs
them (DESIGN.md §2, §8): the periodic ones (suspense sweep, payment sweep, owner lookups behind the 사전통지,
business date with the arrears steps and the hotlist, feed compaction) and the one-off ones (print runs).

Any number of workers may run, on any number of machines: each claims due jobs from the ``jobs`` table with
``FOR UPDATE SKIP LOCKED`` under a lease (``JINGSU_JOB_LEASE_SECONDS``), so they share the work and a job whose
worker died is taken over when its lease runs out. No app context: what the jobs need is built from the
configuration (``server.wiring``). SIGTERM stops the worker after the job at hand; Ctrl-C hands that job back.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta

from server import wiring
from server.runtime import Runtime
from services.job_runs import worker_id
from services.jobs import JOBS, TASKS, Job, Outcome, Worker, table
from services.uow import transactions

__all__ = ["JOBS", "TASKS", "Job", "Outcome", "run_forever", "run_once", "table", "worker"]


def worker(rt: Runtime, name: str | None = None) -> Worker:
    """This process as a worker, named ``name`` (default ``host:pid``)."""
    return Worker(
        transaction=transactions(rt.sessions),
        clock=rt.clock,
        inputs=wiring.job_inputs(rt),
        name=name or worker_id(),
        lease=timedelta(seconds=rt.config.job_lease_seconds),
    )


def run_once(rt: Runtime, jobs: Sequence[Job], name: str | None = None) -> list[Outcome]:
    """Run each job once, now, recording the runs; a failure is reported, not raised."""
    return worker(rt, name).run_once([job.name for job in jobs])


def run_forever(
    rt: Runtime, names: Sequence[str] | None = None, *, name: str | None = None, stop: threading.Event | None = None
) -> None:
    """Claim and run due jobs (of ``names``, default all) until ``stop`` is set."""
    worker(rt, name).serve(stop or threading.Event(), idle=rt.config.worker_poll_ms / 1000, names=names)
