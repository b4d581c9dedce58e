"""Back-office wire schemas (PROTOCOL.md §1, §6): shape only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from marshmallow import Schema, fields, validate

import protocol
from models.devices import Device
from sync.schemas import Text

T = TypeVar("T")
JURISDICTION = validate.Regexp(r"^[0-9]{5}$", error="must be a 5-digit jurisdiction code")


class LoginRequest(Schema):
    login = Text(line=True, required=True, validate=validate.Length(min=1, max=60))
    password = Text(required=True, validate=validate.Length(min=1, max=200))


class UserOut(Schema):
    login = fields.String()
    role = fields.String()
    jurisdiction = fields.String()


class LoginResponse(Schema):
    """Dumps ``auth.Token``."""

    access_token = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(UserOut)


class RegisterDeviceRequest(Schema):
    jurisdiction = Text(line=True, required=True, validate=JURISDICTION)
    label = Text(line=True, required=True, validate=validate.Length(min=1, max=80))


class RegisterDeviceResponse(Schema):
    """Dumps ``EnrollmentCode``."""

    device_id = fields.String(attribute="device.id")
    enrollment_code = fields.String()


class EnrollmentCodeResponse(RegisterDeviceResponse):
    expires_at = fields.DateTime(attribute="device.enrollment_expires_at")


@dataclass(frozen=True)
class EnrollmentCode:
    """A device and its fresh one-use enrollment code (shown once)."""

    device: Device
    enrollment_code: str


class RevokeRequest(Schema):
    reason = Text(required=True, validate=validate.Length(min=1, max=200))


class RevokeResponse(Schema):
    """Dumps ``devices.Revocation``."""

    device_id = fields.String()
    revoked_at = fields.DateTime()
    cancelled_numbers = fields.Integer()


class DeviceOut(Schema):
    device_id = fields.String(attribute="id")
    jurisdiction = fields.String()
    label = fields.String()
    status = fields.String()
    acked_seq = fields.Integer()
    last_push_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class DeviceList(Schema):
    items = fields.List(fields.Nested(DeviceOut))


class NoticeQuery(Schema):
    notice_no = Text(line=True, validate=validate.Length(max=15))
    plate = Text(line=True, validate=validate.Length(max=20))
    status = fields.String(validate=validate.OneOf(protocol.NOTICE_STATUSES))
    from_ = fields.AwareDateTime(data_key="from")
    to = fields.AwareDateTime()
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    after = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$", error="must be a cursor from `next`"))


class NoticeOut(Schema):
    notice_no = fields.String()
    status = fields.String()
    version = fields.Integer()
    kind = fields.String()
    jurisdiction = fields.String()
    violation_code = fields.String()
    amount = fields.Integer()
    reduced_amount = fields.Integer()
    opinion_deadline = fields.Date()
    observed_at = fields.DateTime()
    issued_at = fields.DateTime()
    synced_at = fields.DateTime()
    device_id = fields.String()
    officer_id = fields.Integer(allow_none=True)
    flags = fields.List(fields.String())
    vehicle_plate = fields.String(allow_none=True)
    vehicle_type = fields.String(allow_none=True)
    offender_name = fields.String(attribute="offender_name_masked", allow_none=True)
    place_address = fields.String()
    zone = fields.String(allow_none=True)
    expected = fields.Dict(allow_none=True)
    void_reason = fields.String(allow_none=True)


class NoticeList(Schema):
    items = fields.List(fields.Nested(NoticeOut))
    next = fields.String(allow_none=True)


class EntryOut(Schema):
    """Dumps ``payments.EntryLine``."""

    id = fields.Integer(attribute="entry.id")
    charge_head = fields.String()
    kind = fields.String(attribute="entry.kind")
    amount = fields.Integer(attribute="entry.amount")
    business_date = fields.Date(attribute="entry.business_date")
    posted_at = fields.DateTime(attribute="entry.posted_at")
    actor_user_id = fields.Integer(attribute="entry.actor_user_id", allow_none=True)
    actor_device_id = fields.String(attribute="entry.actor_device_id", allow_none=True)
    source = fields.String(attribute="entry.source", allow_none=True)
    memo = fields.String(attribute="entry.memo", allow_none=True)


class ReceivableOut(Schema):
    """Dumps ``payments.ReceivableBalance``."""

    id = fields.Integer(attribute="receivable.id")
    revenue_item = fields.String(attribute="receivable.revenue_item")
    status = fields.String(attribute="receivable.status")
    balance = fields.Integer()
    allocation_policy = fields.String(attribute="receivable.allocation_policy")


class PaymentOut(Schema):
    id = fields.Integer()
    gateway = fields.String()
    txn_id = fields.String()
    channel = fields.String()
    amount = fields.Integer()
    status = fields.String()
    approved_at = fields.DateTime(allow_none=True)


class TimelineOut(Schema):
    what = fields.String()
    at = fields.DateTime()
    actor_user_id = fields.Integer(allow_none=True)
    actor_device_id = fields.String(allow_none=True)
    detail = fields.Dict(allow_none=True)


class NoticeDetail(NoticeOut):
    """Dumps ``payments.NoticeDetails``: the notice's own fields, then what is posted against it."""

    receivable = fields.Nested(ReceivableOut, allow_none=True)
    entries = fields.List(fields.Nested(EntryOut))
    payments = fields.List(fields.Nested(PaymentOut))
    timeline = fields.List(fields.Nested(TimelineOut))

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        return super().get_attribute(obj if attr in _DETAILS else obj.notice, attr, default)


_DETAILS = frozenset(("receivable", "entries", "payments", "timeline"))


# --- keyset pages ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Items(Generic[T]):
    """A whole list, dumped by a ``…List`` schema (``items``)."""

    items: list[T]


@dataclass(frozen=True)
class Page(Items[T]):
    """One page of a keyset-paginated list, dumped by a ``…List`` schema (``items``, ``next``)."""

    next: str | None


def keyset_page(rows: Sequence[T], limit: int, cursor: Callable[[T], object]) -> Page[T]:
    """The page of ``rows`` fetched as ``limit + 1``: ``next`` is the cursor of its last row when more follow."""
    shown = list(rows[:limit])
    return Page(shown, str(cursor(shown[-1])) if len(rows) > limit and shown else None)
