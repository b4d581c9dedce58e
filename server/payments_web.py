"""Paying from the QR page (PROTOCOL.md §5, DESIGN.md §4).

``POST /p/<notice_no>/pay`` re-checks the signed link, asks the gateway for a payment of the amount due today and
sends the phone there. The gateway's server-to-server callback (``POST /api/v1/payments/callbacks/<gateway>``) is
only a hint: its signature is checked, then the status and amount are asked back from the gateway, and only then
does the payment post — once per (gateway, txn_id). A notice that has not synced yet gets its payment in suspense.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, g, redirect, render_template, request
from flask.views import MethodView
from flask_smorest import Blueprint as ApiBlueprint
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy.orm import Session

import protocol
from adapters.gateway import GatewayError, GatewayPayment, GatewayRefused, HttpGateway, PaymentGateway
from models import payments
from models.base import Actor
from server import auth
from server.errors import ApiError
from server.pages import error_page, verified_view
from server.runtime import runtime, unit_of_work
from sync.schemas import AwareDateTime, StrictInteger, Text, flatten_errors

bp = Blueprint("pay", __name__)
api = ApiBlueprint("payments", __name__, url_prefix="/api/v1/payments", description="Payment gateway callbacks")


def gateway() -> HttpGateway:
    return runtime().gateway()


@bp.post("/p/<notice_no>/pay")
def start(notice_no: str) -> Response:
    """The citizen pressed 납부하기: create the payment at the gateway for the amount due today, then go there."""
    with unit_of_work() as session:
        view = verified_view(session, notice_no, request.form)
        if isinstance(view, Response):
            return view
        signed = view.signed
        if view.paid or view.due_today <= 0:
            return error_page(409)
        config = runtime().config
        # a second 납부하기 while this amount's payment is still open continues it: the gateway finds the order
        # again (same order id, same amount) and no second charge can start
        since = runtime().clock() - timedelta(hours=config.payment_abandon_hours)
        already = payments.open_payment_of(session, config.gateway_name, notice_no, view.due_today, since)
        order_id = already.order_id if already is not None and already.order_id else str(uuid.uuid4())
        return_url = f"{config.pay_base_url}/p/{notice_no}/done?{urlencode(signed)}"
        callback_url = f"{config.pay_base_url}/api/v1/payments/callbacks/{config.gateway_name}"
        try:
            created = gateway().create(
                order_id=order_id,
                amount=view.due_today,
                notice_no=notice_no,
                description=f"과태료 {notice_no}",
                return_url=return_url,
                callback_url=callback_url,
            )
        except GatewayError:
            return error_page(503)
        payments.open_payment(
            session,
            gateway=config.gateway_name,
            txn_id=created.txn_id,
            channel="qr",
            notice_no=notice_no,
            amount=view.due_today,
            order_id=order_id,
        )
    return redirect(created.redirect_url, code=303)  # type: ignore[return-value]


@bp.get("/p/<notice_no>/done")
def done(notice_no: str) -> Response:
    """Where the gateway sends the phone back: the payment's state as the ledger sees it."""
    txn_id = request.args.get("txn_id", "")
    with unit_of_work() as session:
        view = verified_view(session, notice_no, request.args)
        if isinstance(view, Response):
            return view
        signed = view.signed
        payment = payments.find_payment(session, runtime().config.gateway_name, txn_id) if txn_id else None
        html = render_template("pay_done.html", v=view, payment=payment, link=f"/p/{notice_no}?{urlencode(signed)}")
    return Response(html, mimetype="text/html")


class CallbackBody(Schema):
    """The gateway's notification (docs/gateway.md); only a hint — the status query decides."""

    txn_id = Text(line=True, required=True, validate=validate.Length(min=1, max=80))
    order_id = Text(line=True, validate=validate.Length(max=80))
    status = fields.String(required=True, validate=validate.OneOf(["ready", "approved", "cancelled"]))
    amount = StrictInteger(required=True, validate=validate.Range(min=0, max=10**12))
    approved_at = AwareDateTime(allow_none=True)
    notice_no = Text(line=True, allow_none=True, validate=validate.Length(max=40))
    method = fields.String(allow_none=True, validate=validate.OneOf(["card", "transfer"]))


class CallbackAnswer(Schema):
    result = fields.String(
        metadata={
            "description": "paid, suspense (paid, naming no known notice yet), already_paid, failed, reversed, "
            "pending, refunded_late (approved after we closed it: cancelled at the gateway) or approved_after_failed"
        }
    )
    txn_id = fields.String()


@api.route("/callbacks/<gateway_name>")
class GatewayCallback(MethodView):
    @auth.public
    @api.doc(
        requestBody={
            "required": True,
            "content": {"application/json": {"schema": CallbackBody}},
            "description": "the gateway's signed notification (header X-Gateway-Signature)",
        }
    )
    @api.response(200, CallbackAnswer)
    @api.alt_response(401, description="signature_invalid")
    @api.alt_response(404, description="not_found: unknown gateway")
    def post(self, gateway_name: str) -> dict[str, Any]:
        """Server-to-server notification from the payment gateway; verified with the gateway before posting."""
        rt = runtime()
        if gateway_name != rt.config.gateway_name:
            raise ApiError(404, "not_found", "no such payment gateway")
        raw = request.get_data(cache=True)
        client = gateway()
        if not client.verify_callback(raw, request.headers.get("X-Gateway-Signature")):
            raise ApiError(401, "signature_invalid", "the callback's signature does not verify")
        body = g.get("json_body")
        if not isinstance(body, dict):
            raise ApiError(422, "validation_failed", "the body must be a JSON object", errors={"body": ["required"]})
        try:
            txn_id = CallbackBody().load(body)["txn_id"]
        except ValidationError as exc:
            errors = flatten_errors(exc.messages)
            raise ApiError(422, "validation_failed", "the callback is malformed", errors=errors) from None
        with unit_of_work() as session:  # kept even if the gateway cannot be asked now
            payments.record_event(session, gateway_name, txn_id, "callback", body, raw.decode("utf-8", "replace"))
            payments.note_pending(session, gateway_name, txn_id)  # heard of: pending until the gateway confirms
        try:
            confirmed = client.query(txn_id)  # the callback is a hint: the gateway's own answer decides
        except GatewayRefused as exc:
            raise ApiError(404, "not_found", f"the gateway does not know this transaction ({exc.code})") from None
        except GatewayError:
            raise ApiError(503, "gateway_unavailable", "the gateway could not confirm the payment; retry") from None
        with unit_of_work() as session:
            result = settle(
                session,
                gateway_name,
                confirmed,
                {"callback": body, "query": confirmed.as_dict()},
                Actor(address=request.remote_addr, label=f"gateway:{gateway_name}"),
                rt.clock(),
                client=client,
            )
        return {"result": result, "txn_id": txn_id}


def settle(
    session: Session,
    gateway_name: str,
    confirmed: GatewayPayment,
    raw: dict[str, Any],
    actor: Actor,
    now: datetime,
    *,
    abandon_before: datetime | None = None,
    client: PaymentGateway | None = None,
) -> str:
    """Act on the gateway's own answer about a transaction (kept first, as every status answer is): post an
    approved payment once (``paid``), fail a cancelled one never approved, reverse one cancelled after approval,
    and leave one still ``ready`` — unless it was started before ``abandon_before`` (the sweep's abandonment
    horizon): then it is closed ``failed`` (``abandoned``). A payment approved after it was closed is never posted
    onto the closed row: with ``client`` the approval is cancelled at the gateway at once (the money goes back to
    the citizen, whose notice is still payable: ``refunded_late``); without, or if the gateway cannot be reached,
    ``approved_after_failed`` (kept in ``payment_events``, for a clerk). Returns what happened."""
    txn_id = confirmed.txn_id
    payments.record_event(session, gateway_name, txn_id, "status_answer", confirmed.as_dict())
    if confirmed.status != "approved":
        if confirmed.status == "cancelled":
            if confirmed.approved_at is not None:  # cancelled after approval: a paid payment is reversed
                if payments.cancel_posted(session, gateway_name, txn_id, now, actor, now):
                    return "reversed"
            payments.fail_payment(session, gateway_name, txn_id, "cancelled")
            return "failed"
        payment = payments.find_payment(session, gateway_name, txn_id)
        if abandon_before is not None and payment is not None and payment.created_at < abandon_before:
            if payments.fail_payment(session, gateway_name, txn_id, "abandoned"):
                return "abandoned"
        return "pending"
    notice_no: str | None = confirmed.notice_no
    if notice_no is not None and protocol.parse_notice_no(notice_no) is None:
        notice_no = None
    assert confirmed.approved_at is not None
    try:
        result = payments.post_payment(
            session,
            payments.ReceivedPayment(
                gateway=gateway_name,
                txn_id=txn_id,
                channel=confirmed.method or "qr",  # card / transfer when the gateway says how
                notice_no=notice_no,
                amount=confirmed.amount,
                approved_at=confirmed.approved_at,
                raw=raw,
            ),
            actor,
            now,
        )
    except payments.BackwardMove:
        # approved after we had closed it as abandoned: the money is real and must go back, never be posted twice
        if client is not None:
            try:
                refunded = client.refund(txn_id)
            except GatewayError:
                return "approved_after_failed"
            payments.record_event(session, gateway_name, txn_id, "status_answer", refunded.as_dict())
            return "refunded_late"
        return "approved_after_failed"
    if not result.newly_posted:
        return "already_paid"
    return "paid" if result.notice is not None else "suspense"


@dataclass(frozen=True)
class SweepReport:
    asked: int
    outcomes: dict[str, int]
    unreachable: int

    def summary(self) -> str:
        done = ", ".join(f"{n} {what}" for what, n in sorted(self.outcomes.items())) or "nothing moved"
        return f"{self.asked} pending payments asked about: {done}; {self.unreachable} not answered"


def sweep_payments(
    session: Session,
    client: PaymentGateway,
    gateway_name: str,
    now: datetime,
    older_than: timedelta,
    abandon_after: timedelta | None = None,
) -> SweepReport:
    """Resolve payments left initiated or pending (the callback lost, the phone closed): ask the gateway about each
    one started more than ``older_than`` ago, and post, fail or leave it as the answer says; one the gateway still
    calls ``ready`` after ``abandon_after`` is closed ``failed`` (abandoned). The worker runs it every few minutes
    (job ``sweep-payments``); safe to repeat."""
    outcomes: dict[str, int] = {}
    unreachable = 0
    stale = payments.stale_pending(session, gateway_name, now - older_than)
    abandon_before = now - abandon_after if abandon_after is not None else None
    for payment in stale:
        try:
            confirmed = client.query(payment.txn_id)
        except GatewayError:
            unreachable += 1  # tried again on the next turn
            continue
        with session.begin_nested():
            result = settle(
                session,
                gateway_name,
                confirmed,
                {"sweep": confirmed.as_dict()},
                Actor.system(),
                now,
                abandon_before=abandon_before,
                client=client,
            )
        outcomes[result] = outcomes.get(result, 0) + 1
    return SweepReport(len(stale), outcomes, unreachable)
