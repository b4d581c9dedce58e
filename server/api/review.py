"""Back office, ``/api/v1``: the review queue (DESIGN.md §3 step 1) and the hold queue of pushed events (§6).

Decisions on a notice carry the version the clerk decided on as ``If-Match: "<version>"`` (the ETag every decision
answers with): without it → 428 ``precondition_required``; another version → 412 ``precondition_failed``.
Refusal order: 401/403 token and role, 422/400 body, 404 notice (or outside the caller's scope), 428, 412, 409
``invalid_transition``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

import protocol
from models import notices as notice_ops
from models import review
from models.errors import NotFound
from server import auth
from server.api import schemas
from server.errors import ApiError
from server.runtime import runtime, unit_of_work
from sync.push.hold import ForceProcess, force_process
from sync.schemas import Text

blp = Blueprint("review", __name__, url_prefix="/api/v1", description="Review queue and hold queue")

READERS = ("admin", "clerk", "approver", "auditor")
DECIDERS = ("admin", "clerk")
_NOTICE_NO = re.compile(r"[0-9]{15}")
_ETAG = re.compile(r'^(?:W/)?"?([0-9]{1,9})"?$')

IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": True,
    "description": 'the notice\'s version as its ETag, e.g. `"2"` (from the review list or an earlier decision)',
    "schema": {"type": "string"},
}


# --- schemas (shape only) -------------------------------------------------------------------------------------------


class ReviewQuery(Schema):
    flag = fields.String(validate=validate.OneOf(protocol.FLAGS))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    after = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$", error="must be a cursor from `next`"))


class ReviewList(Schema):
    items = fields.List(fields.Nested(schemas.NoticeOut))
    next = fields.String(allow_none=True)


class DecisionRequest(Schema):
    reason = Text(required=True, validate=validate.Length(min=1, max=500))


class VehicleFix(Schema):
    plate = Text(line=True, required=True, validate=validate.Length(min=1, max=20))


class PlaceFix(Schema):
    address = Text(line=True, required=True, validate=validate.Length(min=1, max=200))


class CorrectionFields(Schema):
    amount = fields.Integer(strict=True, validate=validate.Range(min=1, max=100_000_000))
    violation_code = Text(line=True, validate=validate.Length(min=1, max=10))
    vehicle = fields.Nested(VehicleFix)
    place = fields.Nested(PlaceFix)


class CorrectRequest(DecisionRequest):
    changes = fields.Nested(CorrectionFields, required=True, data_key="fields")


class HeldQuery(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    after = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$", error="must be a cursor from `next`"))


class HeldGapOut(Schema):
    first = fields.Integer()
    last = fields.Integer()


class HeldOut(Schema):
    """Dumps ``review.HeldItem``."""

    event_id = fields.String(attribute="event.event_id")
    device_id = fields.String(attribute="device.id")
    device_label = fields.String(attribute="device.label")
    jurisdiction = fields.String(attribute="device.jurisdiction")
    generation = fields.Integer(attribute="event.generation")
    seq = fields.Integer(attribute="event.seq")
    type = fields.String(attribute="event.type")
    notice_no = fields.String(attribute="event.notice_no", allow_none=True)
    received_at = fields.DateTime(attribute="event.received_at")
    acked_seq = fields.Integer(allow_none=True)
    missing = fields.List(fields.Nested(HeldGapOut), attribute="gaps")
    missing_count = fields.Integer()


class HeldList(Schema):
    items = fields.List(fields.Nested(HeldOut))
    next = fields.String(allow_none=True)


class ProcessRequest(Schema):
    action = fields.String(required=True, validate=validate.OneOf((review.FORCE_APPLY, review.FORCE_REJECT)))
    reason = Text(required=True, validate=validate.Length(min=1, max=500))


class ForcedProblemOut(Schema):
    code = fields.String()
    field = fields.String()
    message = fields.String()


class ProcessResponse(Schema):
    event_id = fields.String()
    device_id = fields.String()
    seq = fields.Integer()
    type = fields.String()
    action = fields.String()
    reason = fields.String()
    decided_by = fields.Integer()
    decided_at = fields.DateTime()
    status = fields.String()
    notice_no = fields.String(allow_none=True)
    version = fields.Integer(allow_none=True)
    flags = fields.List(fields.String())
    problems = fields.List(fields.Nested(ForcedProblemOut))


# --- the review queue -----------------------------------------------------------------------------------------------


@blp.route("/review")
class ReviewQueue(MethodView):
    @auth.staff(*READERS)
    @blp.arguments(ReviewQuery, location="query")
    @blp.response(200, ReviewList)
    def get(self, query: dict[str, Any]) -> schemas.Page[notice_ops.Notice]:
        """Notices waiting in review in the caller's jurisdiction (optionally with one ``flag``), newest first."""
        limit = query["limit"]
        after = int(query["after"]) if query.get("after") else None
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            items = review.list_review(session, scope, query.get("flag"), limit + 1, after)
            return schemas.keyset_page(items, limit, lambda notice: notice.id)


def _expected_version() -> int | None:
    header = request.headers.get("If-Match")
    if header is None or not header.strip():
        return None
    found = _ETAG.match(header.strip())
    return int(found.group(1)) if found else -1  # unreadable: matches no version


def _decide(
    notice_no: str, action: str, reason: str, correction: notice_ops.CorrectNotice | None = None
) -> tuple[notice_ops.Notice, int, dict[str, str]]:
    if not _NOTICE_NO.fullmatch(notice_no):
        raise NotFound("no such notice", field="notice_no")
    rt = runtime()
    cmd = review.Decide(notice_no, action, reason, _expected_version(), correction)
    try:
        with unit_of_work() as session:
            principal = auth.current_principal()
            scope = auth.scope_of(session, principal)
            notice = review.decide(session, scope, cmd, principal.actor(), rt.clock())
    except review.PreconditionRequired as exc:
        raise ApiError(428, "precondition_required", exc.detail) from exc
    except review.StaleVersion as exc:
        raise ApiError(412, "precondition_failed", exc.detail) from exc
    return notice, 200, {"ETag": f'"{notice.version}"'}


@blp.route("/review/<notice_no>/confirm")
class Confirm(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(DecisionRequest)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, schemas.NoticeOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: the notice is not under review")
    @blp.alt_response(412, description="precondition_failed: If-Match names another version")
    @blp.alt_response(428, description="precondition_required: no If-Match")
    def post(self, body: dict[str, Any], notice_no: str) -> Any:
        """Confirm a flagged notice: it becomes ``issued`` (version + 1); the device sees it on its next pull."""
        return _decide(notice_no, review.CONFIRM, body["reason"])


@blp.route("/review/<notice_no>/cancel")
class Cancel(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(DecisionRequest)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, schemas.NoticeOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: not issued nor under review, or paid in part")
    @blp.alt_response(412, description="precondition_failed: If-Match names another version")
    @blp.alt_response(428, description="precondition_required: no If-Match")
    def post(self, body: dict[str, Any], notice_no: str) -> Any:
        """직권취소: cancel a notice with a reason; its receivable is reversed to zero (version + 1)."""
        return _decide(notice_no, review.CANCEL, body["reason"])


@blp.route("/review/<notice_no>/correct")
class Correct(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(CorrectRequest)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, schemas.NoticeOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition")
    @blp.alt_response(412, description="precondition_failed: If-Match names another version")
    @blp.alt_response(428, description="precondition_required: no If-Match")
    def post(self, body: dict[str, Any], notice_no: str) -> Any:
        """Correct a notice (amount, violation code, plate, place address); it is ``issued`` after (version + 1).
        A changed amount posts a ``correction`` ledger entry for the difference."""
        given = body["changes"]
        correction = notice_ops.CorrectNotice(
            reason=body["reason"],
            amount=given.get("amount"),
            plate=given["vehicle"]["plate"] if "vehicle" in given else None,
            violation_code=given.get("violation_code"),
            place_address=given["place"]["address"] if "place" in given else None,
        )
        return _decide(notice_no, review.CORRECT, body["reason"], correction)


# --- the hold queue -------------------------------------------------------------------------------------------------


@blp.route("/sync/held")
class Held(MethodView):
    @auth.staff(*READERS)
    @blp.arguments(HeldQuery, location="query")
    @blp.response(200, HeldList)
    def get(self, query: dict[str, Any]) -> schemas.Page[review.HeldItem]:
        """Pushed events held behind a gap in their device's ``seq``, oldest first, with the seqs missing before
        each; devices of the caller's jurisdiction."""
        limit = query["limit"]
        after = int(query["after"]) if query.get("after") else None
        with unit_of_work() as session:
            items = review.list_held(session, auth.scope_of(session, auth.current_principal()), limit + 1, after)
            return schemas.keyset_page(items, limit, lambda item: item.event.id)


def _is_event_id(value: str) -> bool:
    if len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


@blp.route("/sync/held/<event_id>/process")
class Process(MethodView):
    @auth.staff(*DECIDERS)
    @blp.arguments(ProcessRequest)
    @blp.response(200, ProcessResponse)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: the event is not held any more")
    def post(self, body: dict[str, Any], event_id: str) -> dict[str, Any]:
        """Force-process a held event: ``apply`` it now despite the gap, or ``reject`` it (``force_rejected``), with
        a reason. Its fate is then final: the device gets it when it pushes the event again, and a notice it
        created or changed reaches the device on its next pull."""
        if not _is_event_id(event_id):
            raise NotFound("no such held event", field="event_id")
        rt = runtime()
        with unit_of_work() as session:
            principal = auth.current_principal()
            scope = auth.scope_of(session, principal)
            return force_process(
                session,
                scope,
                ForceProcess(event_id, body["action"], body["reason"], principal.actor()),
                now=rt.clock(),
                cipher=rt.cipher,
                settings=rt.sync_settings,
                pay_base_url=rt.config.pay_base_url,
            )
