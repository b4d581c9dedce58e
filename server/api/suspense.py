"""Back office, ``/api/v1/suspense``: money that matched no notice (미확인 수납, ``models.suspense``).

- ``GET /api/v1/suspense?status=open`` — rows the caller's jurisdiction may see, oldest first, each with its
  payment (source, reference, amount, when) and ``refund_due`` once it has waited ``JINGSU_SUSPENSE_REFUND_DAYS``.
- ``POST /api/v1/suspense/<id>/match`` ``{"notice_no", "note"}`` — post it to the notice the payer meant.
- ``POST /api/v1/suspense/<id>/refund`` ``{"reason", "bank_name", "account_no", "holder"}`` — return it; the
  account is stored sealed and answered masked.

Refusal order: 401/403 token and role, 422 body, 404 row or notice (or outside the caller's scope), 409
``invalid_transition`` (already matched or refunded, a voided notice).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from models import suspense
from models.errors import NotFound
from models.payments import SUSPENSE_MATCHED, SUSPENSE_OPEN, SUSPENSE_REFUNDED, Payment, SuspensePayment
from server import auth
from server.errors import ApiError
from server.runtime import runtime, unit_of_work
from sync.schemas import Text

blp = Blueprint("suspense", __name__, url_prefix="/api/v1/suspense", description="Suspense payments (미확인 수납)")

READERS = ("admin", "clerk", "approver", "auditor")
CLERKS = ("admin", "clerk")
_ID = re.compile(r"[1-9][0-9]{0,17}")
STATUSES = (SUSPENSE_OPEN, SUSPENSE_MATCHED, SUSPENSE_REFUNDED, "cancelled")


class SuspenseOut(Schema):
    id = fields.Integer()
    status = fields.String()
    reported_notice_no = fields.String(allow_none=True, metadata={"description": "the number the payment named"})
    jurisdiction = fields.String(allow_none=True)
    amount = fields.Integer()
    source = fields.String(metadata={"description": "gateway or bank"})
    reference = fields.String(metadata={"description": "the source's transaction or receipt id"})
    channel = fields.String()
    paid_at = fields.DateTime(allow_none=True)
    received_at = fields.DateTime()
    age_days = fields.Integer()
    refund_due = fields.Boolean()
    matched_notice_no = fields.String(allow_none=True)
    matched_at = fields.DateTime(allow_none=True)
    match_note = fields.String(allow_none=True)
    refund_reason = fields.String(allow_none=True)
    refund_account = fields.String(allow_none=True, metadata={"description": "masked"})
    refunded_at = fields.DateTime(allow_none=True)


class SuspenseList(Schema):
    items = fields.List(fields.Nested(SuspenseOut))


class MatchIn(Schema):
    notice_no = Text(line=True, required=True, validate=validate.Regexp(r"^[0-9]{15}\Z", error="15 digits"))
    note = Text(required=True, validate=validate.Length(min=1, max=200))


class RefundIn(Schema):
    reason = Text(required=True, validate=validate.Length(min=1, max=200))
    bank_name = Text(line=True, required=True, validate=validate.Length(min=1, max=20))
    account_no = Text(line=True, required=True, validate=validate.Regexp(r"^[0-9-]{8,30}\Z", error="digits"))
    holder = Text(line=True, required=True, validate=validate.Length(min=1, max=40))


def _id(text: str) -> int:
    if not _ID.fullmatch(text):
        raise NotFound("no such suspense payment", field="suspense_id")
    return int(text)


def _refund_after() -> timedelta:
    return timedelta(days=runtime().config.suspense_refund_days)


def _out(item: suspense.SuspenseItem, matched_notice_no: str | None = None) -> dict[str, Any]:
    row, payment = item.row, item.payment
    return {
        "id": row.id,
        "status": row.status,
        "reported_notice_no": row.notice_no,
        "jurisdiction": row.jurisdiction,
        "amount": row.amount,
        "source": payment.gateway,
        "reference": payment.txn_id,
        "channel": payment.channel,
        "paid_at": payment.approved_at,
        "received_at": row.created_at,
        "age_days": item.age_days,
        "refund_due": item.refund_due,
        "matched_notice_no": matched_notice_no if row.status == SUSPENSE_MATCHED else None,
        "matched_at": row.matched_at,
        "match_note": row.match_note,
        "refund_reason": row.refund_reason,
        "refund_account": row.refund_account_masked,
        "refunded_at": row.refunded_at,
    }


def _one(session: Session, row: SuspensePayment) -> dict[str, Any]:
    payment = session.get(Payment, row.payment_id)
    assert payment is not None
    item = suspense.item_of(row, payment, runtime().clock(), _refund_after())
    return _out(item, payment.notice_no)


@blp.route("")
class SuspenseCollection(MethodView):
    @auth.staff(*READERS)
    @blp.response(200, SuspenseList)
    def get(self) -> dict[str, Any]:
        """Suspense payments in a status (default ``open``), oldest first, within the caller's jurisdiction."""
        status = request.args.get("status", SUSPENSE_OPEN)
        if status not in STATUSES:
            raise ApiError(422, "validation_failed", "unknown status", errors={"status": [f"one of {STATUSES}"]})
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            items = suspense.list_suspense(session, scope, runtime().clock(), _refund_after(), status=status)
            return {"items": [_out(item, item.payment.notice_no) for item in items]}


@blp.route("/<suspense_id>/match")
class SuspenseMatch(MethodView):
    @auth.staff(*CLERKS)
    @blp.arguments(MatchIn)
    @blp.response(200, SuspenseOut)
    @blp.alt_response(404, description="not_found: the suspense payment or the notice")
    @blp.alt_response(409, description="invalid_transition: already matched or refunded; the notice is voided")
    def post(self, body: dict[str, Any], suspense_id: str) -> dict[str, Any]:
        """Post the money to the notice the payer meant (a clerk's decision, with a note)."""
        key = _id(suspense_id)
        with unit_of_work() as session:
            principal = auth.current_principal()
            scope = auth.scope_of(session, principal)
            row = suspense.match(
                session, key, body["notice_no"], body["note"], scope, principal.actor(), runtime().clock()
            )
            return _one(session, row)


@blp.route("/<suspense_id>/refund")
class SuspenseRefund(MethodView):
    @auth.staff(*CLERKS)
    @blp.arguments(RefundIn)
    @blp.response(200, SuspenseOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: already matched or refunded")
    def post(self, body: dict[str, Any], suspense_id: str) -> dict[str, Any]:
        """Return unmatched money to the payer: who, when, why and the account (sealed, answered masked)."""
        key = _id(suspense_id)
        rt = runtime()
        with unit_of_work() as session:
            principal = auth.current_principal()
            scope = auth.scope_of(session, principal)
            account = suspense.RefundAccount(body["bank_name"], body["account_no"], body["holder"])
            row = suspense.refund(
                session, key, body["reason"], account, rt.cipher, scope, principal.actor(), rt.clock()
            )
            return _one(session, row)
