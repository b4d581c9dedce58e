"""Delivering the outbox in a test: in the test's own session (each transaction of ``deliver_due`` a savepoint of
it, so the rolled-back outer transaction of ``db_session`` takes everything away), with the outside systems the test
names (a sandbox's adapter, or a fake), and the 차적조회 of ``models.fines`` asked and answered in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import fines, outbox
from models.crypto import PiiCipher
from services.outbox import DeliveryReport, Outside, deliver_due

WORKER = "test-worker"
POLICY = outbox.OutboxPolicy(lease=timedelta(minutes=10))


def nested(session: Session) -> Callable[[], AbstractContextManager[Session]]:
    """``Transactions`` whose every unit of work is a savepoint of ``session``."""

    @contextmanager
    def one() -> Iterator[Session]:
        with session.begin_nested():
            yield session

    return one


def _missing(name: str) -> Callable[[], Any]:
    def fail() -> Any:
        raise AssertionError(f"this test gave the outbox no {name}")

    return fail


def outside(
    cipher: PiiCipher, *, registry: Any = None, approval: Any = None, gateway: Any = None, postal: Any = None
) -> Outside:
    """``Outside`` with the systems given (anything else fails the test when a delivery asks for it)."""
    return Outside(
        cipher,
        registry=(lambda: registry) if registry is not None else _missing("registry"),
        approval=(lambda: approval) if approval is not None else _missing("approval"),
        gateway=(lambda: gateway) if gateway is not None else _missing("gateway"),
        postal=(lambda: postal) if postal is not None else _missing("postal"),
    )


def deliver(session: Session, now: datetime, systems: Outside, *, limit: int = 1000) -> DeliveryReport:
    """One round of deliveries at ``now``, in ``session``."""
    return deliver_due(nested(session), lambda: now, systems, WORKER, limit=limit, policy=POLICY)


@dataclass(frozen=True)
class Lookups:
    """What a 차적조회 round did: the notices asked about, and which of them got a 사전통지 or no owner."""

    queued: list[str]
    noticed: list[str]
    not_registered: list[str]
    report: DeliveryReport


def look_up_owners(
    session: Session,
    registry: Any,
    cipher: PiiCipher,
    now: datetime,
    *,
    jurisdiction: str | None = None,
    channel: str = fines.MAIL,
    limit: int = 200,
) -> Lookups:
    """Queue the 차적조회 of synced parking cases (``fines.request_owner_lookups``) and deliver them at once through
    ``registry``: what the worker does a moment after the job."""
    asked = fines.request_owner_lookups(session, now, jurisdiction=jurisdiction, channel=channel, limit=limit)
    report = deliver(session, now, outside(cipher, registry=registry))
    answers = session.execute(
        select(outbox.OutboxRow.payload, outbox.OutboxRow.answer).where(
            outbox.OutboxRow.target == outbox.REGISTRY_LOOKUP.target,
            outbox.OutboxRow.status == outbox.DONE,
        )
    ).all()
    result = {payload["notice_no"]: (answer or {}).get("result") for payload, answer in answers}
    return Lookups(
        queued=asked.queued,
        noticed=[n for n in asked.queued if result.get(n) == "noticed"],
        not_registered=[n for n in asked.queued if result.get(n) == "not_registered"],
        report=report,
    )


def deliver_for(app: Any, *, limit: int = 1000) -> DeliveryReport:
    """One round of deliveries as the worker of ``app`` would do it: its database, clock, adapters and policy (an app
    bound to a test's connection delivers in savepoints of it)."""
    from server import wiring
    from services.uow import transactions

    rt = app.extensions["jingsu"]
    return deliver_due(
        transactions(rt.sessions), rt.clock, wiring.outside(rt), WORKER, limit=limit, policy=wiring.outbox_policy(rt)
    )
