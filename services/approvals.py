"""Submitting an imposition batch to e-approval through the outbox: the delivery of an ``approval.submit`` row
(``models.fines.request_submission`` queued it) — the document submitted with the row's idempotency key, with no
transaction open, then the submission id recorded in a transaction of its own (the batch ``submitted``). The
decision comes back later as a signed callback or a clerk's refresh, each confirmed by asking e-approval
(``server.api.fines``). ``services.outbox.HANDLERS`` wires these in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from adapters.approval import ApprovalRequest, ApprovalService
from models import fines
from models.outbox import Delivery, OutboxRow


@dataclass(frozen=True)
class Submitted:
    """Which e-approval service took the document, and its submission id."""

    service: str
    submission_id: str


def submit(service: ApprovalService, delivery: Delivery) -> Submitted:
    """Submit the batch's document (idempotent: its reference id and the row's key). Raises the service's errors
    (``ApprovalRefused``: the row is dead; ``ApprovalUnavailable``: tried again)."""
    p = delivery.payload
    document = ApprovalRequest(
        title=p["title"],
        document_type=p["document_type"],
        reference_id=p["reference_id"],
        amount_total=p["amount_total"],
        count=p["count"],
        requested_by=p["requested_by"],
        callback_url=p["callback_url"],
    )
    return Submitted(service.name, service.submit(document, idempotency_key=delivery.key))


def apply(session: Session, delivery: Delivery, submitted: Submitted, now: datetime) -> dict[str, Any]:
    """Record the submission on its batch: ``submitted``; ``already`` when a callback recorded it first; ``stale``
    when the batch is gone or no longer waits for it."""
    reference_id = delivery.payload["reference_id"]
    batch = fines.batch_by_reference(session, reference_id)
    answer: dict[str, Any] = {"submission_id": submitted.submission_id, "service": submitted.service}
    if batch is None or batch.status not in (fines.BATCH_SUBMITTING, fines.BATCH_SUBMITTED):
        return {"result": "stale", **answer}
    if batch.status == fines.BATCH_SUBMITTED:
        return {"result": "already", **answer}
    fines.mark_submitted(session, batch, submitted.service, submitted.submission_id, now)
    return {"result": "submitted", "batch_id": batch.id, **answer}


def withdrawn(session: Session, row: OutboxRow, now: datetime) -> None:
    """A person cancelled the submission: the batch is ``proposed`` again."""
    fines.submission_withdrawn(session, row.payload["reference_id"])
