"""Typed commands built from a pushed event once it is validated (shape only: PROTOCOL.md §2's schemas). Pure:
what an event asks for, or why it is refused before anything is looked up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from marshmallow import ValidationError

import protocol
from sync.push.envelope import MAX_DEPTH, UNSTORABLE_MARK, notice_no_of, parse_time, storable
from sync.push.outcome import Outcome, invalid_data, rejected
from sync.schemas import (
    NoticeCorrectedData,
    NoticeIssuedData,
    NoticeReprintedData,
    NoticeVoidedData,
    NumberSpoiledData,
)

# schema instances are stateless: built once, not per event
_NOTICEISSUEDDATA = NoticeIssuedData()
_NOTICEVOIDEDDATA = NoticeVoidedData()
_NOTICECORRECTEDDATA = NoticeCorrectedData()
_NUMBERSPOILEDDATA = NumberSpoiledData()
_NOTICEREPRINTEDDATA = NoticeReprintedData()

KNOWN_TYPES = (
    protocol.NOTICE_ISSUED,
    protocol.NOTICE_VOIDED,
    protocol.NOTICE_CORRECTED,
    protocol.NUMBER_SPOILED,
    protocol.NOTICE_REPRINTED,
)


@dataclass(frozen=True)
class Header:
    """What every event of a known type carries, checked: the event may now be decided."""

    event_id: str
    seq: int
    type: str
    notice_no: str
    occurred_at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class IssueNotice:
    """``notice.issued``: a notice as the device printed it."""

    header: Header
    prev_hash: str
    kind: str
    violation_code: str
    schedule_key: str
    amount: int
    reduced_amount: int
    opinion_deadline: date
    plate: str | None  # ``None``: no vehicle (a person notice)
    vehicle_type: str | None
    offender: dict[str, Any] | None  # as sent (strings), to be encrypted whole
    place_address: str
    lat: float | None
    lon: float | None
    zone: str | None
    observed_at: datetime
    observed_again_at: datetime | None
    photos: list[str]
    officer_id: int
    memo: str | None
    qr: str


@dataclass(frozen=True)
class VoidNotice:
    """``notice.voided``: the officer withdraws a notice not yet imposed."""

    header: Header
    prev_hash: str
    base_version: int
    reason_code: str
    memo: str | None


@dataclass(frozen=True)
class CorrectNotice:
    """``notice.corrected``: the changed fields (``None``: unchanged), and the reason."""

    header: Header
    prev_hash: str
    base_version: int
    reason: str
    amount: int | None
    reduced_amount: int | None
    opinion_deadline: date | None
    plate: str | None
    vehicle_type: str | None
    violation_code: str | None
    place_address: str | None
    zone: str | None
    memo: str | None
    qr: str | None


@dataclass(frozen=True)
class SpoilNumber:
    """``number.spoiled``: a number of the device's blocks that will never be issued."""

    header: Header
    prev_hash: str
    reason: str


@dataclass(frozen=True)
class ReprintNotice:
    """``notice.reprinted``: the notice printed again (it changes nothing)."""

    header: Header
    prev_hash: str
    base_version: int
    count: int


Command = IssueNotice | VoidNotice | CorrectNotice | SpoilNumber | ReprintNotice


def read_header(event: dict[str, Any], unstorable: list[str]) -> Header | Outcome:
    """The checks every event passes before its own: storable, a known type, a notice number, a time, a data
    object; or its refusal."""
    bad: Any = event[UNSTORABLE_MARK] if UNSTORABLE_MARK in event else unstorable
    if bad:
        paths = bad if isinstance(bad, list) and all(isinstance(p, str) for p in bad) else [UNSTORABLE_MARK]
        problems = [
            {
                "code": "validation_failed",
                "field": path,
                "message": f"cannot be stored: NUL, a lone surrogate, NaN or Infinity, or more than {MAX_DEPTH} levels",
            }
            for path in paths
        ]
        return Outcome(protocol.REJECTED, storable(notice_no_of(event)), problems=problems)
    if event["type"] not in KNOWN_TYPES:
        return rejected(notice_no_of(event), "unknown_event_type", "type", f"unknown event type {event['type']!r}")
    notice_no = notice_no_of(event)
    if notice_no is None:
        return rejected(None, "validation_failed", "notice_no", "required: a 15-digit notice number")
    occurred_at = parse_time(event.get("occurred_at"))
    if occurred_at is None:
        return rejected(notice_no, "validation_failed", "occurred_at", "required: ISO 8601 with an offset")
    data = event.get("data")
    if not isinstance(data, dict):
        return rejected(notice_no, "validation_failed", "data", "required: an object")
    return Header(str(event["event_id"]), event["seq"], event["type"], notice_no, occurred_at, data)


def read_command(header: Header, base_version: Any) -> Command | Outcome:
    """The event's command once its ``data`` (and ``base_version``) have the shape its type asks for."""
    match header.type:
        case protocol.NOTICE_ISSUED:
            return _issue(header, base_version)
        case protocol.NOTICE_VOIDED:
            return _void(header, base_version)
        case protocol.NOTICE_CORRECTED:
            return _correct(header, base_version)
        case protocol.NUMBER_SPOILED:
            return _spoil(header, base_version)
    return _reprint(header, base_version)


def _known_version(notice_no: str, base_version: Any) -> int | Outcome:
    if not isinstance(base_version, int) or isinstance(base_version, bool):
        return rejected(notice_no, "validation_failed", "base_version", "required: the version the device last knew")
    return base_version


def _issue(header: Header, base_version: Any) -> IssueNotice | Outcome:
    notice_no = header.notice_no
    if base_version is not None:
        return rejected(notice_no, "validation_failed", "base_version", "must be null for notice.issued")
    try:
        loaded = _NOTICEISSUEDDATA.load(header.data)
    except ValidationError as exc:
        return invalid_data(notice_no, exc.messages)
    vehicle = loaded.get("vehicle")
    place = loaded["place"]
    return IssueNotice(
        header=header,
        prev_hash=loaded["prev_hash"],
        kind=loaded["kind"],
        violation_code=loaded["violation_code"],
        schedule_key=loaded["schedule_key"],
        amount=loaded["amount"],
        reduced_amount=loaded["reduced_amount"],
        opinion_deadline=loaded["opinion_deadline"],
        plate=vehicle["plate"] if vehicle is not None else None,
        vehicle_type=vehicle["type"] if vehicle is not None else None,
        offender=dict(header.data["offender"]) if "offender" in loaded else None,
        place_address=place["address"],
        lat=place.get("lat"),
        lon=place.get("lon"),
        zone=place.get("zone"),
        observed_at=loaded["observed_at"],
        observed_again_at=loaded.get("observed_again_at"),
        photos=loaded["photos"],
        officer_id=loaded["officer_id"],
        memo=loaded.get("memo"),
        qr=loaded["qr"],
    )


def _void(header: Header, base_version: Any) -> VoidNotice | Outcome:
    try:
        loaded = _NOTICEVOIDEDDATA.load(header.data)
    except ValidationError as exc:
        return invalid_data(header.notice_no, exc.messages)
    version = _known_version(header.notice_no, base_version)
    if isinstance(version, Outcome):
        return version
    return VoidNotice(header, loaded["prev_hash"], version, loaded["reason_code"], loaded.get("memo"))


def _correct(header: Header, base_version: Any) -> CorrectNotice | Outcome:
    notice_no = header.notice_no
    try:
        loaded = _NOTICECORRECTEDDATA.load(header.data)
    except ValidationError as exc:
        return invalid_data(notice_no, exc.messages)
    if not [key for key in loaded if key not in ("prev_hash", "reason")]:
        return rejected(notice_no, "validation_failed", "data", "a correction must change at least one field")
    version = _known_version(notice_no, base_version)
    if isinstance(version, Outcome):
        return version
    vehicle = loaded.get("vehicle") or {}
    place = loaded.get("place") or {}
    return CorrectNotice(
        header=header,
        prev_hash=loaded["prev_hash"],
        base_version=version,
        reason=loaded["reason"],
        amount=loaded.get("amount"),
        reduced_amount=loaded.get("reduced_amount"),
        opinion_deadline=loaded.get("opinion_deadline"),
        plate=vehicle.get("plate"),
        vehicle_type=vehicle.get("type"),
        violation_code=loaded.get("violation_code"),
        place_address=place.get("address"),
        zone=place.get("zone"),
        memo=loaded.get("memo"),
        qr=loaded.get("qr"),
    )


def _spoil(header: Header, base_version: Any) -> SpoilNumber | Outcome:
    try:
        loaded = _NUMBERSPOILEDDATA.load(header.data)
    except ValidationError as exc:
        return invalid_data(header.notice_no, exc.messages)
    if base_version is not None:
        return rejected(header.notice_no, "validation_failed", "base_version", "must be null for number.spoiled")
    return SpoilNumber(header, loaded["prev_hash"], loaded["reason"])


def _reprint(header: Header, base_version: Any) -> ReprintNotice | Outcome:
    try:
        loaded = _NOTICEREPRINTEDDATA.load(header.data)
    except ValidationError as exc:
        return invalid_data(header.notice_no, exc.messages)
    version = _known_version(header.notice_no, base_version)
    if isinstance(version, Outcome):
        return version
    return ReprintNotice(header, loaded["prev_hash"], version, loaded["count"])
