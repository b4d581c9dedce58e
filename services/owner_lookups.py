"""차적조회 through the outbox: the delivery of a ``registry.lookup`` row (``models.fines.request_owner_lookups``
queued it) — the registry asked with the row's idempotency key, with no transaction open, then its answer applied
in a transaction of its own (``models.fines.apply_owner_lookup``: the owner stored sealed and the 사전통지 sent, or
``owner_not_found``). ``services.outbox.HANDLERS`` wires these in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from adapters.registry import VehicleRegistry
from models import fines
from models.base import Actor
from models.crypto import PiiCipher
from models.fines.ports import RegistryOwner
from models.outbox import Delivery, OutboxRow


@dataclass(frozen=True)
class Looked:
    """The registry's answer: which registry, and the owner on that day (``None``: no vehicle had the plate)."""

    registry: str
    owner: RegistryOwner | None = field(repr=False)


def ask(registry: VehicleRegistry, delivery: Delivery) -> Looked:
    """Ask the registry who owned the plate on the violation's day. Raises the registry's errors
    (``RegistryRefused``: the row is dead; ``RegistryUnavailable``: tried again)."""
    payload = delivery.payload
    owner = registry.lookup(payload["plate"], date.fromisoformat(payload["on"]), idempotency_key=delivery.key)
    return Looked(registry.name, owner)


def _actor(payload: dict[str, Any], registry: str) -> Actor:
    """Who the answer's effects are signed by: the clerk who asked, or the registry (the worker's own lookups)."""
    asked = payload.get("actor")
    if asked:
        return Actor(user_id=asked.get("user_id"), label=str(asked.get("label") or f"registry:{registry}")[:80])
    return Actor(label=f"registry:{registry}")


def apply(session: Session, delivery: Delivery, looked: Looked, cipher: PiiCipher, now: datetime) -> dict[str, Any]:
    """Apply the answer: ``noticed``, ``not_registered`` or ``stale`` (the case moved on meanwhile)."""
    payload = delivery.payload
    result = fines.apply_owner_lookup(
        session,
        payload["notice_no"],
        looked.owner,
        cipher,
        now,
        actor=_actor(payload, looked.registry),
        registry_name=looked.registry,
        channel=payload.get("channel") or fines.MAIL,
    )
    return {"result": result, "notice_no": payload["notice_no"], "registry": looked.registry}


def failed(session: Session, row: OutboxRow, now: datetime) -> None:
    """The lookup is dead: the case's timeline says so, for a clerk."""
    fines.owner_lookup_failed(session, row.payload["notice_no"], row.last_error or "", now)


def withdrawn(session: Session, row: OutboxRow, now: datetime) -> None:
    """A person cancelled the lookup: the case may be asked again."""
    fines.owner_lookup_withdrawn(session, row.payload["notice_no"], now, Actor(label="system:outbox"))
