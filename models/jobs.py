"""The worker's jobs as rows (DESIGN.md §8, migration 0013): periodic and one-off jobs in one table, claimed with
``FOR UPDATE SKIP LOCKED`` by any number of workers, and a record of every run (``job_runs``).

A row is a periodic job (``every`` set, ``key`` = its name, one row each, upserted by ``schedule``) or a one-off job
(``every`` null, ``key`` naming what it is for, e.g. ``print-run:42``, added by ``enqueue``). It is *due* when it is
``queued`` and its ``run_after`` has come, or ``running`` under a lease that has run out (its worker died).

A worker claims one due row in a short transaction of its own (``claim_next``; ``take`` claims one by key, for a
job run by hand): the lease (``leased_by``, ``leased_until``, ``run_id``) and a started ``job_runs`` row are written
and committed at once. The job then runs in transactions of its own, a long one renewing its lease as it goes
(``renew``; ``False`` once another worker has taken the job over). ``finish`` records the run's end (counts,
summary, error) and reschedules a periodic job ``every`` after now, or closes a one-off job ``done`` or ``failed``;
``let_go`` hands a job back at once when its worker stops. A worker killed mid-job loses nothing: its lease runs out,
the next claim closes its run as lost and runs the job again (every job is safe to repeat).

Times here are the database server's wall clock (``clock_timestamp()``): leases are compared across machines, and
the business date (``models.arrears.clock``) has nothing to do with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    ForeignKey,
    Integer,
    Interval,
    String,
    Text,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base
from models.errors import Conflict, NotFound

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATUSES = (QUEUED, RUNNING, DONE, FAILED)
KEEP_RUNS = timedelta(days=30)  # a periodic job's runs older than this are removed when it finishes another
NOW = func.clock_timestamp()  # the database server's wall clock, not the transaction's start


class JobRow(Base):
    """A periodic job (``every``) or a one-off job (``payload``), its schedule and the lease of the worker running
    it."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(120), unique=True)
    every: Mapped[timedelta | None] = mapped_column(Interval)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    status: Mapped[str] = mapped_column(String(10))
    run_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    leased_by: Mapped[str | None] = mapped_column(String(120))
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)


class JobRun(Base):
    """One run of a job: which worker, when it started and ended, what it did (``counts``, ``summary``) or why it
    failed. ``finished_at`` null: running, or its worker died (the next claim closes it as lost)."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    name: Mapped[str] = mapped_column(String(40))
    worker: Mapped[str] = mapped_column(String(120))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ok: Mapped[bool | None] = mapped_column(Boolean)
    counts: Mapped[dict[str, int] | None] = mapped_column(JSONB)
    summary: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class JobBusy(Conflict):
    """Another worker holds the job's lease (it is running there now)."""

    code = "job_busy"


class LeaseLost(Exception):
    """The job is no longer the claim's: its lease ran out and another worker took the job over."""


@dataclass(frozen=True)
class Claim:
    """A job leased to ``worker`` until it renews, finishes or lets go; ``run_id`` is the run it records."""

    job_id: int
    run_id: int
    name: str
    key: str
    payload: dict[str, Any]
    every: timedelta | None
    attempt: int  # 1 on the first claim; more when earlier workers stopped before they finished
    worker: str
    lease: timedelta


@dataclass(frozen=True)
class Report:
    """What a run did: one line for people, and its counts (``{"matched": 3, …}``)."""

    summary: str
    counts: dict[str, int]


def _due() -> ColumnElement[bool]:
    return or_(
        and_(JobRow.status == QUEUED, JobRow.run_after <= NOW),
        and_(JobRow.status == RUNNING, JobRow.leased_until <= NOW),
    )


def schedule(session: Session, periodic: Mapping[str, timedelta]) -> None:
    """One row per periodic job (safe to repeat, as every worker does when it starts): a new one is due at once; a
    changed interval takes effect from now."""
    for name, every in periodic.items():
        stmt = pg_insert(JobRow).values(
            name=name, key=name, every=every, payload={}, status=QUEUED, run_after=NOW, attempts=0, created_at=NOW
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[JobRow.key],
            set_={"every": every, "run_after": func.least(JobRow.run_after, NOW + every)},
            where=JobRow.every.is_distinct_from(every),
        )
        session.execute(stmt)


def enqueue(
    session: Session,
    name: str,
    key: str,
    payload: dict[str, Any],
    *,
    leased_to: str | None = None,
    lease: timedelta = timedelta(minutes=5),
) -> JobRow:
    """A one-off job, due at once; the existing row when ``key`` was queued before. ``leased_to``: the worker that
    will run it itself (a command showing its progress; ``take`` then claims it) — should it die, its lease runs out
    and any worker takes the job."""
    values: dict[str, Any] = {"status": QUEUED}
    if leased_to is not None:
        values = {"status": RUNNING, "leased_by": leased_to, "leased_until": NOW + lease}
    stmt = pg_insert(JobRow).values(
        name=name, key=key, payload=payload, run_after=NOW, attempts=0, created_at=NOW, **values
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=[JobRow.key]))
    row = session.scalar(select(JobRow).where(JobRow.key == key))
    assert row is not None
    return row


def claim_next(session: Session, worker: str, lease: timedelta, names: Sequence[str]) -> Claim | None:
    """Lease the job of ``names`` that has been due longest to ``worker`` (rows other claims hold locked are
    skipped, not waited for); the caller commits at once. None when nothing is due."""
    row = session.scalar(
        select(JobRow)
        .where(JobRow.name.in_(names), _due())
        .order_by(JobRow.run_after, JobRow.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return _lease(session, row, worker, lease) if row is not None else None


def take(session: Session, key: str, worker: str, lease: timedelta) -> Claim:
    """Lease the job ``key`` to ``worker`` now, due or not (a job run by hand, a run's own command); the caller
    commits at once. Raises ``NotFound`` for no such job or a one-off job already finished, ``JobBusy`` while
    another worker's lease holds it."""
    row = session.scalar(select(JobRow).where(JobRow.key == key).with_for_update())
    if row is None or row.status in (DONE, FAILED):
        raise NotFound(f"no job {key} waiting to run", field="name")
    busy = session.scalar(select(JobRow.leased_until > NOW).where(JobRow.id == row.id))
    if row.status == RUNNING and row.leased_by != worker and busy:
        raise JobBusy(f"{key} is running on worker {row.leased_by}", field="name", worker=row.leased_by)
    return _lease(session, row, worker, lease)


def _lease(session: Session, row: JobRow, worker: str, lease: timedelta) -> Claim:
    if row.status == RUNNING:  # taken over: a run its earlier worker left open will never finish
        session.execute(
            update(JobRun)
            .where(JobRun.job_id == row.id, JobRun.finished_at.is_(None))
            .values(
                finished_at=NOW,
                ok=False,
                error=func.concat("lost: worker ", JobRun.worker, " stopped before it finished (its lease ran out)"),
            )
        )
    run = JobRun(job_id=row.id, name=row.name, worker=worker, started_at=NOW)
    session.add(run)
    session.flush()
    row.status, row.leased_by, row.leased_until, row.run_id = RUNNING, worker, NOW + lease, run.id
    row.attempts += 1
    session.flush()
    return Claim(row.id, run.id, row.name, row.key, dict(row.payload), row.every, row.attempts, worker, lease)


def renew(session: Session, claim: Claim) -> bool:
    """Extend the claim's lease by its length from now; ``False`` when the job is no longer the claim's (its lease
    ran out and another worker took it over): the caller stops."""
    done = session.execute(
        update(JobRow)
        .where(JobRow.id == claim.job_id, JobRow.status == RUNNING, JobRow.run_id == claim.run_id)
        .values(leased_until=NOW + claim.lease)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def hold(session: Session, claim: Claim) -> None:
    """``renew``, in the transaction about to write the job's next step; raises ``LeaseLost`` (the caller stops, and
    its transaction rolls back) when the job is another worker's now."""
    if not renew(session, claim):
        raise LeaseLost(f"{claim.key}: another worker took the job over")


def finish(session: Session, claim: Claim, *, report: Report | None, error: str | None) -> bool:
    """Record the run's end (``report`` when it did its work, ``error`` otherwise) and release the job: a periodic
    one is due again ``every`` after now (its runs older than ``KEEP_RUNS`` go), a one-off one is ``done`` or
    ``failed``. ``False`` when the job was no longer the claim's: only the run is recorded."""
    ok = error is None
    session.execute(
        update(JobRun)
        .where(JobRun.id == claim.run_id)
        .values(
            finished_at=NOW,
            ok=ok,
            counts=report.counts if report else None,
            summary=report.summary if report else None,
            error=error[:2000] if error else None,
        )
    )
    values: dict[str, Any] = {"leased_by": None, "leased_until": None, "run_id": None, "error": error}
    if claim.every is not None:
        values |= {"status": QUEUED, "run_after": NOW + claim.every, "attempts": 0}
        session.execute(delete(JobRun).where(JobRun.job_id == claim.job_id, JobRun.started_at < NOW - KEEP_RUNS))
    else:
        values |= {"status": DONE if ok else FAILED, "finished_at": NOW}
    done = session.execute(
        update(JobRow).where(JobRow.id == claim.job_id, JobRow.run_id == claim.run_id).values(**values)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def let_go(session: Session, claim: Claim, error: str) -> None:
    """Hand the job back at once (its worker is stopping): due now for any worker; the run recorded unfinished."""
    session.execute(update(JobRun).where(JobRun.id == claim.run_id).values(finished_at=NOW, ok=False, error=error))
    session.execute(
        update(JobRow).where(JobRow.id == claim.job_id, JobRow.run_id == claim.run_id).values(leased_until=NOW)
    )


# --- reads ----------------------------------------------------------------------------------------------------------


def _last_runs(session: Session, by: Any) -> dict[Any, JobRun]:
    """The newest run of each ``by`` (``JobRun.job_id`` or ``JobRun.name``)."""
    rows = session.scalars(select(JobRun).ext(distinct_on(by)).order_by(by, JobRun.id.desc()))
    return {getattr(run, by.key): run for run in rows}


@dataclass(frozen=True)
class PeriodicLine:
    job: JobRow
    last: JobRun | None


@dataclass(frozen=True)
class QueueLine:
    """One-off jobs of one name: how many are in each status, and the newest run."""

    name: str
    statuses: dict[str, int]
    last: JobRun | None


def periodic_jobs(session: Session) -> list[PeriodicLine]:
    """Every periodic job with its newest run, by name."""
    last = _last_runs(session, JobRun.job_id)
    rows = session.scalars(select(JobRow).where(JobRow.every.is_not(None)).order_by(JobRow.name))
    return [PeriodicLine(row, last.get(row.id)) for row in rows]


def one_off_jobs(session: Session) -> list[QueueLine]:
    """The one-off jobs by name: counts per status and the newest run."""
    counts: dict[str, dict[str, int]] = {}
    for name, status, n in session.execute(
        select(JobRow.name, JobRow.status, func.count())
        .where(JobRow.every.is_(None))
        .group_by(JobRow.name, JobRow.status)
        .order_by(JobRow.name, JobRow.status)
    ):
        counts.setdefault(name, {})[status] = n
    last = _last_runs(session, JobRun.name)
    return [QueueLine(name, statuses, last.get(name)) for name, statuses in counts.items()]


def job(session: Session, key: str) -> JobRow | None:
    return session.scalar(select(JobRow).where(JobRow.key == key))


def runs(session: Session, job_id: int) -> list[JobRun]:
    """A job's runs, oldest first."""
    return list(session.scalars(select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.id)))


def now(session: Session) -> datetime:
    """The database server's wall clock."""
    found = session.scalar(select(NOW))
    assert found is not None
    return found
