"""The batch envelope (PROTOCOL.md §2): the all-or-nothing part of a push, what PostgreSQL cannot store, and the
personal fields sealed in a stored event. Pure: no session, no query."""

from __future__ import annotations

import copy
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import protocol
from models.crypto import PiiCipher
from models.errors import InvalidInput


class EnvelopeError(InvalidInput):
    """The batch envelope is malformed: the whole batch is refused, nothing applied."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("the batch envelope is malformed; nothing was applied", code="validation_failed")
        self.errors = errors


# --- envelope ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    batch_id: str
    device_time: datetime | None
    events: list[dict[str, Any]]


MAX_SEQ = 2**63 - 1  # seq (and every id) is a PostgreSQL bigint


def is_uuid(value: Any) -> bool:
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
    if not is_uuid(body.get("batch_id")):
        errors["batch_id"] = ["required: a UUID string"]
    device_time = None
    raw_time = body.get("device_time")
    if raw_time is not None:
        device_time = parse_time(raw_time)
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
        if not is_uuid(event.get("event_id")):
            errors[f"{where}.event_id"] = ["required: a UUID string"]
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SEQ:
            errors[f"{where}.seq"] = [f"required: an integer from 1 to {MAX_SEQ}"]
        if not isinstance(event.get("type"), str) or not event.get("type"):
            errors[f"{where}.type"] = ["required: a string"]
    if errors:
        raise EnvelopeError(errors)
    return Batch(batch_id=body["batch_id"], device_time=device_time, events=events)


def parse_time(value: Any) -> datetime | None:
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
HEX64 = re.compile("[0-9a-f]{64}")
UNSTORABLE_MARK = "_unstorable"  # in a stored payload: the paths that had to be replaced to store it


def bad_text(text: str) -> bool:
    return "\x00" in text or _SURROGATE.search(text) is not None


def storable_text(text: str) -> str:
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
            name = storable_text(str(key))
            where = f"{path}.{name}" if path else name
            if isinstance(key, str) and bad_text(key):
                found.append(where)
            else:
                found.extend(_unstorable_paths(item, where, depth + 1))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_unstorable_paths(item, f"{path}.{index}" if path else str(index), depth + 1))
    elif isinstance(value, str):
        if bad_text(value):
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
        return {storable_text(k) if isinstance(k, str) else k: storable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(item, depth + 1) for item in value]
    if isinstance(value, str):
        return storable_text(value) if bad_text(value) else value
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


# --- what an event names, read before it is validated ---------------------------------------------------------------


def notice_no_of(event: dict[str, Any]) -> str | None:
    """The event's ``notice_no`` when it is a string."""
    value = event.get("notice_no")
    return value if isinstance(value, str) else None


def photos_of(event: dict[str, Any]) -> list[str]:
    """The well-formed photo hashes an event names (the event's own validation judges the rest)."""
    data = event.get("data")
    photos = data.get("photos") if isinstance(data, dict) else None
    if not isinstance(photos, list):
        return []
    return [p for p in photos if isinstance(p, str) and HEX64.fullmatch(p)]


def plate_and_time(event: dict[str, Any]) -> tuple[str, datetime] | None:
    """(plate, observed time) of an issue event that names both well enough to look for duplicates."""
    if event.get("type") != protocol.NOTICE_ISSUED:
        return None
    data = event.get("data")
    vehicle = data.get("vehicle") if isinstance(data, dict) else None
    plate = vehicle.get("plate") if isinstance(vehicle, dict) else None
    observed = parse_time(data.get("observed_at")) if isinstance(data, dict) else None
    if not isinstance(plate, str) or not 1 <= len(plate) <= 20 or bad_text(plate) or observed is None:
        return None
    return plate, observed


def named_officer(event: dict[str, Any]) -> int | None:
    """``data.officer_id`` when it is a possible id (whether it names an officer is for the loaded users to say)."""
    data = event.get("data")
    named = data.get("officer_id") if isinstance(data, dict) else None
    if not isinstance(named, int) or isinstance(named, bool) or not 1 <= named <= MAX_SEQ:
        return None
    return named


def named_text(event: dict[str, Any], key: str) -> str | None:
    """``data[key]`` when it is text a query may carry (no NUL, no lone surrogate)."""
    data = event.get("data")
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) and not bad_text(value) else None
