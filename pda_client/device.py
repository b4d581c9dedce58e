"""The device's own operations, all offline: enrollment record, officer sign-in record, issuing, voiding, spoiling
and reprinting notices. Every rule both sides must compute identically (numbers and their check digit, amounts,
reduced amount and deadline, the QR signature, the event hash chain) comes from ``protocol``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import protocol
from pda_client.errors import CannotIssue, NotEnrolled, NotSignedIn
from pda_client.store import Store

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC).astimezone(protocol.SEOUL).replace(microsecond=0)


@dataclass(frozen=True)
class Enrollment:
    server_url: str
    device_id: str
    device_secret: str
    qr_key: str
    pay_base_url: str
    jurisdiction: str


@dataclass(frozen=True)
class Officer:
    id: int
    name: str
    login: str


def enrollment(store: Store) -> Enrollment:
    data = store.get("enrollment")
    if not data:
        raise NotEnrolled("this device is not enrolled: run `pda enroll --server URL --code CODE`")
    return Enrollment(**data)


def signed_in_officer(store: Store) -> Officer:
    data = store.get("officer")
    if not data:
        raise NotSignedIn("no officer is signed in: run `pda login --officer LOGIN`")
    return Officer(**data)


def pay_base_url(store: Store) -> str:
    settings = store.reference_one("device_settings", "settings")
    if settings and settings.get("pay_base_url"):
        return str(settings["pay_base_url"])
    return enrollment(store).pay_base_url


def check_can_enroll(store: Store) -> None:
    """Enrolling again starts a new event chain: refused while events wait to be sent (they would be lost)."""
    unsettled = store.outbox("pending", "held")
    if store.get("enrollment") and unsettled:
        raise CannotIssue(f"{len(unsettled)} events are not yet synced: run `pda sync` before enrolling again")


def start_new_chain(store: Store) -> None:
    """After (re-)enrollment: the server starts this device's chain at seq 1 and cancels its earlier blocks, so the
    device forgets its chain, blocks, cursor and reference data (inside the caller's transaction)."""
    for key in ("seq", "last_hash", "acked_seq", "cursor", "token", "officer"):
        store.delete(key)
    store.clear_reference()
    store.conn.execute("DELETE FROM blocks")
    store.conn.execute("DELETE FROM outbox")


# --- numbers ---------------------------------------------------------------------------------------------------


def _live_blocks(store: Store, now: datetime) -> list[Any]:
    return list(
        store.conn.execute(
            "SELECT * FROM blocks WHERE cancelled = 0 AND expires_at > ? ORDER BY year2, first_serial",
            (now.astimezone(UTC).isoformat(),),
        )
    )


def next_free_number(store: Store, now: datetime) -> str | None:
    """The lowest unused number of the live blocks, or ``None`` when every number is used."""
    used = {row[0] for row in store.conn.execute("SELECT notice_no FROM used_numbers")}
    for block in _live_blocks(store, now):
        for serial in range(block["first_serial"], block["last_serial"] + 1):
            candidate = protocol.format_notice_no(block["jurisdiction"], block["year2"], serial)
            if candidate not in used:
                return candidate
    return None


def numbers_left(store: Store, now: datetime) -> int:
    total = 0
    for block in _live_blocks(store, now):
        first = protocol.format_notice_no(block["jurisdiction"], block["year2"], block["first_serial"])
        last = protocol.format_notice_no(block["jurisdiction"], block["year2"], block["last_serial"])
        (used,) = store.conn.execute(
            "SELECT count(*) FROM used_numbers WHERE notice_no BETWEEN ? AND ?", (first[:14], last[:14] + "9")
        ).fetchone()
        total += block["last_serial"] - block["first_serial"] + 1 - used
    return total


def _number_is_mine_and_free(store: Store, notice_no: str, now: datetime) -> bool:
    parsed = protocol.parse_notice_no(notice_no)
    if parsed is None:
        return False
    if store.conn.execute("SELECT 1 FROM used_numbers WHERE notice_no = ?", (notice_no,)).fetchone():
        return False
    return any(
        block["jurisdiction"] == parsed.jurisdiction
        and block["year2"] == parsed.year2
        and block["first_serial"] <= parsed.serial <= block["last_serial"]
        for block in _live_blocks(store, now)
    )


# --- the event chain --------------------------------------------------------------------------------------------


def _append_event(
    store: Store, type_: str, notice_no: str, data: dict[str, Any], base_version: int | None, now: datetime
) -> dict[str, Any]:
    """Make the next event of the chain and put it in the outbox (inside the caller's transaction)."""
    seq = int(store.get("seq", 0)) + 1
    event = {
        "event_id": str(uuid.uuid4()),
        "seq": seq,
        "type": type_,
        "notice_no": notice_no,
        "base_version": base_version,
        "occurred_at": now.isoformat(),
        "data": {"prev_hash": store.get("last_hash", protocol.GENESIS_HASH), **data},
    }
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    digest = protocol.event_hash(event)
    store.conn.execute(
        "INSERT INTO outbox (seq, event_id, type, notice_no, body, hash, state, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
        (seq, event["event_id"], type_, notice_no, body, digest, now.isoformat()),
    )
    store.put("seq", seq)
    store.put("last_hash", digest)
    return event


# --- issuing ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssueCommand:
    code: str
    place: str
    plate: str | None = None
    vehicle_type: str = "car"
    name: str | None = None
    birth_date: date | None = None
    address: str | None = None
    rrn: str | None = None
    phone: str | None = None
    lat: float | None = None
    lon: float | None = None
    zone: str | None = None
    photos: list[Path] = field(default_factory=list)
    memo: str | None = None


@dataclass(frozen=True)
class IssuedNotice:
    notice_no: str
    kind: str
    violation_code: str
    violation_name: str
    amount: int
    reduced_amount: int
    opinion_deadline: date
    observed_at: datetime
    qr: str
    data: dict[str, Any]


def _schedule(store: Store) -> list[protocol.ScheduleRow]:
    return [protocol.ScheduleRow.from_wire(row) for row in store.reference("fine_schedule")]


def issue(store: Store, cmd: IssueCommand, clock: Clock = system_clock) -> IssuedNotice:
    """Issue a notice with no network: number, amounts, deadline, signed QR and the chained event, in one
    transaction. Raises ``CannotIssue`` (unknown code, missing field, no schedule, no numbers), ``NotEnrolled``,
    ``NotSignedIn``."""
    enrolled = enrollment(store)
    officer = signed_in_officer(store)
    code = store.reference_one("violation_code", cmd.code)
    if code is None:
        raise CannotIssue(f"unknown violation code {cmd.code} (run `pda sync` to refresh the codes)")
    kind = code["kind"]
    if kind == "parking" and not cmd.plate:
        raise CannotIssue("a parking notice needs --plate")
    if kind == "person" and not (cmd.name and cmd.birth_date and cmd.address):
        raise CannotIssue("a person notice needs --name, --birth-date and --address")
    if cmd.vehicle_type not in protocol.VEHICLE_TYPES:
        raise CannotIssue(f"--vehicle-type must be one of {', '.join(protocol.VEHICLE_TYPES)}")
    now = clock()
    vehicle_type = cmd.vehicle_type if kind == "parking" else None
    row = protocol.select_schedule(_schedule(store), cmd.code, vehicle_type, cmd.zone, protocol.seoul_date(now))
    if row is None:
        raise CannotIssue(f"no fine schedule for {cmd.code} on {protocol.seoul_date(now)} (run `pda sync`)")
    amounts = protocol.compute_amounts(row, now)
    photo_hashes = [_keep_photo(store, path) for path in cmd.photos]

    with store.transaction():
        notice_no = next_free_number(store, now)
        if notice_no is None:
            raise CannotIssue("no notice numbers left on this device: run `pda sync` to get a new block")
        qr = protocol.qr_url(
            pay_base_url(store), enrolled.qr_key, notice_no, amounts.amount, amounts.reduced_amount,
            amounts.opinion_deadline,
        )  # fmt: skip
        place: dict[str, Any] = {"address": cmd.place}
        if cmd.lat is not None:
            place["lat"] = cmd.lat
        if cmd.lon is not None:
            place["lon"] = cmd.lon
        if cmd.zone:
            place["zone"] = cmd.zone
        data: dict[str, Any] = {
            "kind": kind,
            "violation_code": cmd.code,
            "schedule_key": amounts.schedule_key,
            "amount": amounts.amount,
            "reduced_amount": amounts.reduced_amount,
            "opinion_deadline": amounts.opinion_deadline.isoformat(),
            "place": place,
            "observed_at": now.isoformat(),
            "photos": photo_hashes,
            "officer_id": officer.id,
            "qr": qr,
        }
        if kind == "parking":
            data["vehicle"] = {"plate": cmd.plate, "type": vehicle_type}
        else:
            offender: dict[str, Any] = {
                "name": cmd.name,
                "birth_date": cmd.birth_date.isoformat() if cmd.birth_date else None,
                "address": cmd.address,
            }
            if cmd.rrn:
                offender["rrn"] = cmd.rrn
            if cmd.phone:
                offender["phone"] = cmd.phone
            data["offender"] = offender
        if cmd.memo:
            data["memo"] = cmd.memo
        event = _append_event(store, protocol.NOTICE_ISSUED, notice_no, data, None, now)
        store.conn.execute(
            "INSERT INTO used_numbers (notice_no, how, at) VALUES (?, 'issued', ?)", (notice_no, now.isoformat())
        )
        store.conn.execute(
            "INSERT INTO notices (notice_no, kind, data, status, version, issued_at) VALUES (?, ?, ?, 'issued', 1, ?)",
            (notice_no, kind, json.dumps(event["data"], ensure_ascii=False), now.isoformat()),
        )
    return IssuedNotice(
        notice_no=notice_no,
        kind=kind,
        violation_code=cmd.code,
        violation_name=code["name"],
        amount=amounts.amount,
        reduced_amount=amounts.reduced_amount,
        opinion_deadline=amounts.opinion_deadline,
        observed_at=now,
        qr=qr,
        data=event["data"],
    )


def _keep_photo(store: Store, path: Path) -> str:
    """Copy an evidence photo into the device home under its SHA-256 (uploaded by a later sync)."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise CannotIssue(f"cannot read photo {path}: {exc}") from exc
    digest = hashlib.sha256(content).hexdigest()
    target = store.path.parent / "photos" / digest
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copyfile(path, target)
    return digest


@dataclass(frozen=True)
class LocalNotice:
    notice_no: str
    kind: str
    data: dict[str, Any]
    status: str
    version: int
    reprints: int
    paid_at: str | None


def local_notice(store: Store, notice_no: str) -> LocalNotice:
    row = store.conn.execute("SELECT * FROM notices WHERE notice_no = ?", (notice_no,)).fetchone()
    if row is None:
        raise CannotIssue(f"no notice {notice_no} on this device")
    return LocalNotice(
        notice_no=row["notice_no"],
        kind=row["kind"],
        data=json.loads(row["data"]),
        status=row["status"],
        version=row["version"],
        reprints=row["reprints"],
        paid_at=row["paid_at"],
    )


def void(
    store: Store, notice_no: str, reason_code: str, memo: str | None = None, clock: Clock = system_clock
) -> dict[str, Any]:
    """Void a notice issued here (with a reason); the server decides on sync whether it still can be."""
    if reason_code not in protocol.VOID_REASONS:
        raise CannotIssue(f"--reason must be one of {', '.join(protocol.VOID_REASONS)}")
    signed_in_officer(store)
    notice = local_notice(store, notice_no)
    if notice.status in ("voided", "cancelled", "paid", "closed"):
        raise CannotIssue(f"notice {notice_no} is {notice.status}; it cannot be voided")
    now = clock()
    data: dict[str, Any] = {"reason_code": reason_code}
    if memo:
        data["memo"] = memo
    with store.transaction():
        event = _append_event(store, protocol.NOTICE_VOIDED, notice_no, data, notice.version, now)
        store.conn.execute("UPDATE notices SET status = 'voided' WHERE notice_no = ?", (notice_no,))
    return event


@dataclass(frozen=True)
class CorrectCommand:
    """What to change on a notice issued here; ``None`` leaves a field as it is."""

    notice_no: str
    reason: str
    plate: str | None = None
    vehicle_type: str | None = None
    code: str | None = None
    place: str | None = None
    zone: str | None = None
    memo: str | None = None


def correct(store: Store, cmd: CorrectCommand, clock: Clock = system_clock) -> dict[str, Any]:
    """Correct a notice issued here (``notice.corrected``, PROTOCOL.md §2): the changed fields, and when the
    violation or vehicle type changes, the amounts recomputed from the schedule in force when it was observed, with
    a newly signed QR. The notice's number never changes. Reprint it afterwards for the citizen."""
    enrolled = enrollment(store)
    signed_in_officer(store)
    notice = local_notice(store, cmd.notice_no)
    if notice.status not in ("issued", "under_review"):
        raise CannotIssue(f"notice {cmd.notice_no} is {notice.status}; it cannot be corrected")
    if not cmd.reason.strip():
        raise CannotIssue("a correction needs --reason")
    old = notice.data
    changes: dict[str, Any] = {}
    vehicle = dict(old.get("vehicle") or {})
    if notice.kind == "parking" and (cmd.plate or cmd.vehicle_type):
        if cmd.vehicle_type and cmd.vehicle_type not in protocol.VEHICLE_TYPES:
            raise CannotIssue(f"--vehicle-type must be one of {', '.join(protocol.VEHICLE_TYPES)}")
        vehicle.update({k: v for k, v in (("plate", cmd.plate), ("type", cmd.vehicle_type)) if v})
        changes["vehicle"] = vehicle
    if cmd.place or cmd.zone:
        place = dict(old["place"])
        if cmd.place:
            place["address"] = cmd.place
        if cmd.zone:
            place["zone"] = cmd.zone
        changes["place"] = place
    if cmd.memo:
        changes["memo"] = cmd.memo
    code = cmd.code or old["violation_code"]
    if cmd.code:
        found = store.reference_one("violation_code", cmd.code)
        if found is None or found["kind"] != notice.kind:
            raise CannotIssue(f"unknown violation code {cmd.code} for a {notice.kind} notice")
        changes["violation_code"] = cmd.code
    if cmd.code or cmd.vehicle_type or cmd.zone:
        observed_at = datetime.fromisoformat(old["observed_at"])
        zone = (changes.get("place") or old["place"]).get("zone")
        row = protocol.select_schedule(
            _schedule(store), code, vehicle.get("type"), zone, protocol.seoul_date(observed_at)
        )
        if row is None:
            raise CannotIssue(f"no fine schedule for {code} on {protocol.seoul_date(observed_at)}")
        amounts = protocol.compute_amounts(row, observed_at)
        if (amounts.amount, amounts.reduced_amount) != (old["amount"], old["reduced_amount"]):
            changes.update(
                schedule_key=amounts.schedule_key,
                amount=amounts.amount,
                reduced_amount=amounts.reduced_amount,
                opinion_deadline=amounts.opinion_deadline.isoformat(),
                qr=protocol.qr_url(
                    pay_base_url(store), enrolled.qr_key, cmd.notice_no, amounts.amount, amounts.reduced_amount,
                    amounts.opinion_deadline,
                ),
            )  # fmt: skip
    if not changes:
        raise CannotIssue("nothing to correct: give at least one of --plate, --vehicle-type, --code, --place, --zone")
    now = clock()
    with store.transaction():
        event = _append_event(
            store, protocol.NOTICE_CORRECTED, cmd.notice_no, {**changes, "reason": cmd.reason}, notice.version, now
        )
        store.conn.execute(
            "UPDATE notices SET data = ? WHERE notice_no = ?",
            (json.dumps({**old, **changes}, ensure_ascii=False), cmd.notice_no),
        )
    return event


def spoil(store: Store, notice_no: str, reason: str, clock: Clock = system_clock) -> dict[str, Any]:
    """Account for a number that will never be issued (printer jam, misprint)."""
    if reason not in protocol.SPOIL_REASONS:
        raise CannotIssue(f"--reason must be one of {', '.join(protocol.SPOIL_REASONS)}")
    signed_in_officer(store)
    now = clock()
    with store.transaction():
        if not _number_is_mine_and_free(store, notice_no, now):
            raise CannotIssue(f"{notice_no} is not an unused number of this device's blocks")
        event = _append_event(store, protocol.NUMBER_SPOILED, notice_no, {"reason": reason}, None, now)
        store.conn.execute(
            "INSERT INTO used_numbers (notice_no, how, at) VALUES (?, 'spoiled', ?)", (notice_no, now.isoformat())
        )
    return event


def reprint(store: Store, notice_no: str, clock: Clock = system_clock) -> tuple[LocalNotice, dict[str, Any]]:
    """Record a reprint of a notice (the slip itself is rendered by the caller)."""
    signed_in_officer(store)
    notice = local_notice(store, notice_no)
    now = clock()
    with store.transaction():
        count = notice.reprints + 1
        event = _append_event(store, protocol.NOTICE_REPRINTED, notice_no, {"count": count}, notice.version, now)
        store.conn.execute("UPDATE notices SET reprints = ? WHERE notice_no = ?", (count, notice_no))
    return local_notice(store, notice_no), event
