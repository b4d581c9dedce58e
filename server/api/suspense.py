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

from models import suspense
from models.errors import NotFound
from models.payments import SUSPENSE_MATCHED, SUSPENSE_OPEN, SUSPENSE_REFUNDED
from server import auth
from server.api.schemas import Items
from server.errors import ApiError
from server.runtime import runtime, unit_of_work
from sync.schemas import Text

blp = Blueprint("suspense", __name__, url_prefix="/api/v1/suspense", description="Suspense payments (미확인 수납)")

READERS = ("admin", "clerk", "approver", "auditor")
CLERKS = ("admin", "clerk")
_ID = re.compile(r"[1-9][0-9]{0,17}")
STATUSES = (SUSPENSE_OPEN, SUSPENSE_MATCHED, SUSPENSE_REFUNDED, "cancelled")


class SuspenseOut(Schema):
    """Dumps ``suspense.SuspenseItem``."""

    id = fields.Integer(attribute="row.id")
    status = fields.String(attribute="row.status")
    reported_notice_no = fields.String(
        attribute="row.notice_no", allow_none=True, metadata={"description": "the number the payment named"}
    )
    jurisdiction = fields.String(attribute="row.jurisdiction", allow_none=True)
    amount = fields.Integer(attribute="row.amount")
    source = fields.String(attribute="payment.gateway", metadata={"description": "gateway or bank"})
    reference = fields.String(
        attribute="payment.txn_id", metadata={"description": "the source's transaction or receipt id"}
    )
    channel = fields.String(attribute="payment.channel")
    paid_at = fields.DateTime(attribute="payment.approved_at", allow_none=True)
    received_at = fields.DateTime(attribute="row.created_at")
    age_days = fields.Integer()
    refund_due = fields.Boolean()
    matched_notice_no = fields.String(allow_none=True)
    matched_at = fields.DateTime(attribute="row.matched_at", allow_none=True)
    match_note = fields.String(attribute="row.match_note", allow_none=True)
    refund_reason = fields.String(attribute="row.refund_reason", allow_none=True)
    refund_account = fields.String(
        attribute="row.refund_account_masked", allow_none=True, metadata={"description": "masked"}
    )
    refunded_at = fields.DateTime(attribute="row.refunded_at", allow_none=True)


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


@blp.route("")
class SuspenseCollection(MethodView):
    @auth.staff(*READERS)
    @blp.response(200, SuspenseList)
    def get(self) -> Items[suspense.SuspenseItem]:
        """Suspense payments in a status (default ``open``), oldest first, within the caller's jurisdiction."""
        status = request.args.get("status", SUSPENSE_OPEN)
        if status not in STATUSES:
            raise ApiError(422, "validation_failed", "unknown status", errors={"status": [f"one of {STATUSES}"]})
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            items = suspense.list_suspense(session, scope, runtime().clock(), _refund_after(), status=status)
            return Items(items)


@blp.route("/<suspense_id>/match")
class SuspenseMatch(MethodView):
    @auth.staff(*CLERKS)
    @blp.arguments(MatchIn)
    @blp.response(200, SuspenseOut)
    @blp.alt_response(404, description="not_found: the suspense payment or the notice")
    @blp.alt_response(409, description="invalid_transition: already matched or refunded; the notice is voided")
    def post(self, body: dict[str, Any], suspense_id: str) -> suspense.SuspenseItem:
        """Post the money to the notice the payer meant (a clerk's decision, with a note)."""
        key = _id(suspense_id)
        with unit_of_work() as session:
            principal = auth.current_principal()
            scope = auth.scope_of(session, principal)
            row = suspense.match(
                session, key, body["notice_no"], body["note"], scope, principal.actor(), runtime().clock()
            )
            return suspense.item_of_row(session, row, runtime().clock(), _refund_after())


@blp.route("/<suspense_id>/refund")
class SuspenseRefund(MethodView):
    @auth.staff(*CLERKS)
    @blp.arguments(RefundIn)
    @blp.response(200, SuspenseOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: already matched or refunded")
    def post(self, body: dict[str, Any], suspense_id: str) -> suspense.SuspenseItem:
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
            return suspense.item_of_row(session, row, runtime().clock(), _refund_after())
