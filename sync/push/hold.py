"""The hold queue: force-processing of a held event by a clerk (DESIGN.md §6)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import protocol
from models import devices as device_ops
from models import notices as notice_ops
from models import review as review_ops
from models.base import Actor, Scope
from models.crypto import PiiCipher
from models.errors import InvalidTransition
from models.sync_store import SyncEvent
from sync.push import decide, load, write
from sync.push.engine import apply_event
from sync.push.envelope import Batch, storable, unseal_event
from sync.push.outcome import SyncSettings, rejected


@dataclass(frozen=True)
class ForceProcess:
    """A clerk's decision on a held event: ``apply`` it now despite the gap, or ``reject`` it, with a reason."""

    event_id: str
    action: str
    reason: str
    actor: Actor  # a staff user


def force_process(
    session: Session,
    scope: Scope,
    cmd: ForceProcess,
    *,
    now: datetime,
    cipher: PiiCipher,
    settings: SyncSettings,
    pay_base_url: str,
) -> dict[str, Any]:
    """Decide a held event now. ``apply`` applies it as a push would (its fate may still be ``rejected`` or
    ``conflict``); ``reject`` makes it ``rejected`` with problem ``force_rejected`` and the reason. Either way its
    fate is final from here on: a re-sent copy answers it (``duplicate`` when applied), and when the missing events
    arrive, the push that fills the gap steps over it (``acked_seq`` covers it then) instead of applying it again.

    Raises ``NotFound`` (unknown, or a device outside ``scope``) and ``InvalidTransition`` (not held any more).
    """
    found = review_ops.held_event(session, scope, cmd.event_id)
    # the device first, as a push locks it: a decision and a push of the same device go one after the other
    device = device_ops.get_device(session, found.device_id, for_update=True)
    row = session.scalar(
        select(SyncEvent).where(SyncEvent.id == found.id).with_for_update().execution_options(populate_existing=True)
    )
    assert row is not None
    if row.status != protocol.HELD:
        raise InvalidTransition(f"this event is {row.status}, not held: its fate is final", field="event_id")
    if cmd.action == review_ops.FORCE_APPLY:
        event = unseal_event(row.payload, cipher)
        batch = Batch(batch_id=row.batch_id, device_time=None, events=[event])
        facts = decide.Facts(
            device_id=device.id,
            jurisdiction=device.jurisdiction,
            officer_id=row.officer_id,
            now=now,
            settings=settings,
            pay_base_url=pay_base_url,
            device_time=None,
            batch_skew=False,
            forcing=True,
        )
        needs = load.load(session, device, [event], cipher)
        run = write.Run(session, device, batch, cipher, facts, needs, row.generation)
        outcome = apply_event(run, event)
        write.flush_issues(run)
    else:
        outcome = rejected(storable(row.notice_no), "force_rejected", "event_id", cmd.reason)
    row.status = outcome.status
    row.result = storable(outcome.as_result())
    row.decided_at = now
    assert cmd.actor.user_id is not None
    review_ops.record_decision(session, row, cmd.action, cmd.reason, cmd.actor.user_id, now, outcome.status)
    if outcome.status == protocol.ACCEPTED and outcome.notice_no:
        notice = notice_ops.find_notice(session, outcome.notice_no)
        if notice is not None:
            detail = {"event_id": row.event_id, "seq": row.seq, "type": row.type, "reason": cmd.reason}
            notice_ops.note(session, notice, "force_processed", now, cmd.actor, detail)
    session.flush()
    return {
        "event_id": row.event_id,
        "device_id": row.device_id,
        "seq": row.seq,
        "type": row.type,
        "action": cmd.action,
        "reason": cmd.reason,
        "decided_by": cmd.actor.user_id,
        "decided_at": now,
        **outcome.as_result(),
    }
