"""Reconciliation of pushed batches (PROTOCOL.md §2): exactly once, in ``seq`` order, nothing silently dropped.

One call of ``push`` is one transaction (the caller commits). The device's row is locked first, so batches of one
device apply one after another: a batch sent twice, in any order or concurrently, changes the ledger once. An
event's effect, its stored copy and the device's ``acked_seq`` are written in the same transaction.

Per event: a known ``event_id`` answers its first fate again (``duplicate`` when it was applied, else the same
status); a new event at the next ``seq`` is applied; one after a gap is ``held`` until the gap is filled (then it is
applied in that same transaction and its result appended); a new ``event_id`` at an acknowledged ``seq`` is
``rejected`` as ``seq_reused``.
"""

from __future__ import annotations

import copy
import hmac
import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

import protocol
from models import bulk, evidence
from models import devices as device_ops
from models import notices as notice_ops
from models import payments as payment_ops
from models import review as review_ops
from models.base import Actor, Scope
from models.catalog import ViolationCode, schedule_rules
from models.crypto import PiiCipher
from models.devices import Device
from models.errors import Forbidden, InvalidInput, InvalidTransition
from models.fines.tables import BEFORE_IMPOSITION, FineCase
from models.sync_store import SyncEvent
from models.users import User
from sync.schemas import (
    NoticeCorrectedData,
    NoticeIssuedData,
    NoticeReprintedData,
    NoticeVoidedData,
    NumberSpoiledData,
    flatten_errors,
)

# schema instances are stateless: built once, not per event
_NOTICEISSUEDDATA = NoticeIssuedData()
_NOTICEVOIDEDDATA = NoticeVoidedData()
_NOTICECORRECTEDDATA = NoticeCorrectedData()
_NUMBERSPOILEDDATA = NumberSpoiledData()
_NOTICEREPRINTEDDATA = NoticeReprintedData()


@dataclass(frozen=True)
class SyncSettings:
    """Configurable thresholds of the push path (defaults are PROTOCOL.md's)."""

    clock_skew: timedelta = timedelta(minutes=5)
    late_sync: timedelta = timedelta(hours=72)


class EnvelopeError(InvalidInput):
    """The batch envelope is malformed: the whole batch is refused, nothing applied."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("the batch envelope is malformed; nothing was applied", code="validation_failed")
        self.errors = errors


@dataclass
class Outcome:
    """The fate of one event."""

    status: str
    notice_no: str | None = None
    version: int | None = None
    flags: list[str] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)
    current: dict[str, Any] | None = None

    def as_result(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "notice_no": self.notice_no,
            "version": self.version,
            "flags": self.flags,
            "problems": self.problems,
        }
        if self.current is not None:
            out["current"] = self.current
        return out


def _rejected(notice_no: str | None, code: str, field_name: str, message: str) -> Outcome:
    return Outcome(protocol.REJECTED, notice_no, problems=[{"code": code, "field": field_name, "message": message}])


def _invalid_data(notice_no: str | None, errors: Any) -> Outcome:
    flat = flatten_errors(errors, "data")
    problems = [
        {"code": "validation_failed", "field": path, "message": "; ".join(messages)} for path, messages in flat.items()
    ]
    return Outcome(protocol.REJECTED, notice_no, problems=problems)


# --- envelope ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    batch_id: str
    device_time: datetime | None
    events: list[dict[str, Any]]


MAX_SEQ = 2**63 - 1  # seq (and every id) is a PostgreSQL bigint


def _is_uuid(value: Any) -> bool:
    """A UUID in its canonical 36-character form (``uuid.UUID`` alone also takes braces, URNs and bare hex, which
    are longer or shorter than the ids we store and compare as strings)."""
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def parse_envelope(body: Any) -> Batch:
    """Check the all-or-nothing part of a push (``batch_id``, ``events``, each event's ``event_id``/``seq``/``type``).

    Raises ``EnvelopeError`` naming every wrong field.
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(body, dict):
        raise EnvelopeError({"body": ["must be a JSON object"]})
    if not _is_uuid(body.get("batch_id")):
        errors["batch_id"] = ["required: a UUID string"]
    device_time = None
    raw_time = body.get("device_time")
    if raw_time is not None:
        device_time = _parse_time(raw_time)
        if device_time is None:
            errors["device_time"] = [f"must be ISO 8601 with an offset, {protocol.TIME_RANGE_TEXT}"]
    events = body.get("events")
    if not isinstance(events, list):
        errors["events"] = ["required: a list of events"]
        events = []
    for index, event in enumerate(events):
        where = f"events.{index}"
        if not isinstance(event, dict):
            errors[where] = ["must be an object"]
            continue
        if not _is_uuid(event.get("event_id")):
            errors[f"{where}.event_id"] = ["required: a UUID string"]
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SEQ:
            errors[f"{where}.seq"] = [f"required: an integer from 1 to {MAX_SEQ}"]
        if not isinstance(event.get("type"), str) or not event.get("type"):
            errors[f"{where}.type"] = ["required: a string"]
    if errors:
        raise EnvelopeError(errors)
    return Batch(batch_id=body["batch_id"], device_time=device_time, events=events)


def _parse_time(value: Any) -> datetime | None:
    """An aware time within ``protocol.TIME_RANGE`` (a device clock reset to 1970 still is one), else ``None``."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if protocol.time_in_range(parsed) else None


# --- values PostgreSQL cannot store -------------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")
_HEX64 = re.compile("[0-9a-f]{64}")
_UNSTORABLE_MARK = "_unstorable"  # in a stored payload: the paths that had to be replaced to store it


def _bad_text(text: str) -> bool:
    return "\x00" in text or _SURROGATE.search(text) is not None


def _storable_text(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text.replace("\x00", "\ufffd"))


MAX_DEPTH = 32  # no event of the protocol nests deeper than 4; deeper would only exhaust the stack


def unstorable_paths(value: Any) -> list[str]:
    """Dotted paths of what JSON carries but PostgreSQL or UTF-8 cannot store: NUL or a lone surrogate in a string
    or a key, a non-finite number (``NaN``, ``Infinity``); and of a value nested deeper than ``MAX_DEPTH``."""
    return [] if _surely_storable(value) else _unstorable_paths(value)


def _surely_storable(value: Any) -> bool:
    """One pass of the C encoder instead of a walk in Python: no NaN (it raises), no NUL (escaped as ``\u0000``),
    no lone surrogate, and fewer brackets than ``MAX_DEPTH`` (so not nested too deeply). ``False`` only means
    "look closer"."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, check_circular=False)
    except (ValueError, TypeError, RecursionError):
        return False
    if "\\u0000" in text or _SURROGATE.search(text) is not None:
        return False
    return text.count("{") + text.count("[") < MAX_DEPTH


def _unstorable_paths(value: Any, path: str = "", depth: int = 0) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        found.append(path or "body")
    elif isinstance(value, dict):
        for key, item in value.items():
            name = _storable_text(str(key))
            where = f"{path}.{name}" if path else name
            if isinstance(key, str) and _bad_text(key):
                found.append(where)
            else:
                found.extend(_unstorable_paths(item, where, depth + 1))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_unstorable_paths(item, f"{path}.{index}" if path else str(index), depth + 1))
    elif isinstance(value, str):
        if _bad_text(value):
            found.append(path or "body")
    elif isinstance(value, float) and not math.isfinite(value):
        found.append(path or "body")
    return found


def storable(value: Any, depth: int = 0) -> Any:
    """``value`` with every unstorable string replaced (U+FFFD for the bad characters), non-finite numbers and what
    is nested too deeply nulled; what ``unstorable_paths`` finds nothing in is returned equal."""
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {_storable_text(k) if isinstance(k, str) else k: storable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(item, depth + 1) for item in value]
    if isinstance(value, str):
        return _storable_text(value) if _bad_text(value) else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- personal data inside stored events ---------------------------------------------------------------------------

_SEALED_FIELDS = ("offender",)


def seal_event(event: dict[str, Any], cipher: PiiCipher) -> dict[str, Any]:
    """The event as stored: personal fields of ``data`` replaced by ciphertext."""
    data = event.get("data")
    if not isinstance(data, dict) or not any(name in data for name in _SEALED_FIELDS):
        return event
    stored = dict(event)
    stored_data = dict(data)
    for name in _SEALED_FIELDS:
        if name in stored_data:
            stored_data[name] = {"sealed": cipher.seal_text(stored_data[name], context=str(event["event_id"]).encode())}
    stored["data"] = stored_data
    return stored


def unseal_event(stored: dict[str, Any], cipher: PiiCipher) -> dict[str, Any]:
    """The event as the device pushed it."""
    data = stored.get("data")
    if not isinstance(data, dict):
        return stored
    event = copy.deepcopy(stored)
    for name in _SEALED_FIELDS:
        value = data.get(name)
        if isinstance(value, dict) and set(value) == {"sealed"}:
            event["data"][name] = cipher.open_text(value["sealed"], context=str(stored["event_id"]).encode())
    return event


# --- the push ------------------------------------------------------------------------------------------------------


@dataclass
class _Pending:
    event: dict[str, Any]
    content_hash: str
    row: SyncEvent | None = None  # set when the event was held by an earlier batch


@dataclass
class _BufferedIssue:
    cmd: notice_ops.IssueNotice
    actor: Actor
    outcome: Outcome  # made ``notice_no_taken`` by ``flush_issues`` when the number turns out taken
    missing_photos: list[str]
    duplicates: list[review_ops.Candidate]
    block_id: int | None
    in_suspense: bool


@dataclass
class PushContext:
    session: Session
    device: Device
    batch: Batch
    now: datetime
    cipher: PiiCipher
    settings: SyncSettings
    pay_base_url: str
    batch_skew: bool
    officer_id: int | None
    chain: dict[int, str] = field(default_factory=dict)
    refused_issues: set[str] = field(default_factory=set)  # notice numbers whose issue this batch refused
    officers: dict[int, bool] = field(default_factory=dict)  # officer id → an officer of the device's jurisdiction
    _qr_keys: list[str] | None = None
    forcing: bool = False  # a clerk force-processes a held event (``force_process``)
    link_generation: int | None = None  # the chain the event belongs to, when not the device's current one
    # per-batch caches: one lookup per batch, not per event (the push path's cost is its round trips)
    codes: dict[str, ViolationCode | None] = field(default_factory=dict)
    users: dict[int, User | None] = field(default_factory=dict)
    rules: dict[str, list[protocol.ScheduleRow]] = field(default_factory=dict)
    _blocks: list[device_ops.NumberBlock] | None = None
    used_in_blocks: dict[int, int] = field(default_factory=dict)  # block id → numbers seen used in this batch
    _spoiled: set[str] | None = None
    _in_suspense: set[str] | None = None
    _numbers: set[str] | None = None
    _missing_photos: set[str] | None = None
    _batch_photos: set[str] | None = None
    # accepted issues not yet written: ``flush_issues`` writes them together (before anything reads them back)
    issues: list[_BufferedIssue] = field(default_factory=list)
    issue_numbers: set[str] = field(default_factory=set)
    written: dict[str, int] = field(default_factory=dict)  # notice number → id of the issues this push wrote
    # live parking notices of the batch's plates as read from the database (``None``: to be read again) …
    _candidates: dict[str, list[review_ops.Candidate]] | None = None
    # … and the issues this batch accepted since, by plate (written or not yet)
    _accepted: dict[str, list[review_ops.Candidate]] = field(default_factory=dict)
    _max_window: int | None = None
    _unstorable: dict[int, list[str]] = field(default_factory=dict)  # id(event) → its unstorable paths

    def unstorable(self, event: dict[str, Any]) -> list[str]:
        """``unstorable_paths`` of a pushed event, worked out once (the event is applied, then stored)."""
        key = id(event)
        if key not in self._unstorable:
            self._unstorable[key] = unstorable_paths(event)
        return self._unstorable[key]

    @property
    def generation(self) -> int:
        return self.device.generation if self.link_generation is None else self.link_generation

    def qr_keys(self) -> list[str]:
        if self._qr_keys is None:
            self._qr_keys = device_ops.qr_keys(self.session, self.device.id, self.cipher)
        return self._qr_keys

    def code(self, code: str) -> ViolationCode | None:
        if code not in self.codes:
            self.codes[code] = self.session.get(ViolationCode, code)
        return self.codes[code]

    def user(self, user_id: int) -> User | None:
        if user_id not in self.users:
            self.users[user_id] = self.session.get(User, user_id)
        return self.users[user_id]

    def schedule(self, code: str) -> list[protocol.ScheduleRow]:
        if code not in self.rules:
            self.rules[code] = schedule_rules(self.session, code)
        return self.rules[code]

    def own_block(self, notice_no: str) -> device_ops.NumberBlock | None:
        """The device's own block holding ``notice_no`` (``None``: outside its blocks)."""
        if self._blocks is None:
            self._blocks = device_ops.blocks_of_device(self.session, self.device.id)
        parsed = protocol.parse_notice_no(notice_no)
        if parsed is None:
            return None
        for block in self._blocks:
            if (block.jurisdiction, block.year2) == (parsed.jurisdiction, parsed.year2) and (
                block.first_serial <= parsed.serial <= block.last_serial
            ):
                return block
        return None

    def _batch_numbers(self) -> set[str]:
        """The batch's well-formed notice numbers (a malformed one is refused by its own event)."""
        if self._numbers is None:
            numbers = (_notice_no_of(e) for e in self.batch.events)
            self._numbers = {n for n in numbers if n and protocol.parse_notice_no(n) is not None}
        return self._numbers

    def spoiled(self) -> set[str]:
        """The batch's numbers already spoiled (kept up to date as this batch spoils more)."""
        if self._spoiled is None:
            self._spoiled = device_ops.spoiled_among(self.session, self._batch_numbers())
        return self._spoiled

    def is_spoiled(self, notice_no: str) -> bool:
        if notice_no in self.spoiled():
            return True
        # an event released from the hold queue is not in this batch: asked on its own
        return notice_no not in self._batch_numbers() and device_ops.is_spoiled(self.session, notice_no)

    def missing_photos(self, hashes: list[str]) -> list[str]:
        """The photos of ``hashes`` the server does not have (one query for the whole batch, PROTOCOL.md §4)."""
        if self._batch_photos is None:
            self._batch_photos = {h for e in self.batch.events for h in _photos_of(e)}
            self._missing_photos = set(evidence.missing_photos(self.session, sorted(self._batch_photos)))
        assert self._missing_photos is not None
        if not set(hashes) <= self._batch_photos:
            return evidence.missing_photos(self.session, hashes)  # an event released from the hold queue
        return [h for h in dict.fromkeys(hashes) if h in self._missing_photos]

    def duplicate_candidates(self, plate: str, observed_at: datetime) -> list[review_ops.Candidate]:
        """Live notices with ``plate`` near ``observed_at``, this batch's accepted issues included: the database is
        read once for every plate of the batch."""
        if self._max_window is None:
            self._max_window = review_ops.max_dedupe_window_min(self.session)
        window = timedelta(minutes=self._max_window)
        if self._candidates is None:
            probes = [p for p in (_plate_and_time(e) for e in self.batch.events) if p is not None]
            found: dict[str, list[review_ops.Candidate]] = {plate: [] for plate, _ in probes}
            if probes:
                start, end = min(t for _, t in probes) - window, max(t for _, t in probes) + window
                for candidate in review_ops.duplicate_candidates(
                    self.session, self.device.jurisdiction, list(found), start, end
                ):
                    found[candidate.plate].append(candidate)
            self._candidates = found
        stored = self._candidates.get(plate)
        if stored is None:  # an event released from the hold queue: not among the batch's plates
            stored = review_ops.duplicate_candidates(
                self.session, self.device.jurisdiction, [plate], observed_at - window, observed_at + window
            )
        merged = {c.notice_no: c for c in self._accepted.get(plate, [])}
        merged.update({c.notice_no: c for c in stored})  # once written, the database's row (with its id) wins
        return list(merged.values())

    def accepted(self, candidate: review_ops.Candidate) -> None:
        self._accepted.setdefault(candidate.plate, []).append(candidate)

    def notices_changed(self) -> None:
        """Something other than an issue is about to change notices: write the buffered issues first, and read
        duplicate candidates again afterwards."""
        flush_issues(self)
        self._candidates = None
        self._accepted = {}

    def in_suspense(self, notice_no: str) -> bool:
        if self._in_suspense is None:
            self._in_suspense = payment_ops.in_suspense_among(self.session, self._batch_numbers())
        if notice_no in self._in_suspense:
            return True
        return notice_no not in self._batch_numbers() and bool(payment_ops.in_suspense_among(self.session, [notice_no]))


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
    ctx = PushContext(session, device, batch, now, cipher, settings, pay_base_url, batch_skew, officer_id)

    results: list[dict[str, Any] | None] = [None] * len(batch.events)
    by_event_id: dict[str, int] = {}
    seen_in_batch: dict[str, tuple[str, int]] = {}
    existing = {
        row.event_id: row
        for row in session.scalars(
            select(SyncEvent).where(SyncEvent.event_id.in_({str(e["event_id"]) for e in batch.events}))
        )
    }
    held_rows = {
        row.seq: row
        for row in session.scalars(
            select(SyncEvent).where(
                SyncEvent.device_id == device.id,
                SyncEvent.generation == device.generation,
                SyncEvent.status == protocol.HELD,
                SyncEvent.seq > device.acked_seq,
            )
        )
    }
    # held events a clerk force-processed: final, but above acked_seq while the gap before them is open
    forced = forced_links(session, device)
    pending: dict[int, _Pending] = {}
    resent: list[tuple[int, SyncEvent]] = []  # re-sent events whose stored fate is read after the drain
    new_rows: list[dict[str, Any]] = []

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
            outcome = _rejected(
                _notice_no_of(event), "seq_reused", "seq", f"seq {seq} already belongs to another event"
            )
            new_rows.append(_row(ctx, event, content_hash, outcome, is_link=False))
            results[index] = _result(event, outcome)
            continue
        pending[seq] = _Pending(event, content_hash)
        by_event_id[event_id] = index

    for seq, row in held_rows.items():
        if seq not in pending:
            pending[seq] = _Pending(unseal_event(row.payload, cipher), row.content_hash, row)

    released: list[dict[str, Any]] = []
    acked = device.acked_seq
    applied_rows: dict[str, SyncEvent] = {}
    decided: list[tuple[_Pending, Outcome]] = []
    while acked + 1 in pending or acked + 1 in forced:
        if acked + 1 in forced:
            # already final (force-processed): never applied again; the chain goes on from its hash
            acked += 1
            ctx.chain[acked] = forced[acked]
            continue
        item = pending.pop(acked + 1)
        outcome = _apply(ctx, item.event, item.content_hash)
        if item.event["type"] == protocol.NOTICE_ISSUED and outcome.status in (protocol.REJECTED, protocol.CONFLICT):
            ctx.refused_issues.add(str(item.event.get("notice_no")))
        acked += 1
        ctx.chain[acked] = item.content_hash
        decided.append((item, outcome))
    flush_issues(ctx)  # an accepted issue's outcome is final once written
    for item, outcome in decided:
        result = _result(item.event, outcome)
        if item.row is not None:
            item.row.status = outcome.status
            item.row.result = outcome.as_result()
            item.row.decided_at = now
            item.row.notice_no = _notice_no_of(item.event)
            applied_rows[item.row.event_id] = item.row
            resent_at = by_event_id.get(item.row.event_id)
            if resent_at is None:
                released.append(result)
            else:
                results[resent_at] = result
        else:
            new_rows.append(_row(ctx, item.event, item.content_hash, outcome, is_link=True))
            results[by_event_id[str(item.event["event_id"])]] = result
    for item in pending.values():
        if item.row is None:
            outcome = Outcome(protocol.HELD, _notice_no_of(item.event))
            new_rows.append(_row(ctx, item.event, item.content_hash, outcome, is_link=True, decided=False))
            results[by_event_id[str(item.event["event_id"])]] = _result(item.event, outcome)
        elif item.row.event_id in by_event_id:
            results[by_event_id[item.row.event_id]] = _stored_result(item.row, protocol.HELD)

    device.acked_seq = acked
    if ctx.used_in_blocks:
        device_ops.mark_numbers_used(session, ctx.used_in_blocks)
    if new_rows:
        columns = list(new_rows[0])
        bulk.copy_rows(session, "sync_events", columns, ([row[c] for c in columns] for row in new_rows))
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


def _photos_of(event: dict[str, Any]) -> list[str]:
    """The well-formed photo hashes an event names (the event's own validation judges the rest)."""
    data = event.get("data")
    photos = data.get("photos") if isinstance(data, dict) else None
    if not isinstance(photos, list):
        return []
    return [p for p in photos if isinstance(p, str) and _HEX64.fullmatch(p)]


def _plate_and_time(event: dict[str, Any]) -> tuple[str, datetime] | None:
    """(plate, observed time) of an issue event that names both well enough to look for duplicates."""
    if event.get("type") != protocol.NOTICE_ISSUED:
        return None
    data = event.get("data")
    vehicle = data.get("vehicle") if isinstance(data, dict) else None
    plate = vehicle.get("plate") if isinstance(vehicle, dict) else None
    observed = _parse_time(data.get("observed_at")) if isinstance(data, dict) else None
    if not isinstance(plate, str) or not 1 <= len(plate) <= 20 or _bad_text(plate) or observed is None:
        return None
    return plate, observed


def _notice_no_of(event: dict[str, Any]) -> str | None:
    value = event.get("notice_no")
    return value if isinstance(value, str) else None


def _result(event: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    return {"event_id": str(event["event_id"]), "seq": event["seq"], **outcome.as_result()}


def _stored_result(row: SyncEvent, status: str) -> dict[str, Any]:
    return {"event_id": row.event_id, "seq": row.seq, **row.result, "status": status}


def _conflict_result(event: dict[str, Any], code: str, message: str) -> dict[str, Any]:
    outcome = Outcome(
        protocol.CONFLICT, _notice_no_of(event), problems=[{"code": code, "field": "event_id", "message": message}]
    )
    return _result(event, outcome)


def _row(
    ctx: PushContext, event: dict[str, Any], content_hash: str, outcome: Outcome, *, is_link: bool, decided: bool = True
) -> dict[str, Any]:
    bad = ctx.unstorable(event)
    stored = event
    if bad:
        # kept as near to what was sent as the database allows; the mark makes it rejected if it is applied later
        stored = {**storable(event), _UNSTORABLE_MARK: bad}
    return {
        "event_id": str(event["event_id"]),
        "device_id": ctx.device.id,
        "generation": ctx.device.generation,
        "seq": event["seq"],
        "type": str(stored["type"])[:40],
        "notice_no": (_notice_no_of(stored) or "")[:40] or None,
        "content_hash": content_hash,
        "payload": seal_event(stored, ctx.cipher),
        "status": outcome.status,
        "result": storable(outcome.as_result()),
        "is_link": is_link,
        "batch_id": ctx.batch.batch_id,
        "received_at": ctx.now,
        "decided_at": ctx.now if decided else None,
        "officer_id": _event_officer(ctx, event),
    }


def _event_officer(ctx: PushContext, event: dict[str, Any]) -> int | None:
    """The officer an event names (``data.officer_id``) when that is an officer of the device's jurisdiction, else
    the officer signed in on the device: the column is a foreign key, and the device's word is not yet checked."""
    data = event.get("data")
    named = data.get("officer_id") if isinstance(data, dict) else None
    if not isinstance(named, int) or isinstance(named, bool) or not 1 <= named <= MAX_SEQ:
        return ctx.officer_id
    if named not in ctx.officers:
        user = ctx.user(named)
        ctx.officers[named] = (
            user is not None and user.role == "officer" and user.jurisdiction == ctx.device.jurisdiction
        )
    return named if ctx.officers[named] else ctx.officer_id


# --- applying one event --------------------------------------------------------------------------------------------


def _previous_link_hash(ctx: PushContext, seq: int) -> str | None:
    if seq == 1:
        return protocol.GENESIS_HASH
    if seq - 1 in ctx.chain:
        return ctx.chain[seq - 1]
    found = ctx.session.scalar(
        select(SyncEvent.content_hash).where(
            SyncEvent.device_id == ctx.device.id,
            SyncEvent.generation == ctx.generation,
            SyncEvent.seq == seq - 1,
            SyncEvent.is_link.is_(True),
        )
    )
    if found is not None:
        ctx.chain[seq - 1] = found
    return found


def _common_flags(ctx: PushContext, event: dict[str, Any], data: dict[str, Any], occurred_at: datetime) -> list[str]:
    flags = []
    previous = _previous_link_hash(ctx, event["seq"])
    # a force-processed event's predecessor may still be missing: its link cannot be checked, which is not a break
    if data.get("prev_hash") != previous and not (ctx.forcing and previous is None):
        flags.append("chain_broken")
    device_time = ctx.batch.device_time
    if ctx.batch_skew or (device_time is not None and occurred_at > device_time):
        flags.append("clock_skew")
    if ctx.now - occurred_at > ctx.settings.late_sync:
        flags.append("late_sync")
    return flags


def _apply(ctx: PushContext, event: dict[str, Any], content_hash: str) -> Outcome:
    bad = event[_UNSTORABLE_MARK] if _UNSTORABLE_MARK in event else ctx.unstorable(event)
    if bad:
        paths = bad if isinstance(bad, list) and all(isinstance(p, str) for p in bad) else [_UNSTORABLE_MARK]
        notice_no = _notice_no_of(event)
        problems = [
            {
                "code": "validation_failed",
                "field": path,
                "message": f"cannot be stored: NUL, a lone surrogate, NaN or Infinity, or more than {MAX_DEPTH} levels",
            }
            for path in paths
        ]
        return Outcome(protocol.REJECTED, storable(notice_no), problems=problems)
    handler = _HANDLERS.get(event["type"])
    if handler is None:
        return _rejected(_notice_no_of(event), "unknown_event_type", "type", f"unknown event type {event['type']!r}")
    notice_no = _notice_no_of(event)
    if notice_no is None:
        return _rejected(None, "validation_failed", "notice_no", "required: a 15-digit notice number")
    occurred_at = _parse_time(event.get("occurred_at"))
    if occurred_at is None:
        return _rejected(notice_no, "validation_failed", "occurred_at", "required: ISO 8601 with an offset")
    data = event.get("data")
    if not isinstance(data, dict):
        return _rejected(notice_no, "validation_failed", "data", "required: an object")
    if handler is not _issued:
        ctx.notices_changed()
    return handler(ctx, event, notice_no, occurred_at, data)


def _issued(
    ctx: PushContext, event: dict[str, Any], notice_no: str, occurred_at: datetime, data: dict[str, Any]
) -> Outcome:
    if event.get("base_version") is not None:
        return _rejected(notice_no, "validation_failed", "base_version", "must be null for notice.issued")
    try:
        loaded = _NOTICEISSUEDDATA.load(data)
    except ValidationError as exc:
        return _invalid_data(notice_no, exc.messages)
    invalid = _invalid_number(ctx, notice_no)
    if invalid is not None:
        return invalid
    kind = loaded["kind"]
    if kind == "parking" and "vehicle" not in loaded:
        return _rejected(notice_no, "validation_failed", "data.vehicle", "required for a parking notice")
    if kind == "person" and "offender" not in loaded:
        return _rejected(notice_no, "validation_failed", "data.offender", "required for a person notice")
    code = ctx.code(loaded["violation_code"])
    if code is None or code.kind != kind:
        return _rejected(
            notice_no, "unknown_violation_code", "data.violation_code", "no such violation code for this kind"
        )
    officer = ctx.user(loaded["officer_id"])
    if officer is None or officer.role != "officer" or officer.jurisdiction != ctx.device.jurisdiction:
        return _rejected(
            notice_no, "validation_failed", "data.officer_id", "not an officer of this device's jurisdiction"
        )
    observed_at: datetime = loaded["observed_at"]
    vehicle_type = loaded["vehicle"]["type"] if "vehicle" in loaded else None
    zone = loaded["place"].get("zone")
    rule = protocol.select_schedule(
        ctx.schedule(code.code), code.code, vehicle_type, zone, protocol.seoul_date(observed_at)
    )
    if rule is None:
        return _rejected(notice_no, "no_schedule", "data.observed_at", "no fine schedule in force on that date")

    flags = _common_flags(ctx, event, data, occurred_at)
    block = ctx.own_block(notice_no)
    if block is None:
        flags.append("number_outside_block")
    expected = protocol.compute_amounts(rule, observed_at)
    printed = (loaded["amount"], loaded["reduced_amount"], loaded["opinion_deadline"])
    expected_values = None
    if printed != (expected.amount, expected.reduced_amount, expected.opinion_deadline):
        flags.append("amount_mismatch")
        expected_values = {
            "amount": expected.amount,
            "reduced_amount": expected.reduced_amount,
            "opinion_deadline": expected.opinion_deadline.isoformat(),
            "schedule_key": expected.schedule_key,
        }
    if not _qr_matches(ctx, notice_no, loaded):
        flags.append("qr_mismatch")
    missing_photos = ctx.missing_photos(loaded["photos"])  # PROTOCOL.md §4
    if missing_photos:
        flags.append("photos_missing")
    duplicates = _possible_duplicates(ctx, notice_no, loaded, observed_at, code)
    if duplicates:
        flags.append("possible_duplicate")

    offender = None
    if "offender" in loaded:
        offender = dict(data["offender"])  # as sent (strings), to be encrypted whole
    cmd = notice_ops.IssueNotice(
        notice_no=notice_no,
        event_id=str(event["event_id"]),
        device_id=ctx.device.id,
        jurisdiction=ctx.device.jurisdiction,
        kind=kind,
        violation_code=code.code,
        schedule_key=loaded["schedule_key"],
        amount=loaded["amount"],
        reduced_amount=loaded["reduced_amount"],
        opinion_deadline=loaded["opinion_deadline"],
        place_address=loaded["place"]["address"],
        lat=loaded["place"].get("lat"),
        lon=loaded["place"].get("lon"),
        zone=zone,
        observed_at=observed_at,
        observed_again_at=loaded.get("observed_again_at"),
        issued_at=occurred_at,
        qr=loaded["qr"],
        officer_id=officer.id,
        vehicle_plate=loaded["vehicle"]["plate"] if "vehicle" in loaded else None,
        vehicle_type=vehicle_type,
        offender=offender,
        photos=loaded["photos"],
        memo=loaded.get("memo"),
        flags=_ordered(flags),
        expected=expected_values,
        revenue_item=code.revenue_item,
    )
    if ctx.is_spoiled(notice_no) or notice_no in ctx.issue_numbers:
        return _number_taken(notice_no)
    # written with the batch's other issues (``flush_issues``); the outcome is final unless the number is taken
    outcome = Outcome(protocol.ACCEPTED, notice_no, version=1, flags=list(cmd.flags))
    ctx.issues.append(
        _BufferedIssue(
            cmd=cmd,
            actor=Actor(user_id=officer.id, device_id=ctx.device.id, label="device"),
            outcome=outcome,
            missing_photos=missing_photos,
            duplicates=duplicates,
            block_id=block.id if block is not None else None,
            in_suspense=ctx.in_suspense(notice_no),
        )
    )
    ctx.issue_numbers.add(notice_no)
    if cmd.vehicle_plate is not None:
        ctx.accepted(
            review_ops.Candidate(notice_no, cmd.vehicle_plate, code.code, observed_at, cmd.place_address, cmd.lat,
                                 cmd.lon)
        )  # fmt: skip
    if ctx.issues[-1].in_suspense:
        flush_issues(ctx)  # paid before the device synced: matched at once (DESIGN.md §4)
    return outcome


def flush_issues(ctx: PushContext) -> None:
    """Write the buffered issues (``notice_ops.issue_notices``: a few statements for the lot), then what each one
    accepted needs: photo waits, duplicate notes, block usage, suspense matching. An issue whose number turned out
    taken becomes ``notice_no_taken``."""
    if not ctx.issues:
        return
    buffered, ctx.issues, ctx.issue_numbers = ctx.issues, [], set()
    session = ctx.session
    ids = notice_ops.issue_notices(session, [(b.cmd, b.actor) for b in buffered], ctx.now, ctx.cipher)
    ctx.written.update(ids)
    for item in buffered:
        notice_no = item.cmd.notice_no
        notice_id = ids.get(notice_no)
        if notice_id is None:
            taken = _number_taken(notice_no)
            item.outcome.status, item.outcome.version, item.outcome.flags = taken.status, None, []
            item.outcome.problems = taken.problems
            ctx.refused_issues.add(notice_no)
            plate = item.cmd.vehicle_plate
            if plate is not None and plate in ctx._accepted:  # never a notice: nothing can duplicate it
                ctx._accepted[plate] = [c for c in ctx._accepted[plate] if c.notice_no != notice_no]
            continue
        if item.block_id is not None:
            ctx.used_in_blocks[item.block_id] = ctx.used_in_blocks.get(item.block_id, 0) + 1
        if item.missing_photos:
            evidence.await_photos(session, notice_id, item.missing_photos)
        others = [c.id if c.id is not None else ctx.written.get(c.notice_no) for c in item.duplicates]
        if any(other is not None for other in others) or item.in_suspense:
            notice = session.get(notice_ops.Notice, notice_id)
            assert notice is not None
            duplicates = [n for n in (session.get(notice_ops.Notice, i) for i in others if i is not None) if n]
            if duplicates:
                notice_ops.note_possible_duplicate(session, notice, duplicates, item.actor, ctx.now)
            if item.in_suspense:
                payment_ops.match_suspense(session, notice, Actor.system(), ctx.now)


def _possible_duplicates(
    ctx: PushContext, notice_no: str, loaded: dict[str, Any], observed_at: datetime, code: ViolationCode
) -> list[review_ops.Candidate]:
    """Parking notices this one may duplicate (same plate and code, near in time and place; any device, this
    batch's accepted issues included), oldest first."""
    if "vehicle" not in loaded:
        return []
    place = loaded["place"]
    probe = review_ops.DuplicateProbe(
        notice_no=notice_no,
        jurisdiction=ctx.device.jurisdiction,
        plate=loaded["vehicle"]["plate"],
        violation_code=code.code,
        observed_at=observed_at,
        place_address=place["address"],
        lat=place.get("lat"),
        lon=place.get("lon"),
    )
    candidates = ctx.duplicate_candidates(probe.plate, observed_at)
    found = [
        c for c in candidates if review_ops.may_duplicate(probe, c, code.dedupe_window_min, code.dedupe_distance_m)
    ]
    return sorted(found, key=lambda c: (c.observed_at, c.id is None, c.id or 0))


def _qr_matches(ctx: PushContext, notice_no: str, loaded: dict[str, Any]) -> bool:
    """§5 to the letter: the QR is ``<pay_base_url>/p/<notice_no>?a=..&r=..&d=..&s=<sig>`` with the printed amounts
    and deadline, signed by one of the device's QR keys; only the signature's case may differ."""
    text: str = loaded["qr"]
    for key in ctx.qr_keys():
        expected = protocol.qr_url(
            ctx.pay_base_url, key, notice_no, loaded["amount"], loaded["reduced_amount"], loaded["opinion_deadline"]
        )
        head, _, sig = expected.rpartition("&s=")
        prefix = f"{head}&s="
        if text.startswith(prefix) and hmac.compare_digest(text[len(prefix) :].upper().encode(), sig.encode()):
            return True
    return False


def _ordered(flags: list[str]) -> list[str]:
    return [flag for flag in protocol.FLAGS if flag in flags]


def _issue_refused(ctx: PushContext, notice_no: str) -> bool:
    """Whether this device's issue of ``notice_no`` was refused (rejected, or lost the number), in this batch or
    an earlier one."""
    if notice_no in ctx.refused_issues:
        return True
    refused = ctx.session.scalar(
        select(SyncEvent.id)
        .where(
            SyncEvent.notice_no == notice_no,
            SyncEvent.type == protocol.NOTICE_ISSUED,
            SyncEvent.status.in_([protocol.REJECTED, protocol.CONFLICT]),
            SyncEvent.device_id == ctx.device.id,
        )
        .limit(1)
    )
    return refused is not None


def _subject_rejected(notice_no: str) -> Outcome:
    return _rejected(notice_no, "subject_rejected", "notice_no", "the notice's issue was refused")


def _subject_missing(ctx: PushContext, notice_no: str) -> Outcome:
    if _issue_refused(ctx, notice_no):
        return _subject_rejected(notice_no)
    return _rejected(notice_no, "unknown_notice", "notice_no", "the server does not know this notice")


def _subject(
    ctx: PushContext, event: dict[str, Any], notice_no: str, *, for_update: bool = False
) -> tuple[int, notice_ops.Notice] | Outcome:
    """The notice an event is about, with the ``base_version`` the device knew; or the refusal to answer."""
    base_version = event.get("base_version")
    if not isinstance(base_version, int) or isinstance(base_version, bool):
        return _rejected(notice_no, "validation_failed", "base_version", "required: the version the device last knew")
    notice = notice_ops.find_notice(ctx.session, notice_no, for_update=for_update)
    if notice is None or notice.jurisdiction != ctx.device.jurisdiction:
        return _subject_missing(ctx, notice_no)
    if notice.device_id != ctx.device.id and _issue_refused(ctx, notice_no):
        # this device's notice never existed: the number belongs to another device's notice, not to be touched
        return _subject_rejected(notice_no)
    return base_version, notice


def _imposed_already(ctx: PushContext, notice: notice_ops.Notice) -> Outcome | None:
    """A device may void or correct its notice only before the fine is imposed: after that the imposition (a
    decision of the authority) stands until the authority itself changes it (objection, court, 직권취소)."""
    stage = ctx.session.scalar(select(FineCase.stage).where(FineCase.notice_id == notice.id))
    if stage is None or stage in BEFORE_IMPOSITION:
        return None
    return _rejected(
        notice.notice_no, "invalid_transition", "type", f"the fine is {stage}: only the authority can change it now"
    )


def _stale(notice: notice_ops.Notice) -> Outcome:
    """``stale_base_version``: not applied, the server's copy wins and comes with the answer."""
    return Outcome(
        protocol.CONFLICT,
        notice.notice_no,
        version=notice.version,
        problems=[{"code": "stale_base_version", "field": "base_version", "message": "the notice changed since"}],
        current=notice_ops.notice_status_data(notice),
    )


def _invalid_number(ctx: PushContext, notice_no: str) -> Outcome | None:
    """``notice_no_invalid`` for a bad check digit or another jurisdiction's number (PROTOCOL.md §2)."""
    parsed = protocol.parse_notice_no(notice_no)
    if parsed is None or parsed.jurisdiction != ctx.device.jurisdiction:
        return _rejected(
            notice_no, "notice_no_invalid", "notice_no", "bad check digit or another jurisdiction's number"
        )
    return None


def _number_taken(notice_no: str) -> Outcome:
    return Outcome(
        protocol.CONFLICT,
        notice_no,
        problems=[{"code": "notice_no_taken", "field": "notice_no", "message": "this number was already used"}],
    )


def _voided(
    ctx: PushContext, event: dict[str, Any], notice_no: str, occurred_at: datetime, data: dict[str, Any]
) -> Outcome:
    try:
        loaded = _NOTICEVOIDEDDATA.load(data)
    except ValidationError as exc:
        return _invalid_data(notice_no, exc.messages)
    subject = _subject(ctx, event, notice_no, for_update=True)
    if isinstance(subject, Outcome):
        return subject
    base_version, notice = subject
    flags = _common_flags(ctx, event, data, occurred_at)
    if notice.version != base_version:
        return _stale(notice)
    if notice.status not in notice_ops.VOIDABLE:
        return _rejected(notice_no, "invalid_transition", "type", f"a notice that is {notice.status} cannot be voided")
    imposed = _imposed_already(ctx, notice)
    if imposed is not None:
        return imposed
    actor = Actor(user_id=ctx.officer_id, device_id=ctx.device.id, label="device")
    notice_ops.void_notice(
        ctx.session,
        notice,
        loaded["reason_code"],
        loaded.get("memo"),
        actor,
        occurred_at,
        ctx.now,
        f"event:{event['event_id']}",
    )
    return Outcome(protocol.ACCEPTED, notice_no, version=notice.version, flags=_ordered(flags))


def _corrected(
    ctx: PushContext, event: dict[str, Any], notice_no: str, occurred_at: datetime, data: dict[str, Any]
) -> Outcome:
    """``notice.corrected``: the officer's own correction of a notice not yet decided (its number never changes).

    A stale ``base_version`` is a conflict carrying the server's copy; the amounts are recomputed from the schedule
    in force when the violation was observed (a difference is accepted and flagged ``amount_mismatch``)."""
    try:
        loaded = _NOTICECORRECTEDDATA.load(data)
    except ValidationError as exc:
        return _invalid_data(notice_no, exc.messages)
    changed = [key for key in loaded if key not in ("prev_hash", "reason")]
    if not changed:
        return _rejected(notice_no, "validation_failed", "data", "a correction must change at least one field")
    subject = _subject(ctx, event, notice_no, for_update=True)
    if isinstance(subject, Outcome):
        return subject
    base_version, notice = subject
    flags = _common_flags(ctx, event, data, occurred_at)
    if notice.version != base_version:
        return _stale(notice)
    imposed = _imposed_already(ctx, notice)
    if imposed is not None:
        return imposed
    vehicle = loaded.get("vehicle") or {}
    place = loaded.get("place") or {}
    cmd = notice_ops.CorrectNotice(
        reason=loaded["reason"],
        amount=loaded.get("amount"),
        plate=vehicle.get("plate"),
        vehicle_type=vehicle.get("type"),
        violation_code=loaded.get("violation_code"),
        place_address=place.get("address"),
        zone=place.get("zone"),
        memo=loaded.get("memo"),
        qr=loaded.get("qr"),
        source=f"event:{event['event_id']}",
        by_device=True,
    )
    actor = Actor(user_id=ctx.officer_id, device_id=ctx.device.id, label="device")
    try:
        notice_ops.correct_notice(ctx.session, notice, cmd, actor, ctx.now)
    except InvalidTransition as exc:
        return _rejected(notice_no, "invalid_transition", "type", exc.detail)
    except InvalidInput as exc:
        return _rejected(notice_no, "validation_failed", f"data.{(exc.field or 'fields').removeprefix('fields.')}",
                         exc.detail)  # fmt: skip
    if "reduced_amount" in loaded and loaded["reduced_amount"] != notice.reduced_amount:
        flags.append("amount_mismatch")
    if "qr" in loaded:
        printed = {
            "qr": loaded["qr"],
            "amount": notice.amount,
            "reduced_amount": loaded.get("reduced_amount", notice.reduced_amount),
            "opinion_deadline": loaded.get("opinion_deadline", notice.opinion_deadline),
        }
        if not _qr_matches(ctx, notice_no, printed):
            flags.append("qr_mismatch")
    review = [flag for flag in ("amount_mismatch", "qr_mismatch") if flag in flags]
    if review:
        # a correction printed with amounts or a QR the server does not confirm waits for a clerk, as an issue would
        notice_ops.flag_for_review(ctx.session, notice, review, actor, ctx.now)
    return Outcome(protocol.ACCEPTED, notice_no, version=notice.version, flags=_ordered(flags))


def _spoiled(
    ctx: PushContext, event: dict[str, Any], notice_no: str, occurred_at: datetime, data: dict[str, Any]
) -> Outcome:
    """``number.spoiled``: a number of the device's blocks that will never be issued."""
    try:
        loaded = _NUMBERSPOILEDDATA.load(data)
    except ValidationError as exc:
        return _invalid_data(notice_no, exc.messages)
    if event.get("base_version") is not None:
        return _rejected(notice_no, "validation_failed", "base_version", "must be null for number.spoiled")
    invalid = _invalid_number(ctx, notice_no)
    if invalid is not None:
        return invalid
    taken = _number_taken(notice_no)
    if notice_ops.find_notice(ctx.session, notice_no) is not None:
        return taken
    flags = _common_flags(ctx, event, data, occurred_at)
    block = ctx.own_block(notice_no)
    if block is None:
        flags.append("number_outside_block")
    recorded = device_ops.spoil_number(
        ctx.session,
        notice_no=notice_no,
        device_id=ctx.device.id,
        reason=loaded["reason"],
        event_id=str(event["event_id"]),
        officer_id=ctx.officer_id,
        spoiled_at=occurred_at,
    )
    if not recorded:
        return taken
    ctx.spoiled().add(notice_no)
    if block is not None:
        ctx.used_in_blocks[block.id] = ctx.used_in_blocks.get(block.id, 0) + 1
    return Outcome(protocol.ACCEPTED, notice_no, flags=_ordered(flags))


def _reprinted(
    ctx: PushContext, event: dict[str, Any], notice_no: str, occurred_at: datetime, data: dict[str, Any]
) -> Outcome:
    """``notice.reprinted``: recorded on the notice's timeline; it changes nothing, so any base version will do."""
    try:
        loaded = _NOTICEREPRINTEDDATA.load(data)
    except ValidationError as exc:
        return _invalid_data(notice_no, exc.messages)
    subject = _subject(ctx, event, notice_no)
    if isinstance(subject, Outcome):
        return subject
    _, notice = subject
    flags = _common_flags(ctx, event, data, occurred_at)
    actor = Actor(user_id=ctx.officer_id, device_id=ctx.device.id, label="device")
    notice_ops.record_reprint(ctx.session, notice, loaded["count"], occurred_at, actor)
    return Outcome(protocol.ACCEPTED, notice_no, version=notice.version, flags=_ordered(flags))


_HANDLERS: dict[str, Callable[[PushContext, dict[str, Any], str, datetime, dict[str, Any]], Outcome]] = {
    protocol.NOTICE_ISSUED: _issued,
    protocol.NOTICE_VOIDED: _voided,
    protocol.NOTICE_CORRECTED: _corrected,
    protocol.NUMBER_SPOILED: _spoiled,
    protocol.NOTICE_REPRINTED: _reprinted,
}


# --- the hold queue: force-processing by a clerk (DESIGN.md §6) -----------------------------------------------------


def forced_links(session: Session, device: Device) -> dict[int, str]:
    """``seq`` → content hash of the device's links above its ``acked_seq`` that are already final: held events a
    clerk force-processed while the gap before them is still open."""
    rows = session.execute(
        select(SyncEvent.seq, SyncEvent.content_hash).where(
            SyncEvent.device_id == device.id,
            SyncEvent.generation == device.generation,
            SyncEvent.is_link.is_(True),
            SyncEvent.seq > device.acked_seq,
            SyncEvent.status != protocol.HELD,
        )
    ).all()
    return {seq: content_hash for seq, content_hash in rows}


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
        ctx = PushContext(
            session,
            device,
            batch,
            now,
            cipher,
            settings,
            pay_base_url,
            False,
            row.officer_id,
            forcing=True,
            link_generation=row.generation,
        )
        outcome = _apply(ctx, event, row.content_hash)
        flush_issues(ctx)
    else:
        outcome = _rejected(storable(row.notice_no), "force_rejected", "event_id", cmd.reason)
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
