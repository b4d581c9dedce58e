"""The worker's jobs (DESIGN.md §2, §8): the periodic ones — the suspense sweep, the payment sweep, the owner lookups
behind the 사전통지, the business date with the arrears steps and the hotlist, feed compaction, the outbox's purge —
and the one-off ones (``print-run``: a print run started over the API), claimed from PostgreSQL by any number of
workers. A job never waits on an outside system: the payment sweep and the owner lookups queue their calls in the
outbox, which the worker delivers between jobs (``services.outbox.deliver_due``).

Each periodic job is a domain step that is safe to repeat (idempotent), a function of explicit inputs: how to open
a transaction, the time, and what it needs (``JobInputs``: the settings, the cipher, the mailroom) — no app, no
request. Most run in one short transaction (``one_transaction``); a long one commits a bounded chunk per
transaction (the business date's steps: ``services.steps``; compaction: ``services.compaction``). Each returns a
``Report`` (one line and its counts). A one-off job (``Task``) runs in transactions of its own from its claim
(``services.mailing.render_job``).

A ``Worker`` is one worker: it keeps the periodic jobs' rows (``schedule``), claims whichever job is due (``next``;
``models.jobs.claim_next``: ``FOR UPDATE SKIP LOCKED``, so a second worker takes what the first has not), runs it and
records the run (``services.job_runs``); ``by_hand`` runs one job now (``flask --app wsgi jobs run NAME``,
``worker --once``); ``serve`` loops until told to stop. ``table`` and ``listing`` are what the commands print.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from models import fines, jobs, outbox, payments, suspense
from models.base import Actor, Clock
from models.crypto import PiiCipher
from models.errors import DomainError
from models.jobs import Claim, Report
from protocol.amounts import SEOUL
from services import compaction, mailing, steps
from services import payments as payment_service
from services.job_runs import Outcome, run_claimed
from services.uow import Transactions

__all__ = ["JOBS", "TASKS", "Worker", "Job", "JobInputs", "JobSettings", "Outcome", "Report", "Task", "table"]

log = logging.getLogger("jingsu.worker")


@dataclass(frozen=True)
class JobSettings:
    tombstone_age: timedelta  # JINGSU_TOMBSTONE_DAYS
    superseded_age: timedelta  # JINGSU_SUPERSEDED_DAYS
    suspense_refund_after: timedelta  # JINGSU_SUSPENSE_REFUND_DAYS
    gateway_name: str
    payment_sweep_after: timedelta  # JINGSU_PAYMENT_SWEEP_MINUTES
    payment_abandon_after: timedelta  # JINGSU_PAYMENT_ABANDON_HOURS
    outbox_keep: timedelta = timedelta(days=30)  # JINGSU_OUTBOX_KEEP_DAYS


@dataclass(frozen=True)
class JobInputs:
    """What the jobs need besides a transaction and the time (no job calls an outside system: the outbox does)."""

    settings: JobSettings
    cipher: PiiCipher
    mailroom: mailing.Mailroom | None = None  # the print runs' (none: a crew that prints nothing)


def compact_feed(
    transaction: Transactions, now: datetime, tombstone_age: timedelta, superseded_age: timedelta
) -> Report:
    done = compaction.compact_feed(transaction, now, tombstone_age=tombstone_age, superseded_age=superseded_age)
    return Report(
        f"{done.superseded} replaced changes, {done.tombstones} tombstones removed in {done.chunks} chunks; "
        f"floor {done.feed_floor_id}",
        {"superseded": done.superseded, "tombstones": done.tombstones, "feed_floor_id": done.feed_floor_id,
         "chunks": done.chunks},
    )  # fmt: skip


def sweep_suspense(session: Session, now: datetime, refund_after: timedelta) -> Report:
    matched = payments.sweep_suspense(session, now)
    due = suspense.refunds_due(session, now, refund_after)
    return Report(
        f"{matched} suspense payments matched to notices that arrived; {due} unmatched long enough to refund",
        {"matched": matched, "refund_due": due},
    )


def sweep_payments(session: Session, now: datetime, settings: JobSettings) -> Report:
    queued = payment_service.queue_status_queries(
        session, settings.gateway_name, now, settings.payment_sweep_after, abandon_after=settings.payment_abandon_after
    )
    return Report(f"{queued} payments left pending queued for a status query at the gateway (outbox)",
                  {"queued": queued})  # fmt: skip


def arrears_steps(transaction: Transactions, now: datetime) -> Report:
    report = steps.advance_to_today(transaction, now, Actor.system())
    counts = {"receivables": report.receivables, "posted": report.posted, "skipped": report.skipped,
              "amount": report.amount, "defaults": report.defaults, "chunks": report.chunks}  # fmt: skip
    return Report(f"{report.summary()} in {report.chunks} chunks", counts)


def lookup_owners(session: Session, now: datetime) -> Report:
    asked = fines.request_owner_lookups(session, now)
    return Report(f"{len(asked.queued)} plates queued for 차적조회 (outbox; the 사전통지 follows each answer)",
                  {"queued": len(asked.queued)})  # fmt: skip


def purge_outbox(session: Session, now: datetime, keep: timedelta) -> Report:
    purged = outbox.purge(session, now - keep)
    return Report(f"{purged} delivered outbox rows older than {keep.days} days removed", {"purged": purged})


JobBody = Callable[[Transactions, datetime, "JobInputs"], Report]


def one_transaction(step: Callable[[Session, datetime, JobInputs], Report]) -> JobBody:
    """A job that does its work in one (short) transaction."""

    def run(transaction: Transactions, now: datetime, inputs: JobInputs) -> Report:
        with transaction() as session:
            return step(session, now, inputs)

    return run


@dataclass(frozen=True)
class Job:
    """A periodic step, run every ``every`` in transactions of its own: ``run`` returns what it did."""

    name: str
    every: timedelta
    run: JobBody


@dataclass(frozen=True)
class Task:
    """A kind of one-off job: ``run`` does the claimed job in transactions of its own (``progress(n)`` as it goes,
    for a command that shows it)."""

    name: str
    run: Callable[[JobInputs, Claim, mailing.Progress | None], Report]


JOBS: tuple[Job, ...] = (
    Job(
        "sweep-suspense",
        timedelta(minutes=1),
        one_transaction(lambda s, now, i: sweep_suspense(s, now, i.settings.suspense_refund_after)),
    ),
    Job("sweep-payments", timedelta(minutes=3), one_transaction(lambda s, now, i: sweep_payments(s, now, i.settings))),
    Job("lookup-owners", timedelta(minutes=5), one_transaction(lambda s, now, i: lookup_owners(s, now))),
    Job("arrears-steps", timedelta(hours=1), lambda t, now, i: arrears_steps(t, now)),
    Job(
        "compact-feed",
        timedelta(days=1),
        lambda t, now, i: compact_feed(t, now, i.settings.tombstone_age, i.settings.superseded_age),
    ),
    Job(
        "purge-outbox",
        timedelta(days=1),
        one_transaction(lambda s, now, i: purge_outbox(s, now, i.settings.outbox_keep)),
    ),
)


def _print(inputs: JobInputs, claim: Claim, progress: mailing.Progress | None) -> Report:
    if inputs.mailroom is None:
        raise LookupError("this worker was given no mailroom: it cannot print")
    return mailing.render_job(inputs.mailroom, claim, progress=progress)


TASKS: tuple[Task, ...] = (Task(mailing.JOB_NAME, _print),)


@dataclass(frozen=True)
class Worker:
    """One worker: its name (``host:pid`` by default), the lease it takes on a job, how it opens transactions, the
    clock the jobs are given (the business clock; leases use the database's) and the jobs' inputs."""

    transaction: Transactions
    clock: Clock
    inputs: JobInputs
    name: str
    lease: timedelta = timedelta(minutes=5)
    jobs: Sequence[Job] = JOBS
    tasks: Sequence[Task] = TASKS
    deliver: Callable[[], int] | None = None  # a round of outbox deliveries between jobs; how many rows it took

    def names(self) -> list[str]:
        """Every job this worker can run: the periodic ones, then the kinds of one-off job."""
        return [job.name for job in self.jobs] + [task.name for task in self.tasks]

    def schedule(self) -> None:
        """The periodic jobs' rows (``models.jobs.schedule``; safe to repeat)."""
        with self.transaction() as session:
            jobs.schedule(session, {job.name: job.every for job in self.jobs})

    def next(self, names: Sequence[str] | None = None) -> Outcome | None:
        """Claim the job of ``names`` (default: all this worker knows) that has been due longest, run it and record
        the run; None when nothing is due."""
        with self.transaction() as session:
            claim = jobs.claim_next(session, self.name, self.lease, names or self.names())
        return None if claim is None else self.run(claim)

    def by_hand(self, key: str, *, progress: mailing.Progress | None = None) -> Outcome:
        """Run the job ``key`` now, due or not, and record the run: a periodic job by its name, a one-off job by its
        key (``print-run:42``). Raises ``models.errors.NotFound`` (no such job waiting) or ``models.jobs.JobBusy``
        (another worker runs it now)."""
        self.schedule()
        with self.transaction() as session:
            claim = jobs.take(session, key, self.name, self.lease)
        return self.run(claim, progress=progress)

    def run(self, claim: Claim, *, progress: mailing.Progress | None = None) -> Outcome:
        """Run a claimed job and record the run (``services.job_runs.run_claimed``)."""
        periodic = {job.name: job for job in self.jobs}
        tasks = {task.name: task for task in self.tasks}

        def body() -> Report:
            if claim.every is None:
                return tasks[claim.name].run(self.inputs, claim, progress)
            return periodic[claim.name].run(self.holding(claim), self.clock(), self.inputs)

        return run_claimed(self.transaction, claim, body)

    def holding(self, claim: Claim) -> Transactions:
        """The job's transactions, each renewing its lease first (``models.jobs.hold``): a job that commits a chunk
        per transaction keeps its lease for as long as it makes progress, and stops (``LeaseLost``, its chunk rolled
        back) if another worker took it over meanwhile."""

        @contextmanager
        def one() -> Iterator[Session]:
            with self.transaction() as session:
                jobs.hold(session, claim)
                yield session

        return one

    def serve(self, stop: threading.Event, *, idle: float = 1.0, names: Sequence[str] | None = None) -> None:
        """Deliver the outbox (a round) and claim and run a due job, one at a time, until ``stop`` is set; wait
        ``idle`` seconds whenever neither found anything to do. A database that cannot be reached is logged and
        waited out (a claimed job's lease runs out meanwhile, and whichever worker claims next runs it again)."""
        log.info("worker %s runs %s", self.name, ", ".join(names or self.names()))
        scheduled = False
        while not stop.is_set():
            delivered = self.deliver() if self.deliver is not None else 0
            try:
                if not scheduled:
                    self.schedule()
                    scheduled = True
                outcome = self.next(names)
            except Exception:
                log.exception("worker %s could not claim a job", self.name)
                outcome = None
            if outcome is None:
                if not delivered:
                    stop.wait(idle)
                continue
            log.info("%s %s: %s (%.2f s)", outcome.job, "ok" if outcome.ok else "FAILED", outcome.summary,
                     outcome.seconds)  # fmt: skip

    def run_once(self, names: Sequence[str]) -> list[Outcome]:
        """Run each periodic job of ``names`` now, by hand; one another worker is running is reported, not run."""
        outcomes = []
        for name in names:
            try:
                outcomes.append(self.by_hand(name))
            except DomainError as exc:
                outcomes.append(Outcome(name, False, f"{exc.code}: {exc.detail}", 0.0))
        return outcomes


# --- what the commands print ----------------------------------------------------------------------------------------


def table(outcomes: Sequence[Outcome]) -> list[str]:
    lines = [f"{'job':<18} {'result':<7} {'seconds':>8}  what it did", "-" * 78]
    for o in outcomes:
        lines.append(f"{o.job:<18} {'ok' if o.ok else 'FAILED':<7} {o.seconds:>8.2f}  {o.summary}")
    return lines


def listing(transaction: Transactions) -> list[str]:
    """``jobs list``: each periodic job with its last run and when it is due next, then the one-off jobs by kind
    (how many in each status, and the last run). Times in Korea (KST)."""
    head = f"{'job':<18} {'every':>5}  {'last start':<14} {'last end':<14} {'result':<7} {'next due':<14} what it did"
    lines = [head + "  (times KST)", "-" * 110]
    with transaction() as session:
        now = jobs.now(session)
        for line in jobs.periodic_jobs(session):
            row, last = line.job, line.last
            if row.status == jobs.RUNNING:
                due = "running" if row.leased_until and row.leased_until > now else "now (lost)"
            else:
                due = "now" if row.run_after <= now else _at(row.run_after)
            lines.append(f"{row.name:<18} {_span(row.every):>5}  {_run_line(last, due)}")
        queue = jobs.one_off_jobs(session)
        if queue:
            lines += ["", f"{'one-off job':<18} {'queued':>6} {'running':>7} {'done':>6} {'failed':>6}  last run"]
        for q in queue:
            counts = " ".join(f"{q.statuses.get(s, 0):>{w}}" for s, w in zip(jobs.STATUSES, (6, 7, 6, 6), strict=True))
            done = "-" if q.last is None else f"{_result(q.last)} {_at(q.last.started_at)} {_did(q.last)}"
            lines.append(f"{q.name:<18} {counts}  {done}")
    return lines


def _run_line(last: jobs.JobRun | None, due: str) -> str:
    if last is None:
        return f"{'-':<14} {'-':<14} {'-':<7} {due:<14} never ran"
    end = _at(last.finished_at) if last.finished_at else "-"
    return f"{_at(last.started_at):<14} {end:<14} {_result(last):<7} {due:<14} {_did(last)}"


def _result(run: jobs.JobRun) -> str:
    if run.ok is None:
        return "running"
    return "ok" if run.ok else "FAILED"


def _did(run: jobs.JobRun) -> str:
    if run.ok is None:
        return f"on worker {run.worker}"
    return (run.summary or "") if run.ok else (run.error or "")


def _at(moment: datetime) -> str:
    return moment.astimezone(SEOUL).strftime("%m-%d %H:%M:%S")


def _span(every: timedelta | None) -> str:
    seconds = int(every.total_seconds()) if every else 0
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
