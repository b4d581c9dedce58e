"""Writing what a push decided, through the domain's operations: accepted issues together (a few statements for
the lot), the other events one by one, every stored event in one ``COPY``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models import bulk, evidence
from models import devices as device_ops
from models import notices as notice_ops
from models import payments as payment_ops
from models import review as review_ops
from models.base import Actor
from models.crypto import PiiCipher
from models.devices import Device
from models.errors import InvalidInput, InvalidTransition
from sync.push import commands
from sync.push.decide import Facts, Issue
from sync.push.envelope import (
    UNSTORABLE_MARK,
    Batch,
    named_officer,
    notice_no_of,
    seal_event,
    storable,
    unstorable_paths,
)
from sync.push.load import Needs
from sync.push.outcome import Outcome, number_taken, rejected


@dataclass
class Run:
    """One push (or one force-processed event) in progress: what it loaded and what it has done so far."""

    session: Session
    device: Device
    batch: Batch
    cipher: PiiCipher
    facts: Facts
    needs: Needs
    generation: int  # the chain the events belong to
    refused_issues: set[str] = field(default_factory=set)  # notice numbers whose issue this batch refused
    used_in_blocks: dict[int, int] = field(default_factory=dict)  # block id → numbers seen used in this batch
    # accepted issues not yet written: ``flush_issues`` writes them together (before anything reads them back)
    issues: list[Issue] = field(default_factory=list)
    issue_numbers: set[str] = field(default_factory=set)
    written: dict[str, int] = field(default_factory=dict)  # notice number → id of the issues this push wrote
    accepted: dict[str, list[review_ops.Candidate]] = field(default_factory=dict)  # by plate, written or not yet
    _unstorable: dict[int, list[str]] = field(default_factory=dict)  # id(event) → its unstorable paths

    @property
    def now(self) -> datetime:
        return self.facts.now

    def unstorable(self, event: dict[str, Any]) -> list[str]:
        """``unstorable_paths`` of a pushed event, worked out once (the event is applied, then stored)."""
        key = id(event)
        if key not in self._unstorable:
            self._unstorable[key] = unstorable_paths(event)
        return self._unstorable[key]

    def buffer(self, item: Issue) -> None:
        """Keep an accepted issue for ``flush_issues``; the batch's later issues compare with it from now on."""
        self.issues.append(item)
        self.issue_numbers.add(item.cmd.notice_no)
        if item.candidate is not None:
            self.accepted.setdefault(item.candidate.plate, []).append(item.candidate)

    def notices_changed(self) -> None:
        """Something other than an issue is about to change notices: write the buffered issues first, and read
        duplicate candidates again afterwards."""
        flush_issues(self)
        self.needs.candidates = None
        self.accepted = {}


def flush_issues(run: Run) -> None:
    """Write the buffered issues (``notice_ops.issue_notices``: a few statements for the lot), then what each one
    accepted needs: photo waits, duplicate notes, block usage, suspense matching. An issue whose number turned out
    taken becomes ``notice_no_taken``."""
    if not run.issues:
        return
    buffered, run.issues, run.issue_numbers = run.issues, [], set()
    session = run.session
    ids = notice_ops.issue_notices(session, [(b.cmd, b.actor) for b in buffered], run.now, run.cipher)
    run.written.update(ids)
    for item in buffered:
        notice_no = item.cmd.notice_no
        notice_id = ids.get(notice_no)
        if notice_id is None:
            taken = number_taken(notice_no)
            item.outcome.status, item.outcome.version, item.outcome.flags = taken.status, None, []
            item.outcome.problems = taken.problems
            run.refused_issues.add(notice_no)
            plate = item.cmd.vehicle_plate
            if plate is not None and plate in run.accepted:  # never a notice: nothing can duplicate it
                run.accepted[plate] = [c for c in run.accepted[plate] if c.notice_no != notice_no]
            continue
        if item.block_id is not None:
            run.used_in_blocks[item.block_id] = run.used_in_blocks.get(item.block_id, 0) + 1
        if item.missing_photos:
            evidence.await_photos(session, notice_id, item.missing_photos)
        others = [c.id if c.id is not None else run.written.get(c.notice_no) for c in item.duplicates]
        if any(other is not None for other in others) or item.in_suspense:
            notice = session.get(notice_ops.Notice, notice_id)
            assert notice is not None
            duplicates = [n for n in (session.get(notice_ops.Notice, i) for i in others if i is not None) if n]
            if duplicates:
                notice_ops.note_possible_duplicate(session, notice, duplicates, item.actor, run.now)
            if item.in_suspense:
                payment_ops.match_suspense(session, notice, Actor.system(), run.now)


def void(run: Run, cmd: commands.VoidNotice, notice: notice_ops.Notice) -> None:
    """Void the notice as the device asked (``decide.void`` allowed it)."""
    notice_ops.void_notice(
        run.session,
        notice,
        cmd.reason_code,
        cmd.memo,
        run.facts.actor(),
        cmd.header.occurred_at,
        run.now,
        f"event:{cmd.header.event_id}",
    )


def correct(run: Run, notice: notice_ops.Notice, correction: notice_ops.CorrectNotice) -> Outcome | None:
    """Apply a correction (``None``), or the domain's refusal of it as the event's."""
    notice_no = notice.notice_no
    try:
        notice_ops.correct_notice(run.session, notice, correction, run.facts.actor(), run.now)
    except InvalidTransition as exc:
        return rejected(notice_no, "invalid_transition", "type", exc.detail)
    except InvalidInput as exc:
        return rejected(notice_no, "validation_failed", f"data.{(exc.field or 'fields').removeprefix('fields.')}",
                        exc.detail)  # fmt: skip
    return None


def flag_for_review(run: Run, notice: notice_ops.Notice, review: list[str]) -> None:
    """Send a corrected notice to a clerk with the flags the server does not confirm."""
    # a correction printed with amounts or a QR the server does not confirm waits for a clerk, as an issue would
    notice_ops.flag_for_review(run.session, notice, review, run.facts.actor(), run.now)


def spoil(run: Run, cmd: commands.SpoilNumber, block_id: int | None) -> bool:
    """Record the spoiled number; ``False`` when it was taken meanwhile."""
    notice_no = cmd.header.notice_no
    recorded = device_ops.spoil_number(
        run.session,
        notice_no=notice_no,
        device_id=run.device.id,
        reason=cmd.reason,
        event_id=cmd.header.event_id,
        officer_id=run.facts.officer_id,
        spoiled_at=cmd.header.occurred_at,
    )
    if recorded:
        run.needs.spoiled.add(notice_no)
        if block_id is not None:
            run.used_in_blocks[block_id] = run.used_in_blocks.get(block_id, 0) + 1
    return recorded


def reprint(run: Run, cmd: commands.ReprintNotice, notice: notice_ops.Notice) -> None:
    """Record the reprint on the notice's timeline."""
    notice_ops.record_reprint(run.session, notice, cmd.count, cmd.header.occurred_at, run.facts.actor())


# --- stored events -------------------------------------------------------------------------------------------------


def event_row(
    run: Run, event: dict[str, Any], content_hash: str, outcome: Outcome, *, is_link: bool, decided: bool = True
) -> dict[str, Any]:
    """The ``sync_events`` row of a pushed event (sealed, and made storable)."""
    bad = run.unstorable(event)
    stored = event
    if bad:
        # kept as near to what was sent as the database allows; the mark makes it rejected if it is applied later
        stored = {**storable(event), UNSTORABLE_MARK: bad}
    return {
        "event_id": str(event["event_id"]),
        "device_id": run.device.id,
        "generation": run.device.generation,
        "seq": event["seq"],
        "type": str(stored["type"])[:40],
        "notice_no": (notice_no_of(stored) or "")[:40] or None,
        "content_hash": content_hash,
        "payload": seal_event(stored, run.cipher),
        "status": outcome.status,
        "result": storable(outcome.as_result()),
        "is_link": is_link,
        "batch_id": run.batch.batch_id,
        "received_at": run.now,
        "decided_at": run.now if decided else None,
        "officer_id": _event_officer(run, event),
    }


def _event_officer(run: Run, event: dict[str, Any]) -> int | None:
    """The officer an event names (``data.officer_id``) when that is an officer of the device's jurisdiction, else
    the officer signed in on the device: the column is a foreign key, and the device's word is not yet checked."""
    named = named_officer(event)
    if named is None:
        return run.facts.officer_id
    user = run.needs.users.get(named)
    if user is not None and user.role == "officer" and user.jurisdiction == run.device.jurisdiction:
        return named
    return run.facts.officer_id


def store_events(run: Run, rows: list[dict[str, Any]]) -> None:
    """Every new ``sync_events`` row of the push, in one ``COPY``."""
    if rows:
        columns = list(rows[0])
        bulk.copy_rows(run.session, "sync_events", columns, ([row[c] for c in columns] for row in rows))
