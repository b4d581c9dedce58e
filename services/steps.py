"""The business date's steps a bounded chunk per transaction (issue 12 §1): moving the date, the daily step, the
month step and every district's hotlist, each committed ``chunk`` receivables (or plates) at a time.

No transaction holds a whole city's month step, so none holds the change feed back for long (a step's transaction
registers as a writer of changes: surcharges tell devices their notices are overdue, the hotlist feeds the PDAs).

The cursor of a run is the last receivable id (or plate) done; across a crash the run is simply started again for
the same business date: every step is idempotent and what a committed chunk decided has left its selection
(a receivable caught up to the day is not selected again), so the rerun resumes where the last chunk ended.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from models import arrears
from models.arrears import StepReport
from models.base import Actor, Clock
from models.rules import law_date
from services.uow import Transactions

CHUNK = 500  # receivables (or plates) per transaction

Progress = Callable[[str, int], None]  # (what, done so far)


def advance(
    transaction: Transactions,
    to: date | None,
    actor: Actor,
    clock: Clock,
    *,
    chunk: int = CHUNK,
    progress: Progress | None = None,
) -> StepReport:
    """Move the business date to ``to`` (``None``: to the clock's Seoul date if that is later) and run the daily
    step, the month step and every district's hotlist for it, a chunk per transaction. Raises what
    ``arrears.move_business_date`` raises (``business_date_backwards``) before anything is done."""
    with transaction() as session:
        if to is None:
            to = max(arrears.business_date(session, clock), law_date(clock()))
        day = arrears.move_business_date(session, to, actor, clock)
    report = StepReport(day, chunks=1)
    for name, step in (("daily", arrears.run_daily_step), ("month", arrears.run_month_step)):
        report.add(run_step(transaction, step, day, actor, chunk=chunk, progress=_named(progress, name)))
    refresh_hotlists(transaction, day, actor, chunk=chunk, progress=_named(progress, "hotlist"))
    return report


Step = Callable[..., StepReport]


def run_step(
    transaction: Transactions,
    step: Step,
    day: date,
    actor: Actor,
    *,
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
) -> StepReport:
    """``step`` (``arrears.run_daily_step`` or ``run_month_step``) for ``day``, ``chunk`` receivables per
    transaction, until a chunk comes back short."""
    report = StepReport(day)
    after: int | None = 0
    while after is not None:
        with transaction() as session:
            part = step(session, day, actor, after=after, limit=chunk)
        report.add(part)
        report.chunks += 1
        after = part.cursor
        if progress is not None:
            progress(report.receivables)
    return report


def refresh_hotlists(
    transaction: Transactions,
    day: date,
    actor: Actor,
    *,
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Rebuild every district's hotlist for ``day``, ``chunk`` plates per transaction; returns the plates looked at."""
    with transaction() as session:
        codes = arrears.jurisdictions_to_refresh(session)
    done = 0
    for code in codes:
        done += refresh_hotlist(transaction, code, day, actor, chunk=chunk)[1]
        if progress is not None:
            progress(done)
    return done


def refresh_hotlist(
    transaction: Transactions, jurisdiction: str, day: date, actor: Actor, *, chunk: int = CHUNK
) -> tuple[arrears.HotlistReport, int]:
    """One district's hotlist for ``day``, ``chunk`` plates per transaction (a plate's receivables are all in
    its chunk, so each plate is decided whole); returns the report and how many plates it looked at."""
    with transaction() as session:
        plates = arrears.plates_to_refresh(session, jurisdiction, day)
    run = arrears.HotlistReport(jurisdiction, day)
    for start in range(0, len(plates), chunk):
        with transaction() as session:
            part = arrears.refresh_hotlist(session, jurisdiction, day, actor, plates=plates[start : start + chunk])
        run.listed += part.listed
        run.updated += part.updated
        run.removed += part.removed
    return run, len(plates)


def advance_to_today(transaction: Transactions, now: datetime, actor: Actor, *, chunk: int = CHUNK) -> StepReport:
    """The worker's job: the business date to ``now``'s Seoul date if it is behind (never back), and its steps."""
    return advance(transaction, None, actor, lambda: now, chunk=chunk)


def _named(progress: Progress | None, name: str) -> Callable[[int], None] | None:
    if progress is None:
        return None
    return lambda done: progress(name, done)
