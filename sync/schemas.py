"""Marshmallow schemas of sync protocol v1 (PROTOCOL.md §1–§3): the wire shapes, shared by server and device.

Schemas describe shape only (types, lengths, enums); state rules live in ``sync.push`` and ``models``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

import protocol

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_WON = 2**53 - 1  # the largest integer every JSON parser keeps exactly; far beyond any fine
MAX_ID = 2**63 - 1  # ids and counters are PostgreSQL bigints


class AwareDateTime(fields.DateTime):
    """ISO 8601 with an offset; a naive time is refused (any offset is accepted)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        result = super()._deserialize(value, attr, data, **kwargs)
        if result.tzinfo is None:
            raise ValidationError("must carry a UTC offset, e.g. 2026-11-25T14:03:00+09:00")
        if not protocol.time_in_range(result):
            raise ValidationError(f"must be a time {protocol.TIME_RANGE_TEXT}")
        return result


class StrictInteger(fields.Integer):
    """An integer that must be a JSON number, not a string or a boolean."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise ValidationError("not a valid integer")
        return super()._deserialize(value, attr, data, **kwargs)


def _hex64(value: str) -> None:
    if not _HEX64.fullmatch(value):  # fullmatch: "$" also matches before a final "\n"
        raise ValidationError("must be 64 lower-case hex characters")


class Text(fields.String):
    """A string PostgreSQL can store and UTF-8 can encode: no NUL, no lone surrogates (JSON's ``\\ud800`` escapes
    decode to them) — else the database or the encoder, not the schema, would refuse it, as a 500.

    ``line=True`` (names, codes, filters) also refuses every other control character; free text keeps tab and
    line breaks."""

    _SURROGATE = re.compile("[\ud800-\udfff]")
    _CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
    _CONTROL_BUT_BREAKS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

    def __init__(self, *, line: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.control = self._CONTROL if line else self._CONTROL_BUT_BREAKS

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        if self._SURROGATE.search(text):
            raise ValidationError("must be valid Unicode text (a lone surrogate is not)")
        if self.control.search(text):
            raise ValidationError("must not contain control characters")
        return text


# --- enrollment and sign-in (§1) -------------------------------------------------------------------------------


class EnrollRequest(Schema):
    enrollment_code = Text(line=True, required=True, validate=validate.Length(min=1, max=32))
    model = Text(line=True, required=True, validate=validate.Length(min=1, max=80))
    app_version = Text(line=True, required=True, validate=validate.Length(min=1, max=40))


class EnrollResponse(Schema):
    device_id = fields.String()
    device_secret = fields.String()
    qr_key = fields.String()
    pay_base_url = fields.String()
    jurisdiction = fields.String()
    server_time = fields.DateTime()
    epoch = fields.String()


class SessionRequest(Schema):
    device_id = Text(line=True, required=True, validate=validate.Length(min=1, max=64))
    device_secret = Text(line=True, required=True, validate=validate.Length(min=1, max=200))
    officer_login = Text(line=True, required=True, validate=validate.Length(min=1, max=60))
    password = Text(line=True, required=True, validate=validate.Length(min=1, max=200))


class OfficerOut(Schema):
    id = fields.Integer()
    name = fields.String()
    jurisdiction = fields.String()


class SessionResponse(Schema):
    access_token = fields.String()
    expires_in = fields.Integer()
    officer = fields.Nested(OfficerOut)
    server_time = fields.DateTime()
    epoch = fields.String()


# --- push (§2) -------------------------------------------------------------------------------------------------


class EventIn(Schema):
    """One pushed event; ``event_id``, ``seq`` and ``type`` are the envelope, the rest is checked per event."""

    event_id = fields.UUID(required=True)
    seq = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_ID))
    type = fields.String(required=True)
    notice_no = fields.String(allow_none=True)
    base_version = fields.Integer(allow_none=True)
    occurred_at = AwareDateTime()
    data = fields.Dict()


class PushRequest(Schema):
    batch_id = fields.UUID(required=True)
    device_time = AwareDateTime()
    events = fields.List(fields.Nested(EventIn), required=True)


class Problem(Schema):
    code = fields.String()
    field = fields.String()
    message = fields.String()


class EventResult(Schema):
    event_id = fields.String()
    seq = fields.Integer()
    status = fields.String(validate=validate.OneOf([*protocol.FINAL_STATUSES, protocol.DUPLICATE, protocol.HELD]))
    notice_no = fields.String(allow_none=True)
    version = fields.Integer(allow_none=True)
    flags = fields.List(fields.String())
    problems = fields.List(fields.Nested(Problem))
    current = fields.Dict()


class PushResponse(Schema):
    batch_id = fields.String()
    server_time = fields.DateTime()
    acked_seq = fields.Integer()
    results = fields.List(fields.Nested(EventResult))


class VehicleIn(Schema):
    plate = fields.String(required=True, validate=validate.Length(min=1, max=20))
    type = fields.String(required=True, validate=validate.OneOf(protocol.VEHICLE_TYPES))


class OffenderIn(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=60))
    birth_date = fields.Date(required=True)
    rrn = fields.String(validate=validate.Regexp(r"^[0-9]{6}-?[0-9]{7}$"))
    address = fields.String(required=True, validate=validate.Length(min=1, max=200))
    phone = fields.String(validate=validate.Length(max=30))


class PlaceIn(Schema):
    address = fields.String(required=True, validate=validate.Length(min=1, max=200))
    lat = fields.Float(validate=validate.Range(min=-90, max=90), allow_none=True)
    lon = fields.Float(validate=validate.Range(min=-180, max=180), allow_none=True)
    zone = fields.String(validate=validate.Length(max=40), allow_none=True)


class NoticeIssuedData(Schema):
    prev_hash = fields.String(required=True, validate=_hex64)
    kind = fields.String(required=True, validate=validate.OneOf(protocol.NOTICE_KINDS))
    violation_code = fields.String(required=True, validate=validate.Length(min=1, max=10))
    schedule_key = fields.String(required=True, validate=validate.Length(min=1, max=80))
    amount = StrictInteger(required=True, validate=validate.Range(min=0, max=MAX_WON))
    reduced_amount = StrictInteger(required=True, validate=validate.Range(min=0, max=MAX_WON))
    opinion_deadline = fields.Date(required=True)
    vehicle = fields.Nested(VehicleIn)
    offender = fields.Nested(OffenderIn)
    place = fields.Nested(PlaceIn, required=True)
    observed_at = AwareDateTime(required=True)
    observed_again_at = AwareDateTime(allow_none=True)
    photos = fields.List(fields.String(validate=_hex64), load_default=list)
    officer_id = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_ID))
    memo = fields.String(validate=validate.Length(max=500), allow_none=True)
    qr = fields.String(required=True, validate=validate.Length(min=1, max=500))


class NoticeVoidedData(Schema):
    prev_hash = fields.String(required=True, validate=_hex64)
    reason_code = fields.String(required=True, validate=validate.OneOf(protocol.VOID_REASONS))
    memo = fields.String(validate=validate.Length(max=500), allow_none=True)


class NoticeCorrectedData(Schema):
    """``notice.corrected``: the changed fields of ``notice.issued`` (never ``notice_no``), and the reason."""

    prev_hash = fields.String(required=True, validate=_hex64)
    reason = Text(required=True, validate=validate.Length(min=1, max=500))
    violation_code = Text(line=True, validate=validate.Length(min=1, max=10))
    schedule_key = Text(line=True, validate=validate.Length(min=1, max=80))
    amount = StrictInteger(validate=validate.Range(min=0, max=10**12))
    reduced_amount = StrictInteger(validate=validate.Range(min=0, max=10**12))
    opinion_deadline = fields.Date()
    vehicle = fields.Nested(VehicleIn)
    place = fields.Nested(PlaceIn)
    memo = Text(validate=validate.Length(max=500), allow_none=True)
    qr = Text(line=True, validate=validate.Length(min=1, max=500))


class NumberSpoiledData(Schema):
    prev_hash = fields.String(required=True, validate=_hex64)
    reason = fields.String(required=True, validate=validate.OneOf(protocol.SPOIL_REASONS))


class NoticeReprintedData(Schema):
    prev_hash = fields.String(required=True, validate=_hex64)
    count = StrictInteger(required=True, validate=validate.Range(min=1, max=10_000))


# --- pull (§3) -------------------------------------------------------------------------------------------------


class ChangesQuery(Schema):
    cursor = fields.String(validate=validate.Length(min=1, max=400))
    limit = fields.Integer(validate=validate.Range(min=1))


class ChangeOut(Schema):
    entity = fields.String()
    op = fields.String(validate=validate.OneOf(["upsert", "delete"]))
    key = fields.String()
    data = fields.Dict(allow_none=True)


class ChangesResponse(Schema):
    epoch = fields.String()
    next_cursor = fields.String()
    has_more = fields.Boolean()
    changes = fields.List(fields.Nested(ChangeOut))


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Marshmallow's nested error dict → ``{"data.place.address": ["..."]}`` (PROTOCOL.md §0 ``errors``)."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                path = prefix or "body"
            out.update(flatten_errors(value, path))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "body"] = list(messages)
    elif isinstance(messages, list):
        for index, value in enumerate(messages):
            out.update(flatten_errors(value, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix or "body"] = [str(messages)]
    return out
