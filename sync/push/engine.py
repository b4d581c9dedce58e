"""Reconciliation of pushed batches (PROTOCOL.md §2): exactly once, in ``seq`` order, nothing silently dropped.

One call of ``push`` is one transaction (the caller commits). The device's row is locked first, so batches of one
device apply one after another: a batch sent twice, in any order or concurrently, changes the ledger once. An
event's effect, its stored copy and the device's ``acked_seq`` are written in the same transaction.

Per event: a known ``event_id`` answers its first fate again (``duplicate`` when it was applied, else the same
status); a new event at the next ``seq`` is applied; one after a gap is ``held`` until the gap is filled (then it is
applied in that same transaction and its result appended); a new ``event_id`` at an acknowledged ``seq`` is
``rejected`` as ``seq_reused``.

The path of a batch: the envelope (``envelope``), the stored events it meets (``load.batch_rows``), the order of
what will be applied, everything those events need (``load.load``), then per event in ``seq`` order a typed command
(``commands``), a pure decision (``decide``) and its writing (``write``); the stored events go in at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

import protocol
from models import devices as device_ops
from models.crypto import PiiCipher
from models.errors import Forbidden
from models.sync_store import SyncEvent
from sync.push import commands, decide, load, write
from sync.push.envelope import EnvelopeError, notice_no_of, parse_envelope, unseal_event
from sync.push.outcome import Outcome, SyncSettings, number_taken, ordered, rejected
from sync.push.write import Run


@dataclass
class _Pending:
    event: dict[str, Any]
    content_hash: str
    row: SyncEvent | None = None  # set when the event was held by an earlier batch


def push(
    session: Session,
    device_id: str,
    body: Any,
    *,
    now: datetime,
    cipher: PiiCipher,
    settings: SyncSettings,
    pay_base_url: str,
    officer_id: int | None = None,
) -> dict[str, Any]:
    """Apply one pushed batch of ``device_id`` and answer PROTOCOL.md §2's response body.

    Raises ``EnvelopeError`` (nothing applied) and ``Forbidden(device_revoked)``.
    """
    batch = parse_envelope(body)
    device = device_ops.get_device(session, device_id, for_update=True)
    if device.status == device_ops.REVOKED:
        raise Forbidden("this device has been revoked", code="device_revoked")
    batch_skew = False
    if batch.device_time is not None:
        offset = batch.device_time - now
        device.clock_offset_ms = int(offset.total_seconds() * 1000)
        batch_skew = abs(offset) > settings.clock_skew
    device.last_push_at = now
    facts = decide.Facts(
        device_id=device.id,
        jurisdiction=device.jurisdiction,
        officer_id=officer_id,
        now=now,
        settings=settings,
        pay_base_url=pay_base_url,
        device_time=batch.device_time,
        batch_skew=batch_skew,
        forcing=False,
    )
    run = Run(session, device, batch, cipher, facts, load.Needs(), device.generation)

    results: list[dict[str, Any] | None] = [None] * len(batch.events)
    by_event_id: dict[str, int] = {}
    seen_in_batch: dict[str, tuple[str, int]] = {}
    stored = load.batch_rows(session, device, {str(e["event_id"]) for e in batch.events})
    existing, held_rows, forced = stored.existing, stored.held, stored.forced
    pending: dict[int, _Pending] = {}
    resent: list[tuple[int, SyncEvent]] = []  # re-sent events whose stored fate is read after the drain
    reused: list[tuple[int, dict[str, Any], str]] = []  # new events at a seq another event has

    for index, event in enumerate(batch.events):
        event_id = str(event["event_id"])
        try:
            content_hash = protocol.event_hash(event)
        except RecursionError:
            # nested so deep that it cannot even be hashed (so not identified, nor answered alone): nothing applied
            raise EnvelopeError({f"events.{index}": ["nested too deeply"]}) from None
        earlier = existing.get(event_id)
        if earlier is not None:
            if earlier.content_hash != content_hash:
                results[index] = _conflict_result(event, "event_conflict", "this event_id was sent with other content")
            elif earlier.status == protocol.HELD and earlier.seq in held_rows and event_id not in by_event_id:
                # still held: answered below with its fate in this batch (applied now, or held again), once
                by_event_id[event_id] = index
            else:
                resent.append((index, earlier))
            continue
        if event_id in seen_in_batch:
            first_hash, first_index = seen_in_batch[event_id]
            if first_hash == content_hash:
                by_event_id.setdefault(event_id, first_index)
                results[index] = {"_same_as": first_index}
            else:
                results[index] = _conflict_result(event, "event_conflict", "this event_id was sent with other content")
            continue
        seen_in_batch[event_id] = (content_hash, index)
        seq = event["seq"]
        if seq <= device.acked_seq or seq in pending or seq in held_rows or seq in forced:
            reused.append((index, event, content_hash))
            continue
        pending[seq] = _Pending(event, content_hash)
        by_event_id[event_id] = index

    for seq, row in held_rows.items():
        if seq not in pending:
            pending[seq] = _Pending(unseal_event(row.payload, cipher), row.content_hash, row)

    # the order of what will be applied, known before anything is: what it needs is read for all of it at once
    order: list[int | _Pending] = []  # a seq already final (force-processed), or the event to apply at the next seq
    acked = device.acked_seq
    while acked + 1 in pending or acked + 1 in forced:
        acked += 1
        order.append(acked if acked in forced else pending.pop(acked))
    applied = [item for item in order if isinstance(item, _Pending)]
    new_events = [event for _, event, _ in reused] + [p.event for p in applied if p.row is None]
    new_events += [p.event for p in pending.values() if p.row is None]
    run.needs = load.load(session, device, [p.event for p in applied], cipher, stored=new_events)
    run.needs.chain.update(stored.chain)

    new_rows: list[dict[str, Any]] = []
    for index, event, content_hash in reused:
        outcome = rejected(
            notice_no_of(event), "seq_reused", "seq", f"seq {event['seq']} already belongs to another event"
        )
        new_rows.append(write.event_row(run, event, content_hash, outcome, is_link=False))
        results[index] = _result(event, outcome)

    released: list[dict[str, Any]] = []
    decided: list[tuple[_Pending, Outcome]] = []
    acked = device.acked_seq
    for item in order:
        acked += 1
        if not isinstance(item, _Pending):
            # already final (force-processed): never applied again; the chain goes on from its hash
            run.needs.chain[acked] = forced[acked]
            continue
        outcome = apply_event(run, item.event)
        if item.event["type"] == protocol.NOTICE_ISSUED and outcome.status in (protocol.REJECTED, protocol.CONFLICT):
            run.refused_issues.add(str(item.event.get("notice_no")))
        run.needs.chain[acked] = item.content_hash
        decided.append((item, outcome))
    write.flush_issues(run)  # an accepted issue's outcome is final once written
    for item, outcome in decided:
        result = _result(item.event, outcome)
        if item.row is not None:
            item.row.status = outcome.status
            item.row.result = outcome.as_result()
            item.row.decided_at = now
            item.row.notice_no = notice_no_of(item.event)
            resent_at = by_event_id.get(item.row.event_id)
            if resent_at is None:
                released.append(result)
            else:
                results[resent_at] = result
        else:
            new_rows.append(write.event_row(run, item.event, item.content_hash, outcome, is_link=True))
            results[by_event_id[str(item.event["event_id"])]] = result
    for item in pending.values():
        if item.row is None:
            outcome = Outcome(protocol.HELD, notice_no_of(item.event))
            new_rows.append(write.event_row(run, item.event, item.content_hash, outcome, is_link=True, decided=False))
            results[by_event_id[str(item.event["event_id"])]] = _result(item.event, outcome)
        elif item.row.event_id in by_event_id:
            results[by_event_id[item.row.event_id]] = _stored_result(item.row, protocol.HELD)

    device.acked_seq = acked
    if run.used_in_blocks:
        device_ops.mark_numbers_used(session, run.used_in_blocks)
    write.store_events(run, new_rows)
    session.flush()

    for index, row in resent:
        if row.status == protocol.ACCEPTED:
            results[index] = _stored_result(row, protocol.DUPLICATE)
        else:
            results[index] = _stored_result(row, row.status)
    for index, answer in enumerate(results):
        if answer is not None and "_same_as" in answer:
            first = results[answer["_same_as"]]
            assert first is not None
            dup = dict(first)
            if dup["status"] == protocol.ACCEPTED:
                dup["status"] = protocol.DUPLICATE
            results[index] = dup

    return {
        "batch_id": batch.batch_id,
        "server_time": now,
        "acked_seq": acked,
        "results": [r for r in results if r is not None] + released,
    }


def _result(event: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    return {"event_id": str(event["event_id"]), "seq": event["seq"], **outcome.as_result()}


def _stored_result(row: SyncEvent, status: str) -> dict[str, Any]:
    return {"event_id": row.event_id, "seq": row.seq, **row.result, "status": status}


def _conflict_result(event: dict[str, Any], code: str, message: str) -> dict[str, Any]:
    outcome = Outcome(
        protocol.CONFLICT, notice_no_of(event), problems=[{"code": code, "field": "event_id", "message": message}]
    )
    return _result(event, outcome)


# --- one event: command, decision, writing ---------------------------------------------------------------------------


def apply_event(run: Run, event: dict[str, Any]) -> Outcome:
    """Decide one event and write its effect; its fate (an accepted issue's may still become ``notice_no_taken``
    when ``write.flush_issues`` writes it)."""
    header = commands.read_header(event, run.unstorable(event))
    if isinstance(header, Outcome):
        return header
    if header.type != protocol.NOTICE_ISSUED:
        run.notices_changed()
    cmd = commands.read_command(header, event.get("base_version"))
    if isinstance(cmd, Outcome):
        return cmd
    previous = load.previous_link_hash(run.session, run.needs, run.device.id, run.generation, header.seq)
    match cmd:
        case commands.IssueNotice():
            return _issue(run, cmd, previous)
        case commands.VoidNotice():
            return _void(run, cmd, previous)
        case commands.CorrectNotice():
            return _correct(run, cmd, previous)
        case commands.SpoilNumber():
            return _spoil(run, cmd, previous)
    return _reprint(run, cmd, previous)


def _issue(run: Run, cmd: commands.IssueNotice, previous: str | None) -> Outcome:
    stored: list[Any] = []
    if cmd.plate is not None:
        needs = run.needs
        if needs.candidates is None:  # notices changed since they were read
            needs.candidates = load.candidates(run.session, run.device.jurisdiction, needs)
        found = needs.candidates.get(cmd.plate)
        if found is None:  # a plate the batch's probes could not read
            found = load.candidates_near(run.session, run.device.jurisdiction, needs.dedupe_window, cmd.plate,
                                         cmd.observed_at)  # fmt: skip
        stored = found
    candidates = decide.merged_candidates(stored, run.accepted.get(cmd.plate or "", []))
    taken = cmd.header.notice_no in run.issue_numbers
    decision = decide.issue(run.facts, run.needs, cmd, previous, candidates, taken)
    if isinstance(decision, Outcome):
        return decision
    # written with the batch's other issues (``flush_issues``); the outcome is final unless the number is taken
    run.buffer(decision)
    if decision.in_suspense:
        write.flush_issues(run)  # paid before the device synced: matched at once (DESIGN.md §4)
    return decision.outcome


def _subject(run: Run, notice_no: str, *, for_update: bool) -> tuple[Any, str | None] | Outcome:
    notice, stage = load.subject(run.session, notice_no, for_update=for_update)
    refused = notice_no in run.refused_issues or notice_no in run.needs.refused_before
    refusal = decide.subject_refusal(run.facts, notice_no, notice, refused)
    if refusal is not None:
        return refusal
    return notice, stage


def _void(run: Run, cmd: commands.VoidNotice, previous: str | None) -> Outcome:
    subject = _subject(run, cmd.header.notice_no, for_update=True)
    if isinstance(subject, Outcome):
        return subject
    notice, stage = subject
    flags = decide.common_flags(run.facts, cmd.prev_hash, previous, cmd.header.occurred_at)
    refusal = decide.void(cmd, notice, stage)
    if refusal is not None:
        return refusal
    write.void(run, cmd, notice)
    return Outcome(protocol.ACCEPTED, cmd.header.notice_no, version=notice.version, flags=ordered(flags))


def _correct(run: Run, cmd: commands.CorrectNotice, previous: str | None) -> Outcome:
    subject = _subject(run, cmd.header.notice_no, for_update=True)
    if isinstance(subject, Outcome):
        return subject
    notice, stage = subject
    flags = decide.common_flags(run.facts, cmd.prev_hash, previous, cmd.header.occurred_at)
    correction = decide.correct(cmd, notice, stage)
    if isinstance(correction, Outcome):
        return correction
    refusal = write.correct(run, notice, correction)
    if refusal is not None:
        return refusal
    flags += decide.correction_flags(run.facts, run.needs, cmd, notice)
    review: list[str] = [flag for flag in ("amount_mismatch", "qr_mismatch") if flag in flags]
    if review:
        write.flag_for_review(run, notice, review)
    return Outcome(protocol.ACCEPTED, cmd.header.notice_no, version=notice.version, flags=ordered(flags))


def _spoil(run: Run, cmd: commands.SpoilNumber, previous: str | None) -> Outcome:
    notice_no = cmd.header.notice_no
    refusal = decide.spoil(run.facts, cmd, load.notice_exists(run.session, notice_no))
    if refusal is not None:
        return refusal
    flags = decide.common_flags(run.facts, cmd.prev_hash, previous, cmd.header.occurred_at)
    block = decide.own_block(run.needs.blocks, notice_no)
    if block is None:
        flags.append("number_outside_block")
    if not write.spoil(run, cmd, block.id if block is not None else None):
        return number_taken(notice_no)
    return Outcome(protocol.ACCEPTED, notice_no, flags=ordered(flags))


def _reprint(run: Run, cmd: commands.ReprintNotice, previous: str | None) -> Outcome:
    subject = _subject(run, cmd.header.notice_no, for_update=False)
    if isinstance(subject, Outcome):
        return subject
    notice, _ = subject
    flags = decide.common_flags(run.facts, cmd.prev_hash, previous, cmd.header.occurred_at)
    write.reprint(run, cmd, notice)
    return Outcome(protocol.ACCEPTED, cmd.header.notice_no, version=notice.version, flags=ordered(flags))
