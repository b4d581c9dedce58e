"""The transactional outbox (DESIGN.md §2): every call to an outside system — a 차적조회, an e-approval submission, a
gateway status query or refund, later the postal hand-over — is a row written in the transaction of the decision
that needs it, and delivered afterwards by the worker (``services.outbox``), never inside a request or job
transaction.

A row is delivered **at least once**, with its ``idempotency_key`` sent as ``Idempotency-Key`` each time, so the
outside system applies it once however often it arrives. Rows of one ``stream`` are delivered strictly in id order:
only the stream's oldest unfinished row may be claimed, and a ``dead`` row blocks its stream until someone retries
or cancels it. A delivery that fails is tried again after an exponential backoff with jitter, up to
``OutboxPolicy.max_attempts``; then, or at once when the outside system refused for good (a 4xx), the row is
``dead``: listed for clerks and operators (``/api/v1/outbox``), who retry or cancel it (both audited in
``outbox_actions``, append-only).

    pending ──delivered, answer applied──▶ done
       │  ▲
       │  └─ retry (a person) ◀── dead ──cancel (a person)──▶ cancelled
       └─ refused, or out of attempts ─────▶ dead

Claiming is a short transaction of its own: ``claim`` locks due rows ``FOR UPDATE SKIP LOCKED``, leases them to the
worker until ``leased_until`` and counts the attempt; the caller commits before it calls out. The answer is applied
in another transaction, only while the lease is still the worker's (``held``): a worker that lost its lease (it was
too slow, or another worker took the row over after it died) applies nothing, and the idempotency key makes the
outside system's side of the double delivery harmless.

Personal data never sits in a payload in clear: ``enqueue(personal=…)`` seals it with the ``PiiCipher`` (under
``"sealed"``, bound to the row's key), and ``personal_of`` opens it for the delivery. A plate is not sealed (notices
keep it in clear too).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, Text, delete, func, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from models.base import Actor, Base, Scope
from models.crypto import PiiCipher
from models.errors import InvalidTransition, NotFound

PENDING, DONE, DEAD, CANCELLED = "pending", "done", "dead", "cancelled"
STATUSES = (PENDING, DONE, DEAD, CANCELLED)
RETRY, CANCEL = "retry", "cancel"
SEALED = "sealed"  # the payload member holding the sealed personal data


class Operation(NamedTuple):
    """What a row asks of whom: ``target`` (the outside system) and ``operation`` (its call)."""

    target: str
    operation: str


# the operations Jingsu sends through the outbox; ``services.outbox.HANDLERS`` delivers each
REGISTRY_LOOKUP = Operation("registry", "lookup")  # 차적조회 (models.fines.advance)
APPROVAL_SUBMIT = Operation("approval", "submit")  # 결재 상신 of an imposition batch (models.fines.imposition)
GATEWAY_QUERY = Operation("gateway", "query")  # a payment left pending, asked about (services.payments)
GATEWAY_REFUND = Operation("gateway", "refund")  # an approval after abandonment, given back (services.payments)
POSTAL_SUBMIT = Operation("postal", "submit")  # a print run's manifest and PDF handed to the post (services.mailing)
TARGETS = ("registry", "approval", "gateway", "postal")


class OutboxRow(Base):
    """One call to an outside system, waiting, delivered, or given up on (``status``)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(20))
    operation: Mapped[str] = mapped_column(String(30))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    stream: Mapped[str | None] = mapped_column(String(120))
    jurisdiction: Mapped[str | None] = mapped_column(String(5))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    leased_by: Mapped[str | None] = mapped_column(String(120))
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxAction(Base):
    """A person's retry or cancellation of a dead row: who, when, why (append-only)."""

    __tablename__ = "outbox_actions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), index=True)
    action: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str | None] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text)


# --- policy ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxPolicy:
    """How the worker delivers: the lease of a claim (longer than the slowest call of a claimed batch), how many
    attempts a row gets before it is dead, and the backoff between them: ``backoff`` doubled each attempt, at most
    ``backoff_cap``, with jitter (a random half of it), so rows that failed together do not come back together."""

    lease: timedelta = timedelta(minutes=2)
    max_attempts: int = 12
    backoff: timedelta = timedelta(seconds=10)
    backoff_cap: timedelta = timedelta(hours=1)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt: half of min(cap, backoff · 2^(attempts−1)) plus a
        random part of the other half."""
        full = min(self.backoff_cap, self.backoff * (2 ** max(0, min(attempts - 1, 30))))
        return full / 2 + full / 2 * self.rng.random()


# --- writing --------------------------------------------------------------------------------------------------------


def enqueue(
    session: Session,
    operation: Operation,
    key: str,
    payload: dict[str, Any],
    now: datetime,
    *,
    stream: str | None = None,
    jurisdiction: str | None = None,
    personal: dict[str, Any] | None = None,
    cipher: PiiCipher | None = None,
) -> OutboxRow:
    """Write the call ``operation`` with ``payload`` in the caller's transaction, to be delivered after it commits
    (a rollback takes it away with the decision). ``key`` is its idempotency key, unique: enqueueing the same key
    again changes nothing and returns the row it has. ``personal`` (names, RRNs, addresses) is sealed with
    ``cipher`` into the payload, never stored in clear. Raises ``ValueError`` for a payload that uses ``"sealed"``
    itself or personal data without a cipher."""
    if SEALED in payload:
        raise ValueError(f"the payload member {SEALED!r} is reserved for sealed personal data")
    data = dict(payload)
    if personal is not None:
        if cipher is None:
            raise ValueError("personal data goes into the outbox sealed: a cipher is needed")
        data[SEALED] = cipher.seal_text(personal, context=key.encode())
    session.execute(
        pg_insert(OutboxRow)
        .values(
            target=operation.target,
            operation=operation.operation,
            idempotency_key=key,
            stream=stream,
            jurisdiction=jurisdiction,
            payload=data,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
    row = session.scalar(select(OutboxRow).where(OutboxRow.idempotency_key == key))
    assert row is not None
    return row


def open_rows(session: Session, stream: str) -> int:
    """How many rows of ``stream`` are not finished (pending or dead)."""
    found = session.scalar(
        select(func.count())
        .select_from(OutboxRow)
        .where(OutboxRow.stream == stream, OutboxRow.status.in_((PENDING, DEAD)))
    )
    return int(found or 0)


def rows_of(session: Session, operation: Operation, stream: str) -> int:
    """How many rows of ``operation`` ``stream`` has ever had (the generation of a new key)."""
    found = session.scalar(
        select(func.count())
        .select_from(OutboxRow)
        .where(
            OutboxRow.target == operation.target,
            OutboxRow.operation == operation.operation,
            OutboxRow.stream == stream,
        )
    )
    return int(found or 0)


# --- delivering -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """A claimed row as the worker delivers it: what to call (``operation``, ``payload``, ``key``), which attempt,
    and until when the lease is the worker's. Plain data: nothing of the session travels with it."""

    id: int
    operation: Operation
    key: str
    payload: dict[str, Any]
    attempt: int
    stream: str | None
    jurisdiction: str | None
    worker: str
    leased_until: datetime


def personal_of(delivery: Delivery, cipher: PiiCipher) -> dict[str, Any] | None:
    """The personal data ``enqueue`` sealed into the row, opened (``None`` if there is none)."""
    sealed = delivery.payload.get(SEALED)
    if sealed is None:
        return None
    opened: dict[str, Any] = cipher.open_text(sealed, context=delivery.key.encode())
    return opened


def _due(now: datetime) -> Any:
    """Pending, due, not leased (or its lease ran out), and first of its stream among the unfinished rows."""
    earlier = aliased(OutboxRow)
    blocked = (
        select(earlier.id)
        .where(earlier.stream == OutboxRow.stream, earlier.id < OutboxRow.id, earlier.status.in_((PENDING, DEAD)))
        .exists()
    )
    return (
        select(OutboxRow)
        .where(
            OutboxRow.status == PENDING,
            OutboxRow.next_attempt_at <= now,
            or_(OutboxRow.leased_until.is_(None), OutboxRow.leased_until <= now),
            or_(OutboxRow.stream.is_(None), ~blocked),
        )
        .order_by(OutboxRow.id)
    )


def exhausted(session: Session, now: datetime, max_attempts: int, limit: int) -> list[OutboxRow]:
    """Due rows that have had every attempt (their last worker died holding them), locked: to be made dead."""
    stmt = _due(now).where(OutboxRow.attempts >= max_attempts).limit(limit).with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def claim(session: Session, worker: str, now: datetime, policy: OutboxPolicy, limit: int) -> list[Delivery]:
    """Lease up to ``limit`` due rows to ``worker`` (``FOR UPDATE SKIP LOCKED``: concurrent workers take different
    rows), counting the attempt. At most one row per stream: the next one waits until this one is finished. The
    caller commits, then delivers with no transaction open."""
    stmt = _due(now).where(OutboxRow.attempts < policy.max_attempts).limit(limit).with_for_update(skip_locked=True)
    claimed: list[Delivery] = []
    streams: set[str] = set()
    for row in session.scalars(stmt):
        if row.stream is not None:
            if row.stream in streams:  # cannot happen (only a stream's head is due); kept as a guard
                continue
            streams.add(row.stream)
        row.attempts += 1
        row.leased_by, row.leased_until = worker, now + policy.lease
        claimed.append(_delivery(row, worker))
    session.flush()
    return claimed


def _delivery(row: OutboxRow, worker: str) -> Delivery:
    assert row.leased_until is not None
    return Delivery(
        id=row.id,
        operation=Operation(row.target, row.operation),
        key=row.idempotency_key,
        payload=dict(row.payload),
        attempt=row.attempts,
        stream=row.stream,
        jurisdiction=row.jurisdiction,
        worker=worker,
        leased_until=row.leased_until,
    )


def held(session: Session, delivery: Delivery) -> OutboxRow | None:
    """The row, locked, if ``delivery``'s lease is still the one on it (pending, same worker, same attempt); ``None``
    when another worker has taken it over or it was finished meanwhile — then the caller applies nothing."""
    row = session.scalar(select(OutboxRow).where(OutboxRow.id == delivery.id).with_for_update())
    if row is None or row.status != PENDING or row.leased_by != delivery.worker or row.attempts != delivery.attempt:
        return None
    return row


def mark_done(row: OutboxRow, answer: dict[str, Any], now: datetime) -> None:
    """The call was answered and its answer applied (``answer``: what that did, no personal data)."""
    row.status, row.answer, row.delivered_at = DONE, answer, now
    row.leased_by = row.leased_until = None
    row.last_error = None


def mark_retry(row: OutboxRow, error: str, now: datetime, policy: OutboxPolicy) -> None:
    """The attempt failed and will be made again after the backoff."""
    row.last_error = error[:2000]
    row.next_attempt_at = now + policy.delay(row.attempts)
    row.leased_by = row.leased_until = None


def mark_dead(row: OutboxRow, error: str, now: datetime) -> None:
    """Given up: refused for good, or out of attempts. It waits for a person (``retry``, ``cancel``) and blocks
    its stream meanwhile."""
    row.status, row.last_error = DEAD, error[:2000]
    row.next_attempt_at = now
    row.leased_by = row.leased_until = None


def release(session: Session, deliveries: Sequence[Delivery]) -> int:
    """Give back claimed rows the worker will not deliver now (its lease would run out first): their attempt does
    not count. Returns how many were still its to give back."""
    given = 0
    for delivery in deliveries:
        row = held(session, delivery)
        if row is not None:
            row.attempts -= 1
            row.leased_by = row.leased_until = None
            given += 1
    session.flush()
    return given


# --- people: the dead letters -----------------------------------------------------------------------------------


def get_row(session: Session, scope: Scope, row_id: int, *, for_update: bool = False) -> OutboxRow:
    """The row, if the caller's scope may see it (rows of no jurisdiction: city staff only). Raises ``NotFound``."""
    stmt = scope.apply(select(OutboxRow).where(OutboxRow.id == row_id), OutboxRow.jurisdiction)
    if scope.jurisdictions is not None:
        stmt = stmt.where(OutboxRow.jurisdiction.is_not(None))
    row = session.scalar(stmt.with_for_update() if for_update else stmt)
    if row is None:
        raise NotFound("no such delivery", field="outbox_id")
    return row


def list_rows(
    session: Session,
    scope: Scope,
    *,
    status: str | None = None,
    target: str | None = None,
    limit: int = 50,
    after: int | None = None,
) -> list[OutboxRow]:
    """Rows the caller's scope may see, oldest first, from the one after ``after`` (``limit`` of them)."""
    stmt = scope.apply(select(OutboxRow), OutboxRow.jurisdiction)
    if status is not None:
        stmt = stmt.where(OutboxRow.status == status)
    if target is not None:
        stmt = stmt.where(OutboxRow.target == target)
    if after is not None:
        stmt = stmt.where(OutboxRow.id > after)
    return list(session.scalars(stmt.order_by(OutboxRow.id).limit(limit)))


def actions_of(session: Session, row_id: int) -> list[OutboxAction]:
    """Who retried or cancelled the row, oldest first."""
    return list(session.scalars(select(OutboxAction).where(OutboxAction.outbox_id == row_id).order_by(OutboxAction.id)))


def _act(session: Session, row: OutboxRow, action: str, actor: Actor, reason: str, now: datetime) -> None:
    if row.status != DEAD:
        done = {RETRY: "retried", CANCEL: "cancelled"}[action]
        raise InvalidTransition(f"only a dead delivery can be {done}; this one is {row.status}", field="status")
    session.add(
        OutboxAction(
            outbox_id=row.id, action=action, at=now, actor_user_id=actor.user_id, actor_label=actor.label, reason=reason
        )
    )


def retry(session: Session, row: OutboxRow, actor: Actor, reason: str, now: datetime) -> None:
    """A person sends a dead row again: pending now, with a fresh count of attempts (audited). Raises
    ``InvalidTransition`` unless it is dead."""
    _act(session, row, RETRY, actor, reason, now)
    row.status, row.attempts, row.next_attempt_at = PENDING, 0, now
    session.flush()


def cancel(session: Session, row: OutboxRow, actor: Actor, reason: str, now: datetime) -> None:
    """A person gives a dead row up for good: ``cancelled``, its stream goes on (audited). Raises
    ``InvalidTransition`` unless it is dead."""
    _act(session, row, CANCEL, actor, reason, now)
    row.status = CANCELLED
    session.flush()


def purge(session: Session, before: datetime) -> int:
    """Delete delivered rows older than ``before`` that no person acted on; how many. Dead and pending rows stay."""
    acted = select(OutboxAction.outbox_id)
    result = session.execute(
        delete(OutboxRow).where(OutboxRow.status == DONE, OutboxRow.delivered_at < before, OutboxRow.id.not_in(acted))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
