"""Back office, ``/api/v1``: the fine's legal life after sync (DESIGN.md §3 steps 2–4; ``models.fines``).

- ``/fines/<notice_no>``: the case (stage, deadlines, documents with the party masked) and its transitions — opinion,
  opinion decision, hardship reduction, 직권취소, receipt of the imposition notice, objection and its withdrawal,
  court referral, court decision. Each answers the case with its version as ``ETag``; a request may name the
  version it was decided on (``If-Match``): another one is 412 ``precondition_failed``. A transition the stage does
  not allow is 409 ``invalid_transition``.
- ``/owner-lookups``: the 차적조회 step for synced parking cases, which also sends the 사전통지.
- ``/imposition-batches``: 일괄 결정결의 — propose every eligible case and submit the batch to e-approval; ``refresh``
  submits again or asks e-approval for the decision and applies it (the clerk's explicit path; the callback
  ``/approvals/callbacks/<name>`` is the usual one).
- ``/court-referrals/overdue``: objected cases past their 14-day referral deadline.
- ``/notices/<notice_no>/timeline``: everything that happened to a notice, merged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.approval import (
    ApprovalError,
    ApprovalRefused,
    ApprovalRequest,
    ApprovalUnavailable,
    CallbackRejected,
)
from adapters.registry import RegistryRefused, RegistryUnavailable
from models import fines, ledger
from models import notices as notice_ops
from models.base import Actor, Scope
from models.errors import InvalidInput, NotFound
from models.rules import HARDSHIP_GROUNDS
from protocol import seoul_date
from server import auth
from server.errors import ApiError
from server.runtime import runtime, unit_of_work
from sync.schemas import Text

blp = Blueprint("fines", __name__, url_prefix="/api/v1", description="Fine cases: 사전통지, 부과, 이의제기, 재판")

READERS = ("admin", "clerk", "approver", "auditor")
DECIDERS = ("admin", "clerk")
_NOTICE_NO = re.compile(r"[0-9]{15}")
_BATCH_ID = re.compile(r"[0-9]{1,18}")
_ETAG = re.compile(r'^(?:W/)?"?([0-9]{1,9})"?$')

IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": False,
    "description": 'the case\'s version as its ETag, e.g. `"3"`; another version is a 412',
    "schema": {"type": "string"},
}


# --- schemas (shape only) -------------------------------------------------------------------------------------------


class PartyOut(Schema):
    kind = fields.String(allow_none=True)
    name = fields.String(allow_none=True, metadata={"description": "masked (홍*동)"})
    identifier = fields.String(
        allow_none=True, metadata={"description": "주민등록번호 or 사업자등록번호, masked (900101-1******)"}
    )


class DocumentOut(Schema):
    kind = fields.String()
    channel = fields.String()
    issued_on = fields.Date()
    deadline = fields.Date(allow_none=True)
    addressee = fields.String(allow_none=True, attribute="addressee_masked")
    data = fields.Dict()


class CaseOut(Schema):
    notice_no = fields.String()
    kind = fields.String()
    jurisdiction = fields.String()
    stage = fields.String(validate=validate.OneOf(fines.STAGES))
    version = fields.Integer()
    notice_status = fields.String()
    party = fields.Nested(PartyOut)
    amount = fields.Integer(metadata={"description": "the fine before 자진납부 (after any reduction)"})
    balance = fields.Integer()
    self_payment_amount = fields.Integer(allow_none=True)
    advance_noticed_on = fields.Date(allow_none=True)
    opinion_deadline = fields.Date(allow_none=True)
    reduced_until = fields.Date(allow_none=True)
    batch_id = fields.Integer(allow_none=True)
    imposed_on = fields.Date(allow_none=True)
    due_date = fields.Date(allow_none=True)
    due_rule = fields.String(allow_none=True)
    imposition_received_on = fields.Date(allow_none=True)
    objection_deadline = fields.Date(allow_none=True)
    objected_on = fields.Date(allow_none=True)
    referral_deadline = fields.Date(allow_none=True)
    referred_on = fields.Date(allow_none=True)
    court = fields.String(allow_none=True)
    court_outcome = fields.String(allow_none=True)
    court_amount = fields.Integer(allow_none=True)
    decided_on = fields.Date(allow_none=True)
    documents = fields.List(fields.Nested(DocumentOut))
    advance_notice = fields.Dict(
        allow_none=True, metadata={"description": "the 사전통지's data (a person notice's: its printed slip)"}
    )


class ReasonIn(Schema):
    reason = Text(required=True, validate=validate.Length(min=1, max=500))


class OpinionIn(Schema):
    summary = Text(required=True, validate=validate.Length(min=1, max=2000))
    channel = fields.String(load_default="written", validate=validate.OneOf(("written", "oral", "electronic")))
    submitted_by = fields.String(load_default="citizen", validate=validate.OneOf(("citizen", "clerk")))
    speaker = Text(line=True, validate=validate.Length(min=1, max=40))


class OpinionDecisionIn(ReasonIn):
    decision = fields.String(required=True, validate=validate.OneOf(fines.OPINION_DECISIONS))
    amount = fields.Integer(strict=True, validate=validate.Range(min=1, max=100_000_000))


class HardshipIn(ReasonIn):
    grounds = fields.List(
        fields.String(validate=validate.OneOf(HARDSHIP_GROUNDS)), required=True, validate=validate.Length(min=1, max=5)
    )
    rate = fields.Decimal(places=4, validate=validate.Range(min=0, max=1, min_inclusive=False))


class ReceiptIn(Schema):
    received_on = fields.Date(required=True)


class ObjectionIn(ReasonIn):
    filed_on = fields.Date(required=True)


class ReferralIn(ReasonIn):
    court = Text(line=True, required=True, validate=validate.Length(min=1, max=80))


class CourtDecisionIn(ReasonIn):
    outcome = fields.String(required=True, validate=validate.OneOf(fines.COURT_OUTCOMES))
    decided_on = fields.Date(required=True)
    amount = fields.Integer(strict=True, validate=validate.Range(min=1, max=100_000_000))


class LookupIn(Schema):
    jurisdiction = Text(line=True, validate=validate.Regexp(r"^[0-9]{5}$", error="must be a 5-digit code"))
    channel = fields.String(required=True, validate=validate.OneOf(fines.CHANNELS))
    limit = fields.Integer(load_default=200, validate=validate.Range(min=1, max=1000))


class LookupOut(Schema):
    looked_up = fields.Integer()
    noticed = fields.List(fields.String())
    not_registered = fields.List(fields.String())


class BatchIn(Schema):
    jurisdiction = Text(
        line=True, required=True, validate=validate.Regexp(r"^[0-9]{5}$", error="must be a 5-digit code")
    )


class BatchItemOut(Schema):
    notice_no = fields.String()
    amount = fields.Integer()
    outcome = fields.String()
    skip_reason = fields.String(allow_none=True)


class BatchOut(Schema):
    id = fields.Integer()
    jurisdiction = fields.String()
    status = fields.String()
    as_of = fields.Date()
    count = fields.Integer()
    amount_total = fields.Integer()
    reference_id = fields.String()
    submission_id = fields.String(allow_none=True)
    decided_by = fields.String(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    imposed_count = fields.Integer(allow_none=True)
    skipped_count = fields.Integer(allow_none=True)
    items = fields.List(fields.Nested(BatchItemOut))


class ReferralQuery(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    after = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$", error="must be a cursor from `next`"))


class ReferralOut(Schema):
    notice_no = fields.String()
    objected_on = fields.Date()
    referral_deadline = fields.Date()
    days_late = fields.Integer()


class ReferralList(Schema):
    items = fields.List(fields.Nested(ReferralOut))
    next = fields.String(allow_none=True)


class FineTimelineEntryOut(Schema):
    what = fields.String()
    at = fields.DateTime()
    source = fields.String(metadata={"description": "notice, case, arrears or ledger"})
    stage = fields.String(allow_none=True)
    actor_user_id = fields.Integer(allow_none=True)
    actor_device_id = fields.String(allow_none=True)
    actor_label = fields.String(allow_none=True)
    detail = fields.Dict(allow_none=True)


class NoticeTimelineOut(Schema):
    notice_no = fields.String()
    stage = fields.String(allow_none=True)
    items = fields.List(fields.Nested(FineTimelineEntryOut))


class ApprovalCallbackAnswer(Schema):
    result = fields.String(metadata={"description": "applied, rejected, pending, ignored or already_applied"})
    batch_id = fields.Integer(allow_none=True)


# --- helpers --------------------------------------------------------------------------------------------------------


def _expected_version() -> int | None:
    header = request.headers.get("If-Match")
    if header is None or not header.strip():
        return None
    found = _ETAG.match(header.strip())
    return int(found.group(1)) if found else -1


def _check_notice_no(notice_no: str) -> None:
    if not _NOTICE_NO.fullmatch(notice_no):
        raise NotFound("no such notice", field="notice_no")


def case_view(session: Session, notice: notice_ops.Notice, case: fines.FineCase) -> dict[str, Any]:
    receivable = notice_ops.receivable_of(session, notice.id)
    deadline = fines.objection_deadline(session, case)
    return {
        "notice_no": notice.notice_no,
        "kind": case.kind,
        "jurisdiction": case.jurisdiction,
        "stage": case.stage,
        "version": case.version,
        "notice_status": notice.status,
        "party": {
            "kind": case.party_kind,
            "name": case.party_name_masked or notice.offender_name_masked,
            "identifier": fines.party_identifier_masked(case, notice, runtime().cipher),
        },
        "amount": fines.fine_amount(case, notice),
        "balance": ledger.balance(session, receivable.id) if receivable is not None else 0,
        "self_payment_amount": case.self_payment_amount
        if case.self_payment_amount is not None
        else notice.reduced_amount,
        "advance_noticed_on": case.advance_noticed_on,
        "opinion_deadline": case.opinion_deadline,
        "reduced_until": case.reduced_until,
        "batch_id": case.batch_id,
        "imposed_on": case.imposed_on,
        "due_date": case.due_date,
        "due_rule": case.due_rule,
        "imposition_received_on": case.imposition_received_on,
        "objection_deadline": deadline.day if deadline else None,
        "objected_on": case.objected_on,
        "referral_deadline": case.referral_deadline,
        "referred_on": case.referred_on,
        "court": case.court,
        "court_outcome": case.court_outcome,
        "court_amount": case.court_amount,
        "decided_on": case.decided_on,
        "documents": fines.documents(session, case.notice_id),
        "advance_notice": fines.advance_notice_data(session, case, notice)
        if case.stage != fines.SYNCED and (case.advance_noticed_on is not None or case.kind == "person")
        else None,
    }


Operation = Callable[[Session, notice_ops.Notice, fines.FineCase, Actor, datetime], Any]


def _on_case(notice_no: str, operation: Operation, *, check_version: bool = True) -> tuple[dict[str, Any], int, dict]:
    """Run ``operation`` on the locked notice and case in one unit of work; the case with its ETag."""
    _check_notice_no(notice_no)
    rt = runtime()
    expected = _expected_version()
    try:
        with unit_of_work() as session:
            principal = auth.current_principal()
            scope = auth.scope_of(session, principal)
            now = rt.clock()
            notice, case = fines.find_case(session, scope, notice_no, now)
            if check_version:
                fines.check_case_version(case, expected)
            operation(session, notice, case, principal.actor(), now)
            out = case_view(session, notice, case)
    except fines.StaleCase as exc:
        raise ApiError(412, "precondition_failed", exc.detail) from exc
    return out, 200, {"ETag": f'"{out["version"]}"'}


def _jurisdiction(session: Session, scope: Scope, asked: str | None, home: str) -> str:
    jurisdiction = asked or home
    if not scope.allows(jurisdiction):
        raise NotFound("no such jurisdiction", field="jurisdiction")
    return jurisdiction


def _batch_view(session: Session, batch: fines.ImpositionBatch) -> dict[str, Any]:
    return {
        **{
            name: getattr(batch, name)
            for name in (
                "id",
                "jurisdiction",
                "status",
                "as_of",
                "count",
                "amount_total",
                "reference_id",
                "submission_id",
                "decided_by",
                "decided_at",
                "imposed_count",
                "skipped_count",
            )
        },
        "items": [
            {"notice_no": no, "amount": item.amount, "outcome": item.outcome, "skip_reason": item.skip_reason}
            for item, no in fines.batch_items(session, batch.id)
        ],
    }


def _batch_id(value: str) -> int:
    if not _BATCH_ID.fullmatch(value):
        raise NotFound("no such imposition batch", field="batch_id")
    return int(value)


def _approval_error(exc: ApprovalError) -> ApiError:
    if isinstance(exc, ApprovalRefused):
        return ApiError(502, "approval_refused", f"e-approval refused the request ({exc.code})")
    return ApiError(503, "approval_unavailable", "e-approval could not be reached; try again")


def _submit(batch_id: int) -> dict[str, Any]:
    """Submit a proposed batch to e-approval (idempotent by its reference id) and mark it submitted."""
    rt = runtime()
    service = rt.approval()
    with unit_of_work() as session:
        scope = auth.scope_of(session, auth.current_principal())
        batch = fines.get_batch(session, scope, batch_id)
        doc = fines.batch_document(session, batch)
    callback_url = f"{rt.config.pay_base_url.rstrip('/')}/api/v1/approvals/callbacks/{service.name}"
    try:
        submission_id = service.submit(
            ApprovalRequest(
                title=doc.title,
                document_type=doc.document_type,
                reference_id=doc.reference_id,
                amount_total=doc.amount_total,
                count=doc.count,
                requested_by=auth.current_principal().login or "jingsu",
                callback_url=callback_url,
            )
        )
    except ApprovalError as exc:
        raise _approval_error(exc) from exc
    with unit_of_work() as session:
        scope = auth.scope_of(session, auth.current_principal())
        batch = fines.get_batch(session, scope, batch_id, for_update=True)
        fines.mark_submitted(session, batch, service.name, submission_id, rt.clock())
        return _batch_view(session, batch)


# --- cases ----------------------------------------------------------------------------------------------------------


@blp.route("/fines/<notice_no>")
class CaseOne(MethodView):
    @auth.staff(*READERS)
    @blp.response(200, CaseOut)
    @blp.alt_response(404, description="not_found")
    def get(self, notice_no: str) -> Any:
        """A notice's fine case: stage, deadlines, amounts and the documents sent (party masked); ETag = version."""
        return _on_case(notice_no, lambda *args: None, check_version=False)


@blp.route("/fines/<notice_no>/opinions")
class Opinions(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(OpinionIn)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, CaseOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: not in the 사전통지 stage, or its period is over")
    def post(self, body: dict[str, Any], notice_no: str) -> Any:
        """의견제출: record the party's opinion (written, oral with who spoke, electronic); it waits for a decision."""
        cmd = fines.SubmitOpinion(body["summary"], body["channel"], body["submitted_by"], body.get("speaker"))
        return _on_case(notice_no, lambda s, n, c, a, now: fines.submit_opinion(s, c, n, cmd, a, now))


@blp.route("/fines/<notice_no>/opinion-decision")
class OpinionDecision(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(OpinionDecisionIn)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, CaseOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: no opinion waits for a decision")
    def post(self, body: dict[str, Any], notice_no: str) -> Any:
        """Decide an opinion: ``reject`` (the case goes on), ``accept_reduce`` (to ``amount``) or ``accept_cancel``."""
        cmd = fines.DecideOpinion(body["decision"], body["reason"], body.get("amount"))
        return _on_case(notice_no, lambda s, n, c, a, now: fines.decide_opinion(s, c, n, cmd, a, now))


@blp.route("/fines/<notice_no>/hardship")
class Hardship(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(HardshipIn)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, CaseOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: outside the 사전통지 stage or after its deadline")
    @blp.alt_response(422, description="reduction_refused: no ground, or other 과태료 in arrears")
    def post(self, body: dict[str, Any], notice_no: str) -> Any:
        """감경 (시행령 §2의2): reduce the fine for a hardship ground (a ``reduction`` entry naming the rule row)."""
        cmd = fines.ClaimHardship(body["grounds"], body["reason"], body.get("rate"))
        return _on_case(notice_no, lambda s, n, c, a, now: fines.claim_hardship(s, c, n, cmd, a, now))


@blp.route("/fines/<notice_no>/cancel")
class CancelCase(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(ReasonIn)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, CaseOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: imposed already, ended, or paid in part")
    def post(self, body: dict[str, Any], notice_no: str) -> Any:
        """직권취소 before imposition: the case ends ``cancelled`` and the notice's receivable is reversed."""
        return _on_case(notice_no, lambda s, n, c, a, now: fines.cancel_case(s, c, n, body["reason"], a, now))


@blp.route("/fines/<notice_no>/imposition-receipt")
class ImpositionReceipt(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(ReceiptIn)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, CaseOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: not imposed")
    def post(self, body: dict[str, Any], notice_no: str) -> Any:
        """The day the party received the 부과 고지서 (delivery record): the 60-day objection period counts from it."""
        return _on_case(
            notice_no, lambda s, n, c, a, now: fines.record_imposition_receipt(s, c, body["received_on"], a, now)
        )


@blp.route("/fines/<notice_no>/objection")
class Objection(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(ObjectionIn)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, CaseOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: not imposed")
    @blp.alt_response(422, description="objection_late: after the 60 days")
    def post(self, body: dict[str, Any], notice_no: str) -> Any:
        """이의제기 (법 §20): the imposition loses its effect and the 14-day court referral clock starts."""
        return _on_case(
            notice_no,
            lambda s, n, c, a, now: fines.file_objection(s, c, n, body["filed_on"], body["reason"], a, now),
        )


@blp.route("/fines/<notice_no>/objection-withdrawal")
class ObjectionWithdrawal(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(ReasonIn)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, CaseOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: no objection, or already referred to court")
    def post(self, body: dict[str, Any], notice_no: str) -> Any:
        """The party withdraws the objection before the court referral (법 §20③): the imposition stands again."""
        return _on_case(notice_no, lambda s, n, c, a, now: fines.withdraw_objection(s, c, n, body["reason"], a, now))


@blp.route("/fines/<notice_no>/referral")
class Referral(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(ReferralIn)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, CaseOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: no objection to refer")
    def post(self, body: dict[str, Any], notice_no: str) -> Any:
        """법원 통보 (법 §21): the case goes to the court (a referral after the 14 days is recorded as late)."""
        return _on_case(
            notice_no, lambda s, n, c, a, now: fines.refer_to_court(s, c, body["court"], body["reason"], a, now)
        )


@blp.route("/fines/<notice_no>/court-decision")
class CourtDecision(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(CourtDecisionIn)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, CaseOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: not referred to court")
    def post(self, body: dict[str, Any], notice_no: str) -> Any:
        """The court's decision: ``confirmed``/``reduced`` with the amount (collectible again) or ``dismissed``."""
        cmd = fines.CourtDecision(body["outcome"], body["decided_on"], body["reason"], body.get("amount"))
        return _on_case(notice_no, lambda s, n, c, a, now: fines.record_court_decision(s, c, n, cmd, a, now))


# --- owner lookup, imposition, referrals ----------------------------------------------------------------------------


@blp.route("/owner-lookups")
class OwnerLookups(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(LookupIn)
    @blp.response(200, LookupOut)
    @blp.alt_response(503, description="registry_unavailable")
    def post(self, body: dict[str, Any]) -> Any:
        """차적조회: find the owners of synced parking notices and send each the 사전통지 (mail or electronic)."""
        rt = runtime()
        registry = rt.registry()
        try:
            with unit_of_work() as session:
                principal = auth.current_principal()
                scope = auth.scope_of(session, principal)
                asked = body.get("jurisdiction")
                jurisdiction: str | None = None  # a city user without one: every district
                if asked is not None or scope.jurisdictions is not None:
                    jurisdiction = _jurisdiction(session, scope, asked, principal.jurisdiction)
                report = fines.lookup_owners(
                    session,
                    registry,
                    rt.cipher,
                    rt.clock(),
                    jurisdiction=jurisdiction,
                    channel=body["channel"],
                    limit=body["limit"],
                    actor=principal.actor(),
                )
                return report
        except RegistryUnavailable as exc:
            raise ApiError(503, "registry_unavailable", "the vehicle registry could not be reached; try again") from exc
        except RegistryRefused as exc:
            raise ApiError(502, "registry_refused", f"the vehicle registry refused the request ({exc.code})") from exc


@blp.route("/imposition-batches")
class ImpositionBatches(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(BatchIn)
    @blp.response(201, BatchOut)
    @blp.alt_response(409, description="nothing_to_impose")
    @blp.alt_response(503, description="approval_unavailable: proposed, not yet submitted (refresh to retry)")
    def post(self, body: dict[str, Any]) -> Any:
        """일괄 결정결의: propose every eligible case of the jurisdiction as one decision and submit it to
        e-approval; it is applied when approved (callback, or ``refresh``)."""
        rt = runtime()
        with unit_of_work() as session:
            principal = auth.current_principal()
            scope = auth.scope_of(session, principal)
            jurisdiction = _jurisdiction(session, scope, body.get("jurisdiction"), principal.jurisdiction)
            batch = fines.propose_imposition(session, jurisdiction, principal.actor(), rt.clock())
            batch_id = batch.id
        return _submit(batch_id), 201


@blp.route("/imposition-batches/<batch_id>")
class ImpositionBatchOne(MethodView):
    @auth.staff(*READERS)
    @blp.response(200, BatchOut)
    @blp.alt_response(404, description="not_found")
    def get(self, batch_id: str) -> Any:
        """One imposition batch with its cases and what became of each."""
        number = _batch_id(batch_id)
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            return _batch_view(session, fines.get_batch(session, scope, number))


@blp.route("/imposition-batches/<batch_id>/refresh")
class ImpositionBatchRefresh(MethodView):
    @auth.staff(*DECIDERS)
    @blp.response(200, BatchOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(503, description="approval_unavailable")
    def post(self, batch_id: str) -> Any:
        """Submit a batch that is only proposed, or ask e-approval for the decision on a submitted one and apply
        it (approved: the cases still eligible are imposed in one transaction; rejected: the batch ends)."""
        number = _batch_id(batch_id)
        rt = runtime()
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            batch = fines.get_batch(session, scope, number)
            status, submission_id, name = batch.status, batch.submission_id, batch.approval_name
        if status == fines.BATCH_PROPOSED:
            return _submit(number)
        if status != fines.BATCH_SUBMITTED or submission_id is None:
            with unit_of_work() as session:
                scope = auth.scope_of(session, auth.current_principal())
                return _batch_view(session, fines.get_batch(session, scope, number))
        service = rt.approval()
        if name != service.name:
            raise ApiError(409, "invalid_transition", f"the batch went to another e-approval service ({name})")
        try:
            decision = service.status(submission_id)
        except ApprovalError as exc:
            raise _approval_error(exc) from exc
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            fines.get_batch(session, scope, number)  # in scope
            fines.apply_decision(session, decision, rt.cipher, rt.clock(), approval_name=service.name)
            return _batch_view(session, fines.get_batch(session, scope, number))


@blp.route("/court-referrals/overdue")
class OverdueReferrals(MethodView):
    @auth.staff(*READERS)
    @blp.arguments(ReferralQuery, location="query")
    @blp.response(200, ReferralList)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Objected cases not referred to court within their 14 days (법 §21①), in the caller's jurisdiction."""
        rt = runtime()
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            today = seoul_date(rt.clock())
            limit = query["limit"]
            after = int(query["after"]) if query.get("after") else None
            rows = fines.overdue_referrals(session, scope, today, limit + 1, after)
            has_more = len(rows) > limit
            rows = rows[:limit]
            items = [
                {
                    "notice_no": no,
                    "objected_on": case.objected_on,
                    "referral_deadline": case.referral_deadline,
                    "days_late": (today - case.referral_deadline).days if case.referral_deadline else 0,
                }
                for case, no in rows
            ]
            return {"items": items, "next": str(rows[-1][0].notice_id) if has_more and rows else None}


@blp.route("/notices/<notice_no>/timeline")
class Timeline(MethodView):
    @auth.staff(*READERS)
    @blp.response(200, NoticeTimelineOut)
    @blp.alt_response(404, description="not_found")
    def get(self, notice_no: str) -> dict[str, Any]:
        """Everything that happened to a notice, oldest first: issued, synced, reviewed, noticed, paid, imposed,
        objected, referred, decided, ledger entries … with who and when (personal data masked)."""
        _check_notice_no(notice_no)
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            notice = notice_ops.get_notice(session, scope, notice_no)
            case = session.get(fines.FineCase, notice.id)
            return {
                "notice_no": notice.notice_no,
                "stage": case.stage if case is not None else None,
                "items": fines.timeline(session, notice),
            }


# --- the e-approval callback ----------------------------------------------------------------------------------------


@blp.route("/approvals/callbacks/<approval_name>")
class ApprovalCallback(MethodView):
    @auth.public
    @blp.response(200, ApprovalCallbackAnswer)
    @blp.alt_response(401, description="signature_invalid: bad signature or stale timestamp")
    @blp.alt_response(404, description="not_found: unknown e-approval service")
    @blp.alt_response(503, description="approval_unavailable: the decision could not be confirmed; retry")
    def post(self, approval_name: str) -> Any:
        """The e-approval service's signed callback: verified, confirmed by a status query, then applied once."""
        rt = runtime()
        service = rt.approval()
        if approval_name != service.name:
            raise ApiError(404, "not_found", "no such e-approval service")
        raw = request.get_data(cache=True)
        try:
            decision = service.verify_callback(dict(request.headers.items()), raw)
        except CallbackRejected as exc:
            if exc.code in ("bad_signature", "stale_timestamp"):
                raise ApiError(401, "signature_invalid", f"the callback does not verify ({exc.code})") from None
            raise InvalidInput(f"the callback is not acted on ({exc.code})", field="body") from None
        except (ApprovalUnavailable, ApprovalRefused) as exc:
            raise _approval_error(exc) from exc
        with unit_of_work() as session:
            before = session.scalar(
                select(fines.ImpositionBatch.status).where(
                    fines.ImpositionBatch.submission_id == decision.submission_id
                )
            )
            batch = fines.apply_decision(session, decision, rt.cipher, rt.clock(), approval_name=service.name)
            if batch is None:
                return {"result": "ignored", "batch_id": None}
            if before != fines.BATCH_SUBMITTED:
                return {"result": "already_applied", "batch_id": batch.id}
            result = {fines.BATCH_APPLIED: "applied", fines.BATCH_REJECTED: "rejected"}.get(batch.status, "pending")
            return {"result": result, "batch_id": batch.id}
