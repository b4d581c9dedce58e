"""Deciding pushed events (PROTOCOL.md §2): pure functions of a typed command and what was loaded for it. No
session, no query: what to write, or the event's refusal."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import date, datetime

import protocol
from models import notices as notice_ops
from models import review as review_ops
from models.base import Actor
from models.devices import NumberBlock
from models.fines.tables import BEFORE_IMPOSITION
from sync.push import commands
from sync.push.load import Needs
from sync.push.outcome import Outcome, SyncSettings, number_taken, ordered, rejected


@dataclass(frozen=True)
class Facts:
    """What every decision of one push knows about the device and the batch."""

    device_id: str
    jurisdiction: str
    officer_id: int | None  # the officer signed in on the device
    now: datetime
    settings: SyncSettings
    pay_base_url: str
    device_time: datetime | None
    batch_skew: bool
    forcing: bool  # a clerk force-processes a held event

    def actor(self, officer_id: int | None = None) -> Actor:
        """The device acting for ``officer_id`` (by default the officer signed in on it)."""
        return Actor(user_id=self.officer_id if officer_id is None else officer_id, device_id=self.device_id,
                     label="device")  # fmt: skip


def common_flags(facts: Facts, prev_hash: str, previous: str | None, occurred_at: datetime) -> list[str]:
    """``chain_broken``, ``clock_skew``, ``late_sync`` (``previous``: the hash of the link before, if received)."""
    flags = []
    # a force-processed event's predecessor may still be missing: its link cannot be checked, which is not a break
    if prev_hash != previous and not (facts.forcing and previous is None):
        flags.append("chain_broken")
    if facts.batch_skew or (facts.device_time is not None and occurred_at > facts.device_time):
        flags.append("clock_skew")
    if facts.now - occurred_at > facts.settings.late_sync:
        flags.append("late_sync")
    return flags


def own_block(blocks: list[NumberBlock], notice_no: str) -> NumberBlock | None:
    """The device's own block holding ``notice_no`` (``None``: outside its blocks)."""
    parsed = protocol.parse_notice_no(notice_no)
    if parsed is None:
        return None
    for block in blocks:
        if (block.jurisdiction, block.year2) == (parsed.jurisdiction, parsed.year2) and (
            block.first_serial <= parsed.serial <= block.last_serial
        ):
            return block
    return None


def invalid_number(facts: Facts, notice_no: str) -> Outcome | None:
    """``notice_no_invalid`` for a bad check digit or another jurisdiction's number (PROTOCOL.md §2)."""
    parsed = protocol.parse_notice_no(notice_no)
    if parsed is None or parsed.jurisdiction != facts.jurisdiction:
        return rejected(notice_no, "notice_no_invalid", "notice_no", "bad check digit or another jurisdiction's number")
    return None


def qr_matches(
    qr_keys: list[str], pay_base_url: str, notice_no: str, qr: str, amount: int, reduced: int, deadline: date
) -> bool:
    """§5 to the letter: the QR is ``<pay_base_url>/p/<notice_no>?a=..&r=..&d=..&s=<sig>`` with the printed amounts
    and deadline, signed by one of the device's QR keys; only the signature's case may differ."""
    for key in qr_keys:
        expected = protocol.qr_url(pay_base_url, key, notice_no, amount, reduced, deadline)
        head, _, sig = expected.rpartition("&s=")
        prefix = f"{head}&s="
        if qr.startswith(prefix) and hmac.compare_digest(qr[len(prefix) :].upper().encode(), sig.encode()):
            return True
    return False


# --- notice.issued -------------------------------------------------------------------------------------------------


@dataclass
class Issue:
    """An accepted issue, to be written with the batch's others (``write.flush_issues``)."""

    cmd: notice_ops.IssueNotice
    actor: Actor
    outcome: Outcome  # made ``notice_no_taken`` by ``flush_issues`` when the number turns out taken
    missing_photos: list[str]
    duplicates: list[review_ops.Candidate]
    block_id: int | None
    in_suspense: bool
    candidate: review_ops.Candidate | None  # what the batch's later issues compare with (a parking notice)


def issue(
    facts: Facts,
    needs: Needs,
    cmd: commands.IssueNotice,
    previous: str | None,
    candidates: list[review_ops.Candidate],
    taken_in_batch: bool,
) -> Issue | Outcome:
    """Accept an issue (to be written) or refuse it. ``candidates``: live parking notices of its plate, this batch's
    accepted issues included; ``taken_in_batch``: an issue of this batch already has the number."""
    notice_no = cmd.header.notice_no
    invalid = invalid_number(facts, notice_no)
    if invalid is not None:
        return invalid
    if cmd.kind == "parking" and cmd.plate is None:
        return rejected(notice_no, "validation_failed", "data.vehicle", "required for a parking notice")
    if cmd.kind == "person" and cmd.offender is None:
        return rejected(notice_no, "validation_failed", "data.offender", "required for a person notice")
    code = needs.codes.get(cmd.violation_code)
    if code is None or code.kind != cmd.kind:
        return rejected(
            notice_no, "unknown_violation_code", "data.violation_code", "no such violation code for this kind"
        )
    officer = needs.users.get(cmd.officer_id)
    if officer is None or officer.role != "officer" or officer.jurisdiction != facts.jurisdiction:
        return rejected(
            notice_no, "validation_failed", "data.officer_id", "not an officer of this device's jurisdiction"
        )
    rule = protocol.select_schedule(
        needs.schedules.get(code.code, []), code.code, cmd.vehicle_type, cmd.zone, protocol.seoul_date(cmd.observed_at)
    )
    if rule is None:
        return rejected(notice_no, "no_schedule", "data.observed_at", "no fine schedule in force on that date")

    flags = common_flags(facts, cmd.prev_hash, previous, cmd.header.occurred_at)
    block = own_block(needs.blocks, notice_no)
    if block is None:
        flags.append("number_outside_block")
    expected = protocol.compute_amounts(rule, cmd.observed_at)
    printed = (cmd.amount, cmd.reduced_amount, cmd.opinion_deadline)
    expected_values = None
    if printed != (expected.amount, expected.reduced_amount, expected.opinion_deadline):
        flags.append("amount_mismatch")
        expected_values = {
            "amount": expected.amount,
            "reduced_amount": expected.reduced_amount,
            "opinion_deadline": expected.opinion_deadline.isoformat(),
            "schedule_key": expected.schedule_key,
        }
    if not qr_matches(needs.qr_keys, facts.pay_base_url, notice_no, cmd.qr, *printed):
        flags.append("qr_mismatch")
    missing_photos = [h for h in dict.fromkeys(cmd.photos) if h in needs.missing_photos]  # PROTOCOL.md §4
    if missing_photos:
        flags.append("photos_missing")
    duplicates = possible_duplicates(facts, cmd, code.dedupe_window_min, code.dedupe_distance_m, candidates)
    if duplicates:
        flags.append("possible_duplicate")

    model_cmd = notice_ops.IssueNotice(
        notice_no=notice_no,
        event_id=cmd.header.event_id,
        device_id=facts.device_id,
        jurisdiction=facts.jurisdiction,
        kind=cmd.kind,
        violation_code=code.code,
        schedule_key=cmd.schedule_key,
        amount=cmd.amount,
        reduced_amount=cmd.reduced_amount,
        opinion_deadline=cmd.opinion_deadline,
        place_address=cmd.place_address,
        lat=cmd.lat,
        lon=cmd.lon,
        zone=cmd.zone,
        observed_at=cmd.observed_at,
        observed_again_at=cmd.observed_again_at,
        issued_at=cmd.header.occurred_at,
        qr=cmd.qr,
        officer_id=officer.id,
        vehicle_plate=cmd.plate,
        vehicle_type=cmd.vehicle_type,
        offender=cmd.offender,
        photos=cmd.photos,
        memo=cmd.memo,
        flags=ordered(flags),
        expected=expected_values,
        revenue_item=code.revenue_item,
    )
    if notice_no in needs.spoiled or taken_in_batch:
        return number_taken(notice_no)
    candidate = None
    if cmd.plate is not None:
        candidate = review_ops.Candidate(
            notice_no, cmd.plate, code.code, cmd.observed_at, cmd.place_address, cmd.lat, cmd.lon
        )
    return Issue(
        cmd=model_cmd,
        actor=facts.actor(officer.id),
        outcome=Outcome(protocol.ACCEPTED, notice_no, version=1, flags=list(model_cmd.flags)),
        missing_photos=missing_photos,
        duplicates=duplicates,
        block_id=block.id if block is not None else None,
        in_suspense=notice_no in needs.in_suspense,
        candidate=candidate,
    )


def merged_candidates(
    stored: list[review_ops.Candidate], accepted: list[review_ops.Candidate]
) -> list[review_ops.Candidate]:
    """The stored candidates of a plate and this batch's accepted issues of it; once written, the stored row (with
    its id) wins."""
    merged = {c.notice_no: c for c in accepted}
    merged.update({c.notice_no: c for c in stored})
    return list(merged.values())


def possible_duplicates(
    facts: Facts,
    cmd: commands.IssueNotice,
    window_min: int,
    distance_m: int,
    candidates: list[review_ops.Candidate],
) -> list[review_ops.Candidate]:
    """Parking notices this one may duplicate (same plate and code, near in time and place; any device, this
    batch's accepted issues included), oldest first."""
    if cmd.plate is None:
        return []
    probe = review_ops.DuplicateProbe(
        notice_no=cmd.header.notice_no,
        jurisdiction=facts.jurisdiction,
        plate=cmd.plate,
        violation_code=cmd.violation_code,
        observed_at=cmd.observed_at,
        place_address=cmd.place_address,
        lat=cmd.lat,
        lon=cmd.lon,
    )
    found = [c for c in candidates if review_ops.may_duplicate(probe, c, window_min, distance_m)]
    return sorted(found, key=lambda c: (c.observed_at, c.id is None, c.id or 0))


# --- events about an existing notice ---------------------------------------------------------------------------------


def subject_refusal(facts: Facts, notice_no: str, notice: notice_ops.Notice | None, refused: bool) -> Outcome | None:
    """Why an event may not touch the notice it names (``refused``: this device's issue of the number was refused,
    in this batch or an earlier one); ``None`` when it may."""
    if notice is None or notice.jurisdiction != facts.jurisdiction:
        if refused:
            return _subject_rejected(notice_no)
        return rejected(notice_no, "unknown_notice", "notice_no", "the server does not know this notice")
    if notice.device_id != facts.device_id and refused:
        # this device's notice never existed: the number belongs to another device's notice, not to be touched
        return _subject_rejected(notice_no)
    return None


def _subject_rejected(notice_no: str) -> Outcome:
    return rejected(notice_no, "subject_rejected", "notice_no", "the notice's issue was refused")


def imposed_already(notice: notice_ops.Notice, stage: str | None) -> Outcome | None:
    """A device may void or correct its notice only before the fine is imposed: after that the imposition (a
    decision of the authority) stands until the authority itself changes it (objection, court, 직권취소)."""
    if stage is None or stage in BEFORE_IMPOSITION:
        return None
    return rejected(
        notice.notice_no, "invalid_transition", "type", f"the fine is {stage}: only the authority can change it now"
    )


def stale(notice: notice_ops.Notice) -> Outcome:
    """``stale_base_version``: not applied, the server's copy wins and comes with the answer."""
    return Outcome(
        protocol.CONFLICT,
        notice.notice_no,
        version=notice.version,
        problems=[{"code": "stale_base_version", "field": "base_version", "message": "the notice changed since"}],
        current=notice_ops.notice_status_data(notice),
    )


def void(cmd: commands.VoidNotice, notice: notice_ops.Notice, stage: str | None) -> Outcome | None:
    """Whether the notice may be voided (``None``) or why not."""
    if notice.version != cmd.base_version:
        return stale(notice)
    if notice.status not in notice_ops.VOIDABLE:
        return rejected(
            cmd.header.notice_no, "invalid_transition", "type", f"a notice that is {notice.status} cannot be voided"
        )
    return imposed_already(notice, stage)


def correct(
    cmd: commands.CorrectNotice, notice: notice_ops.Notice, stage: str | None
) -> notice_ops.CorrectNotice | Outcome:
    """The officer's own correction of a notice not yet decided (its number never changes), as the domain's
    command; or why not (a stale ``base_version`` is a conflict carrying the server's copy)."""
    if notice.version != cmd.base_version:
        return stale(notice)
    imposed = imposed_already(notice, stage)
    if imposed is not None:
        return imposed
    return notice_ops.CorrectNotice(
        reason=cmd.reason,
        amount=cmd.amount,
        plate=cmd.plate,
        vehicle_type=cmd.vehicle_type,
        violation_code=cmd.violation_code,
        place_address=cmd.place_address,
        zone=cmd.zone,
        memo=cmd.memo,
        qr=cmd.qr,
        source=f"event:{cmd.header.event_id}",
        by_device=True,
    )


def correction_flags(
    facts: Facts, needs: Needs, cmd: commands.CorrectNotice, corrected: notice_ops.Notice
) -> list[str]:
    """What the server does not confirm of a correction as printed: ``amount_mismatch`` (the amounts are recomputed
    from the schedule in force when the violation was observed) and ``qr_mismatch``."""
    flags = []
    if cmd.reduced_amount is not None and cmd.reduced_amount != corrected.reduced_amount:
        flags.append("amount_mismatch")
    if cmd.qr is not None:
        reduced = cmd.reduced_amount if cmd.reduced_amount is not None else corrected.reduced_amount
        deadline = cmd.opinion_deadline if cmd.opinion_deadline is not None else corrected.opinion_deadline
        notice_no = cmd.header.notice_no
        if not qr_matches(needs.qr_keys, facts.pay_base_url, notice_no, cmd.qr, corrected.amount, reduced, deadline):
            flags.append("qr_mismatch")
    return flags


def spoil(facts: Facts, cmd: commands.SpoilNumber, exists: bool) -> Outcome | None:
    """Whether the number may be spoiled (``None``) or why not (it is invalid or already a notice's)."""
    invalid = invalid_number(facts, cmd.header.notice_no)
    if invalid is not None:
        return invalid
    if exists:
        return number_taken(cmd.header.notice_no)
    return None
