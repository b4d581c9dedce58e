"""Paying from the QR page (PROTOCOL.md §5, DESIGN.md §4); the workflows are ``services.payments``.

``POST /p/<notice_no>/pay`` re-checks the signed link, asks the gateway for a payment of the amount due today and
sends the phone there: the citizen needs the gateway's answer at once, so it is asked directly (not through the
outbox), but between two short transactions, never inside one. The gateway's server-to-server callback
(``POST /api/v1/payments/callbacks/<gateway>``) is only a hint: its signature is checked, then the status and amount
are asked back from the gateway, and only then does the payment post — once per (gateway, txn_id). A notice that
has not synced yet gets its payment in suspense.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, g, redirect, render_template, request
from flask.views import MethodView
from flask_smorest import Blueprint as ApiBlueprint
from marshmallow import Schema, ValidationError, fields, validate

from adapters.gateway import GatewayError, GatewayRefused, HttpGateway
from models import payments
from models.base import Actor
from server import auth, wiring
from server.errors import ApiError
from server.pages import error_page, verified_view
from server.runtime import runtime, unit_of_work
from services import payments as payment_service
from sync.schemas import AwareDateTime, StrictInteger, Text, flatten_errors

bp = Blueprint("pay", __name__)
api = ApiBlueprint("payments", __name__, url_prefix="/api/v1/payments", description="Payment gateway callbacks")


def gateway() -> HttpGateway:
    return wiring.gateway(runtime())


@bp.post("/p/<notice_no>/pay")
def start(notice_no: str) -> Response:
    """The citizen pressed 납부하기: create the payment at the gateway for the amount due today, then go there."""
    settings = wiring.pay_settings(runtime())
    asked = _what_to_pay(notice_no, settings)
    if isinstance(asked, Response):
        return asked
    amount, order_id, signed = asked
    try:  # no transaction is open while the gateway answers: the phone waits for it, the database does not
        created = payment_service.create_at_gateway(gateway(), settings, notice_no, amount, order_id, signed)
    except GatewayError:
        return error_page(503)
    with unit_of_work() as session:
        payment_service.record_started(session, settings, notice_no, amount, order_id, created)
    return redirect(created.redirect_url, code=303)  # type: ignore[return-value]


def _what_to_pay(notice_no: str, settings: payment_service.PaySettings) -> tuple[int, str, str] | Response:
    """In a short transaction of its own: the signed link checked, the amount due today and the order id to ask the
    gateway with (``(amount, order_id, signed query)``), or the page that refuses."""
    with unit_of_work() as session:
        view = verified_view(session, notice_no, request.form)
        if isinstance(view, Response):
            return view
        if view.paid or view.due_today <= 0:
            return error_page(409)
        order_id = payment_service.order_for(session, settings, notice_no, view.due_today, runtime().clock())
        return view.due_today, order_id, urlencode(view.signed)


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
        if payment is not None and payment.notice_no != view.notice_no:
            payment = None  # another notice's payment is not this page's to show (issue 13 §1.7)
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
            "pending or refund_queued (approved after we closed it: its refund at the gateway is queued in the outbox)"
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
        client, raw = _verified(gateway_name)
        body, txn_id = _callback_body()
        actor = Actor(address=request.remote_addr, label=f"gateway:{gateway_name}")
        try:
            result = payment_service.confirm_callback(
                unit_of_work, client, gateway_name, txn_id, body, raw.decode("utf-8", "replace"), actor, rt.clock
            )
        except GatewayRefused as exc:
            raise ApiError(404, "not_found", f"the gateway does not know this transaction ({exc.code})") from None
        except GatewayError:
            raise ApiError(503, "gateway_unavailable", "the gateway could not confirm the payment; retry") from None
        return {"result": result, "txn_id": txn_id}


def _verified(gateway_name: str) -> tuple[HttpGateway, bytes]:
    """The gateway the callback names (404 if not ours) and the raw body, its signature checked (401)."""
    if gateway_name != runtime().config.gateway_name:
        raise ApiError(404, "not_found", "no such payment gateway")
    raw, client = request.get_data(cache=True), gateway()
    if not client.verify_callback(raw, request.headers.get("X-Gateway-Signature")):
        raise ApiError(401, "signature_invalid", "the callback's signature does not verify")
    return client, raw


def _callback_body() -> tuple[dict[str, Any], str]:
    """The callback's JSON body and its transaction id, or 422."""
    body = g.get("json_body")
    if not isinstance(body, dict):
        raise ApiError(422, "validation_failed", "the body must be a JSON object", errors={"body": ["required"]})
    try:
        return body, str(CallbackBody().load(body)["txn_id"])
    except ValidationError as exc:
        errors = flatten_errors(exc.messages)
        raise ApiError(422, "validation_failed", "the callback is malformed", errors=errors) from None
