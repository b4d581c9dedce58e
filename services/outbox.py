"""Delivering the outbox (``models.outbox``; DESIGN.md §2): the worker calls ``deliver_due`` every tick.

One round: claim a few due rows in a short transaction (``FOR UPDATE SKIP LOCKED``, leased to this worker, committed),
then for each — with **no transaction open** — call the outside system through its adapter, passing the row's
idempotency key (``Idempotency-Key``), and apply the answer in a transaction of its own through the row's
``Handler``, marking the row done in that same transaction, but only while the lease is still ours. A worker that
dies mid-call leaves its lease to run out; another worker delivers the row again with the same key, and the outside
system answers it without applying it twice.

An adapter's or a handler's error means *try again* (backoff with jitter, ``OutboxPolicy``); a refusal that will never
succeed (``Handler.refusals``: a 4xx of the outside system) makes the row dead at once, with the reason. A dead row
runs its handler's ``dead`` hook (so the case or payment shows what happened) and waits for a person
(``/api/v1/outbox``: retry, or cancel — which runs the ``cancelled`` hook).

Adding a target is adding its adapter call and its answer's application as one ``Handler`` in ``HANDLERS``
(e.g. the postal hand-over: ``Operation("postal", "submit")``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from adapters.approval import ApprovalService
from adapters.gateway import PaymentGateway
from adapters.http import Refused
from adapters.postal import ManifestError, PostalRefused, PostalService
from adapters.registry import VehicleRegistry
from models import outbox
from models.base import Actor, Clock, Scope
from models.crypto import PiiCipher
from models.outbox import Delivery, Operation, OutboxPolicy, OutboxRow
from services import approvals, mailing, owner_lookups
from services import payments as payment_service
from services.uow import Transactions

log = logging.getLogger("jingsu.outbox")


@dataclass(frozen=True)
class Outside:
    """What deliveries need: the outside systems (built when a delivery asks) and the personal-data cipher."""

    cipher: PiiCipher
    registry: Callable[[], VehicleRegistry]
    approval: Callable[[], ApprovalService]
    gateway: Callable[[], PaymentGateway]
    postal: Callable[[], PostalService] | None = None

    def post(self) -> PostalService:
        if self.postal is None:
            raise LookupError("no postal service was given to this worker")
        return self.postal()


Hook = Callable[[Session, OutboxRow, datetime], None]


@dataclass(frozen=True)
class Handler:
    """How one operation is delivered.

    ``call(outside, delivery)`` asks the outside system (no transaction is open) and returns its answer;
    ``apply(session, delivery, answer, outside, now)`` applies that answer in its own transaction and returns what it
    did as a small JSON object with a ``result`` (kept on the row; no personal data). ``dead`` runs when the row is
    given up, ``cancelled`` when a person cancels it, each in that transaction. ``refusals`` are the errors of ``call``
    that retrying cannot cure (dead at once); any other error is retried."""

    call: Callable[[Outside, Delivery], Any]
    apply: Callable[[Session, Delivery, Any, Outside, datetime], dict[str, Any]]
    dead: Hook | None = None
    cancelled: Hook | None = None
    refusals: tuple[type[BaseException], ...] = (Refused,)


HANDLERS: Mapping[Operation, Handler] = {
    outbox.REGISTRY_LOOKUP: Handler(
        call=lambda o, d: owner_lookups.ask(o.registry(), d),
        apply=lambda s, d, answer, o, now: owner_lookups.apply(s, d, answer, o.cipher, now),
        dead=owner_lookups.failed,
        cancelled=owner_lookups.withdrawn,
    ),
    outbox.APPROVAL_SUBMIT: Handler(
        call=lambda o, d: approvals.submit(o.approval(), d),
        apply=lambda s, d, answer, o, now: approvals.apply(s, d, answer, now),
        cancelled=approvals.withdrawn,
    ),
    outbox.GATEWAY_QUERY: Handler(
        call=lambda o, d: payment_service.ask_status(o.gateway(), d),
        apply=lambda s, d, answer, o, now: payment_service.apply_status(s, d, answer, now),
    ),
    outbox.GATEWAY_REFUND: Handler(
        call=lambda o, d: payment_service.ask_refund(o.gateway(), d),
        apply=lambda s, d, answer, o, now: payment_service.apply_refund(s, d, answer, now),
    ),
    outbox.POSTAL_SUBMIT: Handler(
        call=lambda o, d: mailing.ask_post(o.post(), d),
        apply=lambda s, d, answer, o, now: mailing.record_receipt(s, d, answer),
        cancelled=mailing.withdrawn,
        refusals=(PostalRefused, ManifestError),
    ),
}


@dataclass
class DeliveryReport:
    """What one round did: rows claimed, done, to be retried, dead, lost (another worker took the lease over) and
    given back unsent; ``outcomes`` counts ``<target>.<operation>:<result>`` of the rows done."""

    claimed: int = 0
    done: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0
    released: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        done = ", ".join(f"{n} {what}" for what, n in sorted(self.outcomes.items())) or "nothing"
        return (
            f"{self.claimed} claimed: {self.done} done ({done}), {self.retried} to retry, {self.dead} dead, "
            f"{self.lost} taken over, {self.released} given back"
        )


def deliver_due(
    transactions: Transactions,
    clock: Clock,
    outside: Outside,
    worker: str,
    *,
    limit: int = 10,
    policy: OutboxPolicy | None = None,
    handlers: Mapping[Operation, Handler] = HANDLERS,
) -> DeliveryReport:
    """Deliver up to ``limit`` due rows as ``worker`` (unique among running workers); what happened. Database errors
    propagate (the worker logs them and tries again on its next tick); delivery errors are kept on their rows."""
    policy = policy or OutboxPolicy()
    report = DeliveryReport()
    with transactions() as session:
        now = clock()
        for row in outbox.exhausted(session, now, policy.max_attempts, limit):
            _bury(session, row, "the worker delivering it stopped (its lease ran out) after its last attempt", now,
                  handlers)  # fmt: skip
            report.dead += 1
        claimed = outbox.claim(session, worker, now, policy, limit)
    report.claimed = len(claimed)
    for index, delivery in enumerate(claimed):
        if clock() + policy.lease / 4 >= delivery.leased_until:
            # too little of the lease is left for a call: give the rest back rather than race another worker
            with transactions() as session:
                report.released = outbox.release(session, claimed[index:])
            break
        _deliver(transactions, clock, outside, delivery, policy, handlers, report)
    return report


def _deliver(
    transactions: Transactions,
    clock: Clock,
    outside: Outside,
    delivery: Delivery,
    policy: OutboxPolicy,
    handlers: Mapping[Operation, Handler],
    report: DeliveryReport,
) -> None:
    handler = handlers.get(delivery.operation)
    if handler is None:
        _failed(transactions, clock, delivery, f"no handler for {delivery.operation}", True, policy, handlers, report)
        return
    try:
        answer = handler.call(outside, delivery)
    except handler.refusals as exc:
        _failed(transactions, clock, delivery, f"refused: {exc}", True, policy, handlers, report)
        return
    except Exception as exc:  # kept on the row and retried after the backoff; the row, not the loop, carries it
        _failed(transactions, clock, delivery, f"{type(exc).__name__}: {exc}", False, policy, handlers, report)
        return
    try:
        with transactions() as session:
            row = outbox.held(session, delivery)
            if row is None:
                report.lost += 1  # another worker delivers it; the idempotency key makes our call harmless
                return
            now = clock()
            applied = handler.apply(session, delivery, answer, outside, now)
            outbox.mark_done(row, applied, now)
    except Exception as exc:  # the answer could not be applied: the delivery is made again, same key, same answer
        log.exception("outbox row %s: applying the answer failed", delivery.id)
        _failed(transactions, clock, delivery, f"applying the answer: {type(exc).__name__}: {exc}", False, policy,
                handlers, report)  # fmt: skip
        return
    report.done += 1
    report.outcomes[f"{delivery.operation.target}.{delivery.operation.operation}:{applied.get('result')}"] += 1


def _failed(
    transactions: Transactions,
    clock: Clock,
    delivery: Delivery,
    error: str,
    refused: bool,
    policy: OutboxPolicy,
    handlers: Mapping[Operation, Handler],
    report: DeliveryReport,
) -> None:
    """Record a failed attempt: dead when refused or out of attempts (with the handler's hook), else retried."""
    with transactions() as session:
        row = outbox.held(session, delivery)
        if row is None:
            report.lost += 1
            return
        now = clock()
        if refused or row.attempts >= policy.max_attempts:
            _bury(session, row, error, now, handlers)
            report.dead += 1
            log.error("outbox row %s (%s) is dead: %s", row.id, row.idempotency_key, error)
        else:
            outbox.mark_retry(row, error, now, policy)
            report.retried += 1
            log.warning("outbox row %s (%s) failed attempt %s: %s", row.id, row.idempotency_key, row.attempts, error)


def _bury(session: Session, row: OutboxRow, error: str, now: datetime, handlers: Mapping[Operation, Handler]) -> None:
    outbox.mark_dead(row, error, now)
    handler = handlers.get(Operation(row.target, row.operation))
    if handler is not None and handler.dead is not None:
        handler.dead(session, row, now)


def cancel(
    session: Session,
    scope: Scope,
    row_id: int,
    actor: Actor,
    reason: str,
    now: datetime,
    handlers: Mapping[Operation, Handler] = HANDLERS,
) -> OutboxRow:
    """A person gives a dead row up (audited); its handler's ``cancelled`` hook undoes what waited for it. Raises
    ``NotFound`` (not in the scope), ``InvalidTransition`` (not dead)."""
    row = outbox.get_row(session, scope, row_id, for_update=True)
    outbox.cancel(session, row, actor, reason, now)
    handler = handlers.get(Operation(row.target, row.operation))
    if handler is not None and handler.cancelled is not None:
        handler.cancelled(session, row, now)
    return row


def retry(session: Session, scope: Scope, row_id: int, actor: Actor, reason: str, now: datetime) -> OutboxRow:
    """A person sends a dead row again (audited). Raises ``NotFound``, ``InvalidTransition``."""
    row = outbox.get_row(session, scope, row_id, for_update=True)
    outbox.retry(session, row, actor, reason, now)
    return row
