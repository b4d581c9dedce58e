"""Back office, ``/api/v1``: staff sign-in, device administration and notices (PROTOCOL.md §1, §6)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from models import devices as device_ops
from models import ledger
from models import notices as notice_ops
from models.errors import NotFound
from models.payments import Payment
from models.users import authenticate
from server import auth
from server.api import schemas
from server.runtime import runtime, unit_of_work

blp = Blueprint("backoffice", __name__, url_prefix="/api/v1", description="Back office")


@blp.route("/auth/login")
class Login(MethodView):
    @auth.public
    @blp.arguments(schemas.LoginRequest)
    @blp.response(200, schemas.LoginResponse)
    @blp.alt_response(401, description="invalid_credentials")
    @blp.alt_response(429, description="rate_limited")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Staff sign-in: a token for an hour."""
        rt = runtime()
        now = rt.clock()
        with unit_of_work() as session:
            user = authenticate(session, body["login"], body["password"], now, rt.lockout)
            lifetime = timedelta(minutes=rt.config.staff_token_minutes)
            token = auth.issue_token(
                user_id=user.id,
                login=user.login,
                role=user.role,
                jurisdiction=user.jurisdiction,
                kind=auth.STAFF,
                lifetime=lifetime,
                now=now,
            )
            return {
                "access_token": token,
                "expires_in": int(lifetime.total_seconds()),
                "user": {"login": user.login, "role": user.role, "jurisdiction": user.jurisdiction},
            }


@blp.route("/devices")
class Devices(MethodView):
    @auth.staff("admin")
    @blp.response(200, schemas.DeviceList)
    def get(self) -> dict[str, Any]:
        """Devices in the caller's scope."""
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            stmt = scope.apply(select(device_ops.Device), device_ops.Device.jurisdiction)
            return {"items": list(session.scalars(stmt.order_by(device_ops.Device.created_at)))}

    @auth.staff("admin")
    @blp.arguments(schemas.RegisterDeviceRequest)
    @blp.response(201, schemas.RegisterDeviceResponse)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register a device; its one-use enrollment code (8 characters, 24 h) is shown only here."""
        rt = runtime()
        with unit_of_work() as session:
            principal = auth.current_principal()
            if not auth.scope_of(session, principal).allows(body["jurisdiction"]):
                raise NotFound("no such jurisdiction", field="jurisdiction")
            from models.jurisdictions import Jurisdiction

            if session.get(Jurisdiction, body["jurisdiction"]) is None:
                raise NotFound("no such jurisdiction", field="jurisdiction")
            device, code = device_ops.register_device(
                session,
                device_ops.RegisterDevice(body["jurisdiction"], body["label"]),
                principal.actor(),
                rt.clock(),
                timedelta(hours=rt.config.enrollment_code_hours),
            )
            return {"device_id": device.id, "enrollment_code": code}


def _scoped_device(session: Any, device_id: str, *, for_update: bool = False) -> device_ops.Device:
    device = device_ops.get_device(session, device_id, for_update=for_update)
    if not auth.scope_of(session, auth.current_principal()).allows(device.jurisdiction):
        raise NotFound("no such device")
    return device


@blp.route("/devices/<device_id>/enrollment-code")
class EnrollmentCode(MethodView):
    @auth.staff("admin")
    @blp.response(201, schemas.EnrollmentCodeResponse)
    def post(self, device_id: str) -> dict[str, Any]:
        """A fresh enrollment code for a registered device (re-enrolling gives it a new secret and QR key)."""
        rt = runtime()
        with unit_of_work() as session:
            device = _scoped_device(session, device_id, for_update=True)
            code = device_ops.new_enrollment_code(
                session, device, rt.clock(), timedelta(hours=rt.config.enrollment_code_hours)
            )
            return {"device_id": device.id, "enrollment_code": code, "expires_at": device.enrollment_expires_at}


@blp.route("/devices/<device_id>/revoke")
class Revoke(MethodView):
    @auth.staff("admin")
    @blp.arguments(schemas.RevokeRequest)
    @blp.response(200, schemas.RevokeResponse)
    def post(self, body: dict[str, Any], device_id: str) -> dict[str, Any]:
        """Revoke a lost or stolen device: every later request of it is refused and its unused numbers cancelled."""
        rt = runtime()
        with unit_of_work() as session:
            principal = auth.current_principal()
            _scoped_device(session, device_id)
            result = device_ops.revoke_device(session, device_id, body["reason"], principal.actor(), rt.clock())
            return {
                "device_id": result.device_id,
                "revoked_at": result.revoked_at,
                "cancelled_numbers": result.cancelled_numbers,
            }


STAFF_READERS = ("admin", "clerk", "approver", "auditor")
_NOTICE_NO = re.compile(r"[0-9]{15}")


@blp.route("/notices")
class Notices(MethodView):
    @auth.staff(*STAFF_READERS)
    @blp.arguments(schemas.NoticeQuery, location="query")
    @blp.response(200, schemas.NoticeList)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Notices in the caller's jurisdiction, newest first; ``next`` is the cursor of the following page."""
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            flt = notice_ops.NoticeFilter(
                notice_no=query.get("notice_no"),
                plate=query.get("plate"),
                status=query.get("status"),
                observed_from=query.get("from_"),
                observed_to=query.get("to"),
            )
            limit = query["limit"]
            after = int(query["after"]) if query.get("after") else None
            items = notice_ops.list_notices(session, scope, flt, limit + 1, after)
            has_more = len(items) > limit
            items = items[:limit]
            return {"items": items, "next": str(items[-1].id) if has_more and items else None}


@blp.route("/notices/<notice_no>")
class NoticeOne(MethodView):
    @auth.staff(*STAFF_READERS)
    @blp.response(200, schemas.NoticeDetail)
    def get(self, notice_no: str) -> dict[str, Any]:
        """One notice with its receivable, ledger entries, payments and timeline."""
        if not _NOTICE_NO.fullmatch(notice_no):
            # never a number (NUL, say, which PostgreSQL cannot even compare): the same answer as an unknown one
            raise NotFound("no such notice", field="notice_no")
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            notice = notice_ops.get_notice(session, scope, notice_no)
            out: dict[str, Any] = {
                name: getattr(notice, name) for name in schemas.NoticeOut().fields if name != "offender_name"
            }
            out["offender_name_masked"] = notice.offender_name_masked
            receivable = notice_ops.receivable_of(session, notice.id)
            out["receivable"] = None
            out["entries"] = []
            out["payments"] = []
            if receivable is not None:
                heads = {
                    h.id: h.kind
                    for h in session.scalars(
                        select(ledger.ChargeHead).where(ledger.ChargeHead.receivable_id == receivable.id)
                    )
                }
                out["receivable"] = {
                    "id": receivable.id,
                    "revenue_item": receivable.revenue_item,
                    "status": receivable.status,
                    "balance": ledger.balance(session, receivable.id),
                    "allocation_policy": receivable.allocation_policy,
                }
                out["entries"] = [
                    {
                        **{c: getattr(e, c) for c in schemas.EntryOut().fields if c != "charge_head"},
                        "charge_head": heads.get(e.charge_head_id),
                    }
                    for e in ledger.entries(session, receivable.id)
                ]
                out["payments"] = list(
                    session.scalars(select(Payment).where(Payment.receivable_id == receivable.id).order_by(Payment.id))
                )
            out["timeline"] = notice_ops.history(session, notice.id)
            return out
