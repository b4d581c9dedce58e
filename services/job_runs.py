"""Running one claimed job (``models.jobs.Claim``) and recording its run: what the worker does with every job it
claims (``services.jobs``), and what a command does that runs its own job (``services.mailing.print_run``).

The body runs in transactions of its own; then the end of the run is recorded in a short transaction
(``models.jobs.finish``). A body that raises is recorded as failed (its error kept, the worker goes on); one that
lost its lease (``LeaseLost``) is recorded and leaves the job to the worker that took it over; one interrupted
(Ctrl-C, the worker stopping) hands the job back at once for any worker to take, then lets the interruption go on.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from models import jobs
from models.jobs import Claim, Report
from services.uow import Transactions

log = logging.getLogger("jingsu.worker")


@dataclass
class Outcome:
    """One run as the worker reports it: the job, whether it did its work, one line, how long, its counts."""

    job: str
    ok: bool
    summary: str
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)


def worker_id(label: str = "") -> str:
    """The default name of this process as a worker: ``host:pid`` (``:label`` appended when given)."""
    base = f"{socket.gethostname()}:{os.getpid()}"
    return f"{base}:{label}" if label else base


def run_claimed(transaction: Transactions, claim: Claim, body: Callable[[], Report]) -> Outcome:
    """Run ``body`` for ``claim`` and record the run; a failure is reported in the outcome, not raised (only an
    interruption is, after the job was handed back)."""
    started = time.perf_counter()
    report: Report | None = None
    error: str | None = None
    try:
        report = body()
    except jobs.LeaseLost as exc:
        error = f"LeaseLost: {exc}"
        log.warning("job %s: lease lost, another worker has it now", claim.key)
    except Exception as exc:  # one job's failure must not stop the worker: recorded, and tried again on its turn
        error = f"{type(exc).__name__}: {exc}"
        log.exception("job %s failed", claim.key)
    except BaseException as exc:  # stopping: whoever claims next takes the job over at once
        with transaction() as session:
            jobs.let_go(session, claim, f"interrupted ({type(exc).__name__}): the worker stopped")
        raise
    with transaction() as session:
        jobs.finish(session, claim, report=report, error=error)
    seconds = time.perf_counter() - started
    if report is None:
        return Outcome(claim.key, False, error or "", seconds)
    return Outcome(claim.key, True, report.summary, seconds, dict(report.counts))
