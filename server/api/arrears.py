"""Back office, ``/api/v1``: arrears (체납, DESIGN.md §3 step 5–6, §5) — the business date and its steps, relief holds
(분납, 징수유예) on a receivable, a receivable's arrears view, and the plate-seizure hotlist refresh.

Refusal order: 401/403 token and role, 422/400 body, 404 receivable or hold (or outside the caller's scope), 409
``invalid_transition`` (or ``business_date_backwards``).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from models import arrears
from models.errors import NotFound
from server import auth
from server.api.schemas import JURISDICTION, Items
from server.runtime import chunk_transactions, runtime, unit_of_work
from services import steps
from sync.schemas import Text

blp = Blueprint("arrears", __name__, url_prefix="/api/v1", description="Arrears: business date, holds, hotlist")

READERS = ("admin", "clerk", "approver", "auditor")
DECIDERS = ("admin", "clerk")
OPERATORS = ("admin",)  # the business date and the steps are city-wide
_ID = re.compile(r"[1-9][0-9]{0,17}")  # a path id a BIGINT column can hold
# dates the engine accepts: beyond them no statutory period is computed (an input bound, not a rule of law)
DATES = validate.Range(min=date(2000, 1, 1), max=date(2999, 12, 31))


# --- schemas (shape only) -------------------------------------------------------------------------------------------


class BusinessDateOut(Schema):
    business_date = fields.Date()


class AdvanceRequest(Schema):
    business_date = fields.Date(required=True, validate=DATES)


class StepRequest(Schema):
    business_date = fields.Date(required=True, validate=DATES, metadata={"description": "at most the business date"})


class StepReportOut(Schema):
    business_date = fields.Date()
    receivables = fields.Integer()
    posted = fields.Integer()
    skipped = fields.Integer()
    amount = fields.Integer()
    defaults = fields.Integer()


class InstallmentIn(Schema):
    due_on = fields.Date(required=True, validate=DATES)
    amount = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=10_000_000_000))


class HoldRequest(Schema):
    kind = fields.String(required=True, validate=validate.OneOf((arrears.INSTALLMENT, arrears.DEFERRAL)))
    starts_on = fields.Date(
        validate=DATES, metadata={"description": "application (or notice) date; default: the business date"}
    )
    ends_on = fields.Date(validate=DATES)
    installments = fields.List(fields.Nested(InstallmentIn), validate=validate.Length(max=120))
    basis = Text(required=True, validate=validate.Length(min=1, max=200))


class EndHoldRequest(Schema):
    reason = fields.String(required=True, validate=validate.OneOf((arrears.DEFAULTED, arrears.CANCELLED)))
    on = fields.Date(validate=DATES, metadata={"description": "default: the business date"})


class InstallmentOut(Schema):
    seq = fields.Integer()
    due_on = fields.Date()
    amount = fields.Integer()


class HoldOut(Schema):
    """Dumps ``arrears.HoldDetails``."""

    id = fields.Integer(attribute="hold.id")
    receivable_id = fields.Integer(attribute="hold.receivable_id")
    kind = fields.String(attribute="hold.kind")
    starts_on = fields.Date(attribute="hold.starts_on")
    ends_on = fields.Date(attribute="hold.ends_on", allow_none=True)
    ended_on = fields.Date(attribute="hold.ended_on", allow_none=True)
    end_reason = fields.String(attribute="hold.end_reason", allow_none=True)
    basis = fields.String(attribute="hold.basis", allow_none=True)
    installments = fields.List(fields.Nested(InstallmentOut))


class HoldList(Schema):
    items = fields.List(fields.Nested(HoldOut))


class TermsOut(Schema):
    due_date = fields.Date()
    state = fields.String()
    overdue_since = fields.Date(allow_none=True)
    surcharge_rule = fields.String()
    surcharge_rule_key = fields.String(allow_none=True)
    monthly_rule_key = fields.String(allow_none=True)
    next_month_no = fields.Integer()
    next_month_on = fields.Date(allow_none=True)
    caught_up_to = fields.Date(allow_none=True)


class HeadOut(Schema):
    head = fields.String()
    balance = fields.Integer()


class ArrearsEntryOut(Schema):
    """Dumps ``arrears.ArrearsEntry``."""

    id = fields.Integer(attribute="entry.id")
    head = fields.String()
    kind = fields.String(attribute="entry.kind")
    amount = fields.Integer(attribute="entry.amount")
    business_date = fields.Date(attribute="entry.business_date")
    source = fields.String(attribute="entry.source", allow_none=True)
    memo = fields.String(attribute="entry.memo", allow_none=True)
    rule_key = fields.String(allow_none=True, metadata={"description": "the rule row of a surcharge"})


class PostingOut(Schema):
    head = fields.String()
    month_no = fields.Integer()
    accrues_on = fields.Date()
    base = fields.Integer()
    amount = fields.Integer()
    skipped = fields.String(allow_none=True)
    rule_key = fields.String()
    rule_id = fields.Integer(allow_none=True)


class ArrearsOut(Schema):
    """Dumps ``arrears.ArrearsDetails``."""

    receivable_id = fields.Integer(attribute="view.receivable.id")
    jurisdiction = fields.String(attribute="view.receivable.jurisdiction")
    revenue_item = fields.String(attribute="view.receivable.revenue_item")
    status = fields.String(attribute="view.receivable.status")
    allocation_policy = fields.String(attribute="view.receivable.allocation_policy")
    business_date = fields.Date(attribute="view.business_date")
    terms = fields.Nested(TermsOut, attribute="view.terms", allow_none=True)
    balance = fields.Integer(attribute="view.balance")
    heads = fields.List(fields.Nested(HeadOut))
    entries = fields.List(fields.Nested(ArrearsEntryOut))
    postings = fields.List(fields.Nested(PostingOut), attribute="view.postings")
    holds = fields.List(fields.Nested(HoldOut))


class HotlistRequest(Schema):
    jurisdiction = Text(line=True, required=True, validate=JURISDICTION)
    business_date = fields.Date(validate=DATES, metadata={"description": "default: the current business date"})


class HotlistReportOut(Schema):
    jurisdiction = fields.String()
    business_date = fields.Date()
    listed = fields.List(fields.String())
    updated = fields.List(fields.String())
    removed = fields.List(fields.String())


def _id(text: str, name: str) -> int:
    """A path id: digits naming a row, else not found (never a 500 for what the database cannot hold)."""
    if not _ID.fullmatch(text):
        raise NotFound(f"no such {name.removesuffix('_id')}", field=name)
    return int(text)


# --- the business date and the steps ------------------------------------------------------------------------------


@blp.route("/business-date")
class BusinessDate(MethodView):
    @auth.staff(*READERS)
    @blp.response(200, BusinessDateOut)
    def get(self) -> dict[str, Any]:
        """The business date (영업일) the arrears steps have run for; kept apart from the wall clock."""
        with unit_of_work() as session:
            return {"business_date": arrears.business_date(session, runtime().clock)}

    @auth.staff(*OPERATORS)
    @blp.arguments(AdvanceRequest)
    @blp.response(200, StepReportOut)
    @blp.alt_response(409, description="business_date_backwards: the date is before the current one")
    def post(self, body: dict[str, Any]) -> arrears.StepReport:
        """Advance the business date and run the daily and month steps for it (missed days are caught up), then
        rebuild every district's hotlist."""
        rt = runtime()
        return steps.advance(chunk_transactions(), body["business_date"], auth.current_principal().actor(), rt.clock)


def _step(body: dict[str, Any], month: bool) -> arrears.StepReport:
    actor, day = auth.current_principal().actor(), body["business_date"]
    with unit_of_work(writes_changes=False) as session:
        arrears.check_business_date(session, day)
    step = arrears.run_month_step if month else arrears.run_daily_step
    return steps.run_step(chunk_transactions(), step, day, actor)


@blp.route("/arrears/steps/daily")
class DailyStep(MethodView):
    @auth.staff(*OPERATORS)
    @blp.arguments(StepRequest)
    @blp.response(200, StepReportOut)
    @blp.alt_response(422, description="after_business_date: the day is after the business date")
    def post(self, body: dict[str, Any]) -> arrears.StepReport:
        """Run the daily step (overdue marks, 가산금, 분납 defaults) for a business date; idempotent."""
        return _step(body, month=False)


@blp.route("/arrears/steps/month")
class MonthStep(MethodView):
    @auth.staff(*OPERATORS)
    @blp.arguments(StepRequest)
    @blp.response(200, StepReportOut)
    @blp.alt_response(422, description="after_business_date: the day is after the business date")
    def post(self, body: dict[str, Any]) -> arrears.StepReport:
        """Run the month step (중가산금, catching up missed months) for a business date; idempotent."""
        return _step(body, month=True)


@blp.route("/arrears/hotlist/refresh")
class HotlistRefresh(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(HotlistRequest)
    @blp.response(200, HotlistReportOut)
    @blp.alt_response(404, description="not_found: no such jurisdiction in the caller's scope")
    def post(self, body: dict[str, Any]) -> arrears.HotlistReport:
        """Rebuild a district's 번호판 영치 hotlist; changes reach its PDAs through the pull feed."""
        principal, code = auth.current_principal(), body["jurisdiction"]
        with unit_of_work(writes_changes=False) as session:
            if not auth.scope_of(session, principal).allows(code) or not arrears.jurisdiction_exists(session, code):
                raise NotFound("no such jurisdiction", field="jurisdiction")
            day = body.get("business_date") or arrears.business_date(session, runtime().clock)
        return steps.refresh_hotlist(chunk_transactions(), code, day, principal.actor())[0]


# --- a receivable's arrears and holds -------------------------------------------------------------------------------


@blp.route("/receivables/<receivable_id>/arrears")
class ReceivableArrears(MethodView):
    @auth.staff(*READERS)
    @blp.response(200, ArrearsOut)
    @blp.alt_response(404, description="not_found")
    def get(self, receivable_id: str) -> arrears.ArrearsDetails:
        """A receivable's arrears: its due-date clock, balance per charge head, entries (with the rule key of each
        surcharge), surcharge decisions and holds."""
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            return arrears.arrears_details(session, scope, _id(receivable_id, "receivable_id"))


@blp.route("/receivables/<receivable_id>/holds")
class ReceivableHolds(MethodView):
    @auth.staff(*READERS)
    @blp.response(200, HoldList)
    @blp.alt_response(404, description="not_found")
    def get(self, receivable_id: str) -> Items[arrears.HoldDetails]:
        """The receivable's holds: 분납 (with installments), 징수유예, 이의제기; ended ones with their reason."""
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            return Items(arrears.hold_details(session, scope, _id(receivable_id, "receivable_id")))

    @auth.staff(*DECIDERS)
    @blp.arguments(HoldRequest)
    @blp.response(201, HoldOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: not imposed, suspended, another relief, earlier default")
    def post(self, body: dict[str, Any], receivable_id: str) -> arrears.HoldDetails:
        """Grant 분납 (installments) or 징수유예 (until ``ends_on``): no 가산금 or 중가산금 accrues while in force."""
        with unit_of_work() as session:
            principal = auth.current_principal()
            scope = auth.scope_of(session, principal)
            rid = arrears.scoped_receivable(session, scope, _id(receivable_id, "receivable_id")).id
            cmd = arrears.GrantRelief(
                receivable_id=rid,
                kind=body["kind"],
                starts_on=body.get("starts_on") or arrears.business_date(session, runtime().clock),
                ends_on=body.get("ends_on"),
                installments=tuple(arrears.Installment(i["due_on"], i["amount"]) for i in body.get("installments", [])),
                basis=body["basis"],
            )
            return arrears.hold_of(session, scope, arrears.grant_relief(session, scope, cmd, principal.actor()))


@blp.route("/holds/<hold_id>/end")
class EndHold(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(EndHoldRequest)
    @blp.response(200, HoldOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: not a relief in force on that day")
    def post(self, body: dict[str, Any], hold_id: str) -> arrears.HoldDetails:
        """취소 of a 분납 or 징수유예: ``default`` (no new relief afterwards) or ``cancelled`` (changed circumstances);
        surcharges accrue again from ``on``."""
        with unit_of_work() as session:
            principal = auth.current_principal()
            scope = auth.scope_of(session, principal)
            day = body.get("on") or arrears.business_date(session, runtime().clock)
            hold = arrears.end_relief(session, scope, _id(hold_id, "hold_id"), day, body["reason"], principal.actor())
            return arrears.hold_of(session, scope, hold)
