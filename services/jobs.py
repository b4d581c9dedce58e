"""The worker's periodic jobs (DESIGN.md §2): the suspense sweep, the payment sweep, the owner lookups behind the
사전통지, the business date with the arrears steps and the hotlist, feed compaction, the outbox's purge. A job never
waits on an outside system: the payment sweep and the owner lookups queue their calls in the outbox, which the
worker delivers every tick (``services.outbox.deliver_due``).

Each job is a domain step that is safe to repeat (idempotent), a function of explicit inputs: a session, the time,
and what it needs (``JobInputs``: the settings, the cipher, the registry and the gateway) — no app, no request.
``run_once`` runs jobs each in a transaction of its own; a job that fails is reported and the others go on.
``server.worker`` leads and schedules them; ``flask --app wsgi worker --once`` prints ``table(run_once(…))``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from adapters.gateway import PaymentGateway
from adapters.registry import VehicleRegistry
from models import arrears, feed, fines, outbox, payments, suspense
from models.base import Actor, Clock
from models.crypto import PiiCipher
from services import payments as payment_service
from services.uow import Transactions

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
    """What the jobs need besides a session and the time. No job calls an outside system any more (they queue the
    calls in the outbox; ``services.outbox`` delivers them): ``registry`` and ``gateway`` are kept for the jobs'
    scheduling rewrite to drop."""

    settings: JobSettings
    cipher: PiiCipher
    registry: Callable[[], VehicleRegistry]
    gateway: Callable[[], PaymentGateway]


def compact_feed(session: Session, now: datetime, tombstone_age: timedelta, superseded_age: timedelta) -> str:
    done = feed.compact(session, now, tombstone_age=tombstone_age, superseded_age=superseded_age)
    return f"{done.superseded} replaced changes, {done.tombstones} tombstones removed; floor {done.feed_floor_id}"


def sweep_suspense(session: Session, now: datetime, refund_after: timedelta) -> str:
    matched = payments.sweep_suspense(session, now)
    due = suspense.refunds_due(session, now, refund_after)
    return f"{matched} suspense payments matched to notices that arrived; {due} unmatched long enough to refund"


def sweep_payments(session: Session, now: datetime, settings: JobSettings) -> str:
    queued = payment_service.queue_status_queries(
        session, settings.gateway_name, now, settings.payment_sweep_after, abandon_after=settings.payment_abandon_after
    )
    return f"{queued} payments left pending queued for a status query at the gateway (outbox)"


def arrears_steps(session: Session, now: datetime) -> str:
    return arrears.advance_to_today(session, now, Actor.system()).summary()


def lookup_owners(session: Session, now: datetime) -> str:
    asked = fines.request_owner_lookups(session, now)
    return f"{len(asked.queued)} plates queued for 차적조회 (outbox; the 사전통지 follows each answer)"


def purge_outbox(session: Session, now: datetime, keep: timedelta) -> str:
    return f"{outbox.purge(session, now - keep)} delivered outbox rows older than {keep.days} days removed"


@dataclass(frozen=True)
class Job:
    """A periodic step: ``run`` returns one line saying what it did."""

    name: str
    every: timedelta
    run: Callable[[Session, datetime, JobInputs], str]


JOBS: tuple[Job, ...] = (
    Job(
        "sweep-suspense",
        timedelta(minutes=1),
        lambda s, now, i: sweep_suspense(s, now, i.settings.suspense_refund_after),
    ),
    Job("sweep-payments", timedelta(minutes=3), lambda s, now, i: sweep_payments(s, now, i.settings)),
    Job("lookup-owners", timedelta(minutes=5), lambda s, now, i: lookup_owners(s, now)),
    Job("arrears-steps", timedelta(hours=1), lambda s, now, i: arrears_steps(s, now)),
    Job(
        "compact-feed",
        timedelta(days=1),
        lambda s, now, i: compact_feed(s, now, i.settings.tombstone_age, i.settings.superseded_age),
    ),
    Job("purge-outbox", timedelta(days=1), lambda s, now, i: purge_outbox(s, now, i.settings.outbox_keep)),
)


@dataclass
class Outcome:
    job: str
    ok: bool
    summary: str
    seconds: float


def run_once(jobs: Sequence[Job], transaction: Transactions, clock: Clock, inputs: JobInputs) -> list[Outcome]:
    """Run each job once, each in its own transaction; a failure is reported, not raised."""
    outcomes = []
    for job in jobs:
        started = time.perf_counter()
        try:
            with transaction() as session:
                summary = job.run(session, clock(), inputs)
            outcomes.append(Outcome(job.name, True, summary, time.perf_counter() - started))
        except Exception as exc:  # one job's failure must not stop the others; it is logged and retried
            log.exception("job %s failed", job.name)
            outcomes.append(Outcome(job.name, False, f"{type(exc).__name__}: {exc}", time.perf_counter() - started))
    return outcomes


def table(outcomes: Sequence[Outcome]) -> list[str]:
    lines = [f"{'job':<18} {'result':<7} {'seconds':>8}  what it did", "-" * 78]
    for o in outcomes:
        lines.append(f"{o.job:<18} {'ok' if o.ok else 'FAILED':<7} {o.seconds:>8.2f}  {o.summary}")
    return lines
