"""Back office, ``/api/v1``: the fine's legal life after sync (DESIGN.md §3 steps 2–4; ``models.fines``).

- ``/fines/<notice_no>``: the case (stage, deadlines, documents with the party masked) and its transitions — opinion,
  opinion decision, hardship reduction, 직권취소, receipt of the imposition notice, objection and its withdrawal,
  court referral, court decision. Each answers the case with its version as ``ETag``; a request may name the
  version it was decided on (``If-Match``): another one is 412 ``precondition_failed``. A transition the stage does
  not allow is 409 ``invalid_transition``.
- ``/owner-lookups``: the 차적조회 step for synced parking cases, queued in the outbox (the worker asks the registry
  and sends the 사전통지 as each answer comes).
- ``/imposition-batches``: 일괄 결정결의 — propose every eligible case and queue the batch's submission to e-approval
  in the outbox (the worker submits it); ``refresh`` queues a proposed batch's submission or asks e-approval for the
  decision and applies it (the clerk's explicit path; the callback ``/approvals/callbacks/<name>`` is the usual one).
- ``/court-referrals/overdue``: objected cases past their 14-day referral deadline.
- ``/notices/<notice_no>/timeline``: everything that happened to a notice, merged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from adapters.approval import ApprovalError, ApprovalRefused, ApprovalService, ApprovalUnavailable, CallbackRejected
from models import fines
from models import notices as notice_ops
from models.base import Actor, Scope
from models.errors import InvalidInput, NotFound
from models.fines.ports import Decision
from models.rules import HARDSHIP_GROUNDS
from protocol import seoul_date
from server import auth
from server.api.schemas import keyset_page
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
    """Dumps ``fines.CaseDetails``."""

    notice_no = fields.String(attribute="notice.notice_no")
    kind = fields.String(attribute="case.kind")
    jurisdiction = fields.String(attribute="case.jurisdiction")
    stage = fields.String(attribute="case.stage", validate=validate.OneOf(fines.STAGES))
    version = fields.Integer(attribute="case.version")
    notice_status = fields.String(attribute="notice.status")
    party = fields.Nested(PartyOut)
    amount = fields.Integer(metadata={"description": "the fine before 자진납부 (after any reduction)"})
    balance = fields.Integer()
    self_payment_amount = fields.Integer(allow_none=True)
    advance_noticed_on = fields.Date(attribute="case.advance_noticed_on", allow_none=True)
    opinion_deadline = fields.Date(attribute="case.opinion_deadline", allow_none=True)
    reduced_until = fields.Date(attribute="case.reduced_until", allow_none=True)
    batch_id = fields.Integer(attribute="case.batch_id", allow_none=True)
    imposed_on = fields.Date(attribute="case.imposed_on", allow_none=True)
    due_date = fields.Date(attribute="case.due_date", allow_none=True)
    due_rule = fields.String(attribute="case.due_rule", allow_none=True)
    imposition_received_on = fields.Date(attribute="case.imposition_received_on", allow_none=True)
    objection_deadline = fields.Date(allow_none=True)
    objected_on = fields.Date(attribute="case.objected_on", allow_none=True)
    referral_deadline = fields.Date(attribute="case.referral_deadline", allow_none=True)
    referred_on = fields.Date(attribute="case.referred_on", allow_none=True)
    court = fields.String(attribute="case.court", allow_none=True)
    court_outcome = fields.String(attribute="case.court_outcome", allow_none=True)
    court_amount = fields.Integer(attribute="case.court_amount", allow_none=True)
    decided_on = fields.Date(attribute="case.decided_on", allow_none=True)
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
    """Dumps ``fines.LookupRequests``."""

    queued = fields.Integer(attribute="count", metadata={"description": "how many lookups were queued"})
    notices = fields.List(fields.String(), attribute="queued", metadata={"description": "their notice numbers"})


class BatchIn(Schema):
    jurisdiction = Text(
        line=True, required=True, validate=validate.Regexp(r"^[0-9]{5}$", error="must be a 5-digit code")
    )


class BatchItemOut(Schema):
    """Dumps ``fines.BatchLine``."""

    notice_no = fields.String()
    amount = fields.Integer(attribute="item.amount")
    outcome = fields.String(attribute="item.outcome")
    skip_reason = fields.String(attribute="item.skip_reason", allow_none=True)


class BatchOut(Schema):
    """Dumps ``fines.BatchDetails``."""

    id = fields.Integer(attribute="batch.id")
    jurisdiction = fields.String(attribute="batch.jurisdiction")
    status = fields.String(
        attribute="batch.status",
        validate=validate.OneOf(fines.BATCH_STATUSES),
        metadata={"description": "submitting: its submission waits in the outbox for the worker"},
    )
    as_of = fields.Date(attribute="batch.as_of")
    count = fields.Integer(attribute="batch.count")
    amount_total = fields.Integer(attribute="batch.amount_total")
    reference_id = fields.String(attribute="batch.reference_id")
    submission_id = fields.String(attribute="batch.submission_id", allow_none=True)
    decided_by = fields.String(attribute="batch.decided_by", allow_none=True)
    decided_at = fields.DateTime(attribute="batch.decided_at", allow_none=True)
    imposed_count = fields.Integer(attribute="batch.imposed_count", allow_none=True)
    skipped_count = fields.Integer(attribute="batch.skipped_count", allow_none=True)
    items = fields.List(fields.Nested(BatchItemOut))


class ReferralQuery(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    after = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$", error="must be a cursor from `next`"))


class ReferralOut(Schema):
    """Dumps ``fines.OverdueReferral``."""

    notice_no = fields.String()
    objected_on = fields.Date(attribute="case.objected_on")
    referral_deadline = fields.Date(attribute="case.referral_deadline")
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
    """Dumps ``fines.NoticeTimeline``."""

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


@dataclass(frozen=True)
class OnCase:
    """The locked notice and case an action runs on, in its unit of work, with who acts and when."""

    session: Session
    notice: notice_ops.Notice
    case: fines.FineCase
    actor: Actor
    now: datetime


Operation = Callable[[OnCase], object]


def _on_case(notice_no: str, operation: Operation, *, check_version: bool = True) -> tuple[Any, int, dict[str, str]]:
    """Run ``operation`` on the locked notice and case in one unit of work; the case with its ETag."""
    _check_notice_no(notice_no)
    rt = runtime()
    expected = _expected_version()
    try:
        with unit_of_work() as session:
            principal = auth.current_principal()
            now = rt.clock()
            notice, case = fines.find_case(session, auth.scope_of(session, principal), notice_no, now)
            if check_version:
                fines.check_case_version(case, expected)
            operation(OnCase(session, notice, case, principal.actor(), now))
            details = fines.case_details(session, notice, case, rt.cipher)
    except fines.StaleCase as exc:
        raise ApiError(412, "precondition_failed", exc.detail) from exc
    return details, 200, {"ETag": f'"{case.version}"'}


def _jurisdiction(session: Session, scope: Scope, asked: str | None, home: str) -> str:
    jurisdiction = asked or home
    if not scope.allows(jurisdiction):
        raise NotFound("no such jurisdiction", field="jurisdiction")
    return jurisdiction


def _batch_id(value: str) -> int:
    if not _BATCH_ID.fullmatch(value):
        raise NotFound("no such imposition batch", field="batch_id")
    return int(value)


def _approval_error(exc: ApprovalError) -> ApiError:
    if isinstance(exc, ApprovalRefused):
        return ApiError(502, "approval_refused", f"e-approval refused the request ({exc.code})")
    return ApiError(503, "approval_unavailable", "e-approval could not be reached; try again")


def _batch(session: Session, batch_id: int, *, for_update: bool = False) -> fines.ImpositionBatch:
    """The batch in the caller's scope."""
    return fines.get_batch(session, auth.scope_of(session, auth.current_principal()), batch_id, for_update=for_update)


def _request_submission(session: Session, batch: fines.ImpositionBatch) -> None:
    """Queue the batch's submission to e-approval in the outbox (the worker submits it: ``submitting``)."""
    rt = runtime()
    callback_url = f"{rt.config.pay_base_url.rstrip('/')}/api/v1/approvals/callbacks/{rt.config.approval_name}"
    requested_by = auth.current_principal().login or "jingsu"
    fines.request_submission(session, batch, requested_by, callback_url, rt.clock())


def _refresh(batch_id: int) -> fines.BatchDetails:
    """Submit a proposed batch (through the outbox), or ask e-approval for the decision on a submitted one and apply
    it; a batch ``submitting`` waits for the worker's delivery as it is."""
    rt = runtime()
    with unit_of_work() as session:
        batch = _batch(session, batch_id, for_update=True)
        if batch.status == fines.BATCH_PROPOSED:
            _request_submission(session, batch)
        status, submission_id, name = batch.status, batch.submission_id, batch.approval_name
        if status != fines.BATCH_SUBMITTED or submission_id is None:
            return fines.batch_details(session, batch)
    service = rt.approval()
    if name != service.name:
        raise ApiError(409, "invalid_transition", f"the batch went to another e-approval service ({name})")
    try:  # no transaction is open while e-approval answers; the answer is applied in one of its own
        decision = service.status(submission_id)
    except ApprovalError as exc:
        raise _approval_error(exc) from exc
    with unit_of_work() as session:
        _batch(session, batch_id)  # in scope
        fines.apply_decision(session, decision, rt.cipher, rt.clock(), approval_name=service.name)
        return fines.batch_details(session, _batch(session, batch_id))


def _callback_decision(service: ApprovalService, approval_name: str) -> Decision:
    """The e-approval callback of this request, verified (its signature, then a status query)."""
    if approval_name != service.name:
        raise ApiError(404, "not_found", "no such e-approval service")
    try:
        return service.verify_callback(dict(request.headers.items()), request.get_data(cache=True))
    except CallbackRejected as exc:
        if exc.code in ("bad_signature", "stale_timestamp"):
            raise ApiError(401, "signature_invalid", f"the callback does not verify ({exc.code})") from None
        raise InvalidInput(f"the callback is not acted on ({exc.code})", field="body") from None
    except (ApprovalUnavailable, ApprovalRefused) as exc:
        raise _approval_error(exc) from exc


def _lookup_owners(body: dict[str, Any]) -> fines.LookupRequests:
    """차적조회 queued in the outbox for the caller's jurisdiction (or, for a city user who names none, every
    district); the worker asks the registry and sends each 사전통지 as its answer comes."""
    rt = runtime()
    with unit_of_work() as session:
        principal = auth.current_principal()
        scope = auth.scope_of(session, principal)
        asked = body.get("jurisdiction")
        jurisdiction: str | None = None  # a city user without one: every district
        if asked is not None or scope.jurisdictions is not None:
            jurisdiction = _jurisdiction(session, scope, asked, principal.jurisdiction)
        return fines.request_owner_lookups(
            session,
            rt.clock(),
            jurisdiction=jurisdiction,
            channel=body["channel"],
            limit=body["limit"],
            actor=principal.actor(),
        )


# --- cases ----------------------------------------------------------------------------------------------------------


@blp.route("/fines/<notice_no>")
class CaseOne(MethodView):
    @auth.staff(*READERS)
    @blp.response(200, CaseOut)
    @blp.alt_response(404, description="not_found")
    def get(self, notice_no: str) -> Any:
        """A notice's fine case: stage, deadlines, amounts and the documents sent (party masked); ETag = version."""
        return _on_case(notice_no, lambda on: None, check_version=False)


Step = Callable[[OnCase, dict[str, Any]], object]


@dataclass(frozen=True)
class CaseAction:
    """A transition of a case, ``POST /fines/<notice_no>/<path>``: answered with the case and its ETag."""

    endpoint: str
    path: str
    body: type[Schema]
    step: Step
    summary: str  # the OpenAPI summary
    conflict: str  # the 409's description
    refused: str | None = None  # the 422's description, if the operation can refuse the input


CASE_ACTIONS = (
    CaseAction(
        "Opinions",
        "opinions",
        OpinionIn,
        lambda on, b: fines.submit_opinion(
            on.session,
            on.case,
            on.notice,
            fines.SubmitOpinion(b["summary"], b["channel"], b["submitted_by"], b.get("speaker")),
            on.actor,
            on.now,
        ),
        "의견제출: record the party's opinion (written, oral with who spoke, electronic); it waits for a decision.",
        "invalid_transition: not in the 사전통지 stage, or its period is over",
    ),
    CaseAction(
        "OpinionDecision",
        "opinion-decision",
        OpinionDecisionIn,
        lambda on, b: fines.decide_opinion(
            on.session,
            on.case,
            on.notice,
            fines.DecideOpinion(b["decision"], b["reason"], b.get("amount")),
            on.actor,
            on.now,
        ),
        "Decide an opinion: ``reject`` (the case goes on), ``accept_reduce`` (to ``amount``) or ``accept_cancel``.",
        "invalid_transition: no opinion waits for a decision",
    ),
    CaseAction(
        "Hardship",
        "hardship",
        HardshipIn,
        lambda on, b: fines.claim_hardship(
            on.session,
            on.case,
            on.notice,
            fines.ClaimHardship(b["grounds"], b["reason"], b.get("rate")),
            on.actor,
            on.now,
        ),
        "감경 (시행령 §2의2): reduce the fine for a hardship ground (a ``reduction`` entry naming the rule row).",
        "invalid_transition: outside the 사전통지 stage or after its deadline",
        "reduction_refused: no ground, or other 과태료 in arrears",
    ),
    CaseAction(
        "CancelCase",
        "cancel",
        ReasonIn,
        lambda on, b: fines.cancel_case(on.session, on.case, on.notice, b["reason"], on.actor, on.now),
        "직권취소 before imposition: the case ends ``cancelled`` and the notice's receivable is reversed.",
        "invalid_transition: imposed already, ended, or paid in part",
    ),
    CaseAction(
        "ImpositionReceipt",
        "imposition-receipt",
        ReceiptIn,
        lambda on, b: fines.record_imposition_receipt(on.session, on.case, b["received_on"], on.actor, on.now),
        "The day the party received the 부과 고지서 (delivery record): the 60-day objection period counts from it.",
        "invalid_transition: not imposed",
    ),
    CaseAction(
        "Objection",
        "objection",
        ObjectionIn,
        lambda on, b: fines.file_objection(
            on.session, on.case, on.notice, b["filed_on"], b["reason"], on.actor, on.now
        ),
        "이의제기 (법 §20): the imposition loses its effect and the 14-day court referral clock starts.",
        "invalid_transition: not imposed",
        "objection_late: after the 60 days",
    ),
    CaseAction(
        "ObjectionWithdrawal",
        "objection-withdrawal",
        ReasonIn,
        lambda on, b: fines.withdraw_objection(on.session, on.case, on.notice, b["reason"], on.actor, on.now),
        "The party withdraws the objection before the court referral (법 §20③): the imposition stands again.",
        "invalid_transition: no objection, or already referred to court",
    ),
    CaseAction(
        "Referral",
        "referral",
        ReferralIn,
        lambda on, b: fines.refer_to_court(on.session, on.case, b["court"], b["reason"], on.actor, on.now),
        "법원 통보 (법 §21): the case goes to the court (a referral after the 14 days is recorded as late).",
        "invalid_transition: no objection to refer",
    ),
    CaseAction(
        "CourtDecision",
        "court-decision",
        CourtDecisionIn,
        lambda on, b: fines.record_court_decision(
            on.session,
            on.case,
            on.notice,
            fines.CourtDecision(b["outcome"], b["decided_on"], b["reason"], b.get("amount")),
            on.actor,
            on.now,
        ),
        "The court's decision: ``confirmed``/``reduced`` with the amount (collectible again) or ``dismissed``.",
        "invalid_transition: not referred to court",
    ),
)


def _register(action: CaseAction) -> None:
    """Route one case action: a MethodView named ``action.endpoint`` whose ``post`` runs its step on the case."""

    def post(self: MethodView, body: dict[str, Any], notice_no: str) -> Any:
        return _on_case(notice_no, lambda on: action.step(on, body))

    post.__doc__ = action.summary
    refusals = [blp.alt_response(422, description=action.refused)] if action.refused else []
    for decorate in [
        *refusals,
        blp.alt_response(409, description=action.conflict),
        blp.alt_response(404, description="not_found"),
        blp.response(200, CaseOut),
        blp.doc(parameters=[IF_MATCH]),
        blp.arguments(action.body),
        auth.staff(*DECIDERS),
    ]:
        post = decorate(post)
    view = type(action.endpoint, (MethodView,), {"post": post, "__module__": __name__, "__doc__": action.summary})
    blp.route(f"/fines/<notice_no>/{action.path}")(view)
    globals()[action.endpoint] = view


for _action in CASE_ACTIONS:
    _register(_action)


# --- owner lookup, imposition, referrals ----------------------------------------------------------------------------


@blp.route("/owner-lookups")
class OwnerLookups(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(LookupIn)
    @blp.response(202, LookupOut)
    @blp.alt_response(404, description="not_found: a jurisdiction outside the caller's")
    def post(self, body: dict[str, Any]) -> Any:
        """차적조회: queue the owner lookups of synced parking notices (the worker asks the vehicle registry and sends
        each owner the 사전통지, mail or electronic, as the answer comes; a failed one is in ``/outbox``)."""
        return _lookup_owners(body), 202


@blp.route("/imposition-batches")
class ImpositionBatches(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(BatchIn)
    @blp.response(201, BatchOut)
    @blp.alt_response(409, description="nothing_to_impose")
    def post(self, body: dict[str, Any]) -> Any:
        """일괄 결정결의: propose every eligible case of the jurisdiction as one decision and queue its submission
        to e-approval (``submitting``; the worker submits it); it is applied when approved (callback, or
        ``refresh``)."""
        with unit_of_work() as session:
            principal = auth.current_principal()
            scope = auth.scope_of(session, principal)
            jurisdiction = _jurisdiction(session, scope, body.get("jurisdiction"), principal.jurisdiction)
            batch = fines.propose_imposition(session, jurisdiction, principal.actor(), runtime().clock())
            _request_submission(session, batch)
            return fines.batch_details(session, batch), 201


@blp.route("/imposition-batches/<batch_id>")
class ImpositionBatchOne(MethodView):
    @auth.staff(*READERS)
    @blp.response(200, BatchOut)
    @blp.alt_response(404, description="not_found")
    def get(self, batch_id: str) -> Any:
        """One imposition batch with its cases and what became of each."""
        number = _batch_id(batch_id)
        with unit_of_work() as session:
            return fines.batch_details(session, _batch(session, number))


@blp.route("/imposition-batches/<batch_id>/refresh")
class ImpositionBatchRefresh(MethodView):
    @auth.staff(*DECIDERS)
    @blp.response(200, BatchOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(503, description="approval_unavailable")
    def post(self, batch_id: str) -> Any:
        """Queue the submission of a batch that is only proposed, or ask e-approval for the decision on a submitted
        one and apply it (approved: the cases still eligible are imposed in one transaction; rejected: the batch
        ends); a batch ``submitting`` is answered as it is."""
        return _refresh(_batch_id(batch_id))


@blp.route("/court-referrals/overdue")
class OverdueReferrals(MethodView):
    @auth.staff(*READERS)
    @blp.arguments(ReferralQuery, location="query")
    @blp.response(200, ReferralList)
    def get(self, query: dict[str, Any]) -> Any:
        """Objected cases not referred to court within their 14 days (법 §21①), in the caller's jurisdiction."""
        limit = query["limit"]
        after = int(query["after"]) if query.get("after") else None
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            today = seoul_date(runtime().clock())
            rows = fines.overdue_referral_list(session, scope, today, limit + 1, after)
            return keyset_page(rows, limit, lambda row: row.case.notice_id)


@blp.route("/notices/<notice_no>/timeline")
class Timeline(MethodView):
    @auth.staff(*READERS)
    @blp.response(200, NoticeTimelineOut)
    @blp.alt_response(404, description="not_found")
    def get(self, notice_no: str) -> Any:
        """Everything that happened to a notice, oldest first: issued, synced, reviewed, noticed, paid, imposed,
        objected, referred, decided, ledger entries … with who and when (personal data masked)."""
        _check_notice_no(notice_no)
        with unit_of_work() as session:
            return fines.notice_timeline(session, auth.scope_of(session, auth.current_principal()), notice_no)


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
        decision = _callback_decision(service, approval_name)
        with unit_of_work() as session:
            return fines.apply_callback(session, decision, rt.cipher, rt.clock(), approval_name=service.name)
