"""Back office, ``/api/v1/outbox``: the calls to outside systems waiting, delivered or given up (``models.outbox``).

- ``GET /api/v1/outbox?status=dead&target=registry&limit=&after=`` — rows the caller's jurisdiction may see, oldest
  first, keyset-paginated (``next``); the dead letters are ``status=dead``.
- ``GET /api/v1/outbox/<id>`` — one row, with who retried or cancelled it.
- ``POST /api/v1/outbox/<id>/retry`` ``{"reason"}`` — send a dead row again (pending now, attempts counted afresh).
- ``POST /api/v1/outbox/<id>/cancel`` ``{"reason"}`` — give a dead row up for good; what waited for it is undone
  (a case asked of the registry may be asked again, a batch's submission goes back to ``proposed``).

Admins and clerks: a district's rows are its cases', batches' and payments' (rows that name no district are seen by
city staff only); retry and cancel are audited (``outbox_actions``). Refusal order: 401/403 token and role, 422 body,
404 row (or outside the caller's scope), 409 ``invalid_transition`` (the row is not dead).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from models import outbox
from models.base import Actor, Scope
from models.errors import NotFound
from server import auth
from server.api.schemas import Page, keyset_page
from server.runtime import runtime, unit_of_work
from services import outbox as outbox_service
from sync.schemas import Text

blp = Blueprint(
    "outbox", __name__, url_prefix="/api/v1/outbox", description="Outbox: calls to outside systems and dead letters"
)

STAFF = ("admin", "clerk")
_ID = re.compile(r"[1-9][0-9]{0,17}")


class OutboxQuery(Schema):
    status = fields.String(validate=validate.OneOf(outbox.STATUSES))
    target = fields.String(validate=validate.OneOf(outbox.TARGETS))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    after = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$", error="must be a cursor from `next`"))


class ActionOut(Schema):
    action = fields.String(validate=validate.OneOf((outbox.RETRY, outbox.CANCEL)))
    at = fields.DateTime()
    actor_user_id = fields.Integer(allow_none=True)
    actor_label = fields.String(allow_none=True)
    reason = fields.String()


class OutboxOut(Schema):
    """Dumps ``Shown``: a ``models.outbox.OutboxRow``."""

    id = fields.Integer(attribute="row.id")
    target = fields.String(attribute="row.target", validate=validate.OneOf(outbox.TARGETS))
    operation = fields.String(attribute="row.operation")
    idempotency_key = fields.String(
        attribute="row.idempotency_key", metadata={"description": "sent as Idempotency-Key with every delivery"}
    )
    stream = fields.String(
        attribute="row.stream", allow_none=True, metadata={"description": "rows of a stream are delivered in order"}
    )
    jurisdiction = fields.String(attribute="row.jurisdiction", allow_none=True)
    status = fields.String(attribute="row.status", validate=validate.OneOf(outbox.STATUSES))
    attempts = fields.Integer(attribute="row.attempts")
    next_attempt_at = fields.DateTime(attribute="row.next_attempt_at")
    leased_by = fields.String(
        attribute="row.leased_by", allow_none=True, metadata={"description": "the worker delivering it now"}
    )
    leased_until = fields.DateTime(attribute="row.leased_until", allow_none=True)
    last_error = fields.String(attribute="row.last_error", allow_none=True)
    payload = fields.Dict(metadata={"description": "what is sent (sealed personal data left out)"})
    sealed = fields.Boolean(metadata={"description": "whether it carries sealed personal data"})
    answer = fields.Dict(attribute="row.answer", allow_none=True, metadata={"description": "what its answer did"})
    created_at = fields.DateTime(attribute="row.created_at")
    delivered_at = fields.DateTime(attribute="row.delivered_at", allow_none=True)


class OutboxDetail(OutboxOut):
    actions = fields.List(fields.Nested(ActionOut), metadata={"description": "who retried or cancelled it"})


class OutboxList(Schema):
    items = fields.List(fields.Nested(OutboxOut))
    next = fields.String(allow_none=True)


class OutboxReasonIn(Schema):
    reason = Text(required=True, validate=validate.Length(min=1, max=500))


@dataclass(frozen=True)
class Shown:
    """A row as the API shows it, with the people's actions on it (the detail only)."""

    row: outbox.OutboxRow
    actions: list[outbox.OutboxAction] = field(default_factory=list)

    @property
    def payload(self) -> dict[str, Any]:
        return {k: v for k, v in self.row.payload.items() if k != outbox.SEALED}

    @property
    def sealed(self) -> bool:
        return outbox.SEALED in self.row.payload


def _id(text: str) -> int:
    if not _ID.fullmatch(text):
        raise NotFound("no such delivery", field="outbox_id")
    return int(text)


def _shown(session: Session, row: outbox.OutboxRow) -> Shown:
    return Shown(row, outbox.actions_of(session, row.id))


PersonsAct = Callable[[Session, Scope, int, Actor, str, datetime], outbox.OutboxRow]


def _on_dead(outbox_id: str, reason: str, act: PersonsAct) -> Shown:
    """A person's retry or cancellation of a dead row in the caller's scope, in one unit of work."""
    key = _id(outbox_id)
    with unit_of_work() as session:
        principal = auth.current_principal()
        row = act(session, auth.scope_of(session, principal), key, principal.actor(), reason, runtime().clock())
        return _shown(session, row)


@blp.route("")
class OutboxCollection(MethodView):
    @auth.staff(*STAFF)
    @blp.arguments(OutboxQuery, location="query")
    @blp.response(200, OutboxList)
    def get(self, query: dict[str, Any]) -> Page[Shown]:
        """Calls to outside systems in the caller's jurisdiction, oldest first; ``status=dead``: the dead letters."""
        limit = query["limit"]
        after = int(query["after"]) if query.get("after") else None
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            rows = outbox.list_rows(
                session, scope, status=query.get("status"), target=query.get("target"), limit=limit + 1, after=after
            )
            return keyset_page([Shown(row) for row in rows], limit, lambda shown: shown.row.id)


@blp.route("/<outbox_id>")
class OutboxOne(MethodView):
    @auth.staff(*STAFF)
    @blp.response(200, OutboxDetail)
    @blp.alt_response(404, description="not_found")
    def get(self, outbox_id: str) -> Shown:
        """One call to an outside system: its attempts, last error, answer, and who retried or cancelled it."""
        key = _id(outbox_id)
        with unit_of_work() as session:
            row = outbox.get_row(session, auth.scope_of(session, auth.current_principal()), key)
            return _shown(session, row)


@blp.route("/<outbox_id>/retry")
class OutboxRetry(MethodView):
    @auth.staff(*STAFF)
    @blp.arguments(OutboxReasonIn)
    @blp.response(200, OutboxDetail)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: the delivery is not dead")
    def post(self, body: dict[str, Any], outbox_id: str) -> Shown:
        """Send a dead delivery again (pending at once, its attempts counted afresh); who and why are kept."""
        return _on_dead(outbox_id, body["reason"], outbox_service.retry)


@blp.route("/<outbox_id>/cancel")
class OutboxCancel(MethodView):
    @auth.staff(*STAFF)
    @blp.arguments(OutboxReasonIn)
    @blp.response(200, OutboxDetail)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: the delivery is not dead")
    def post(self, body: dict[str, Any], outbox_id: str) -> Shown:
        """Give a dead delivery up: its stream goes on, and what waited for it is undone (who and why are kept)."""
        return _on_dead(outbox_id, body["reason"], outbox_service.cancel)
