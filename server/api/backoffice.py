"""Back office, ``/api/v1``: staff sign-in, device administration and notices (PROTOCOL.md §1, §6)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy.orm import Session

from models import devices as device_ops
from models import notices as notice_ops
from models.errors import NotFound
from models.jurisdictions import Jurisdiction
from models.payments import NoticeDetails, notice_details
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
    def post(self, body: dict[str, Any]) -> auth.Token:
        """Staff sign-in: a token for an hour."""
        rt = runtime()
        now = rt.clock()
        with unit_of_work() as session:
            user = authenticate(session, body["login"], body["password"], now, rt.lockout)
            return auth.issue_token(user, auth.STAFF, now)


def _check_jurisdiction(session: Session, code: str) -> None:
    """A jurisdiction the caller may see and that exists, else ``NotFound``."""
    if not auth.scope_of(session, auth.current_principal()).allows(code) or session.get(Jurisdiction, code) is None:
        raise NotFound("no such jurisdiction", field="jurisdiction")


@blp.route("/devices")
class Devices(MethodView):
    @auth.staff("admin")
    @blp.response(200, schemas.DeviceList)
    def get(self) -> schemas.Items[device_ops.Device]:
        """Devices in the caller's scope."""
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            return schemas.Items(device_ops.devices_in(session, scope))

    @auth.staff("admin")
    @blp.arguments(schemas.RegisterDeviceRequest)
    @blp.response(201, schemas.RegisterDeviceResponse)
    def post(self, body: dict[str, Any]) -> schemas.EnrollmentCode:
        """Register a device; its one-use enrollment code (8 characters, 24 h) is shown only here."""
        rt = runtime()
        with unit_of_work() as session:
            _check_jurisdiction(session, body["jurisdiction"])
            device, code = device_ops.register_device(
                session,
                device_ops.RegisterDevice(body["jurisdiction"], body["label"]),
                auth.current_principal().actor(),
                rt.clock(),
                timedelta(hours=rt.config.enrollment_code_hours),
            )
            return schemas.EnrollmentCode(device, code)


def _scoped_device(session: Any, device_id: str, *, for_update: bool = False) -> device_ops.Device:
    device = device_ops.get_device(session, device_id, for_update=for_update)
    if not auth.scope_of(session, auth.current_principal()).allows(device.jurisdiction):
        raise NotFound("no such device")
    return device


@blp.route("/devices/<device_id>/enrollment-code")
class EnrollmentCode(MethodView):
    @auth.staff("admin")
    @blp.response(201, schemas.EnrollmentCodeResponse)
    def post(self, device_id: str) -> schemas.EnrollmentCode:
        """A fresh enrollment code for a registered device (re-enrolling gives it a new secret and QR key)."""
        rt = runtime()
        with unit_of_work() as session:
            device = _scoped_device(session, device_id, for_update=True)
            code = device_ops.new_enrollment_code(
                session, device, rt.clock(), timedelta(hours=rt.config.enrollment_code_hours)
            )
            return schemas.EnrollmentCode(device, code)


@blp.route("/devices/<device_id>/revoke")
class Revoke(MethodView):
    @auth.staff("admin")
    @blp.arguments(schemas.RevokeRequest)
    @blp.response(200, schemas.RevokeResponse)
    def post(self, body: dict[str, Any], device_id: str) -> device_ops.Revocation:
        """Revoke a lost or stolen device: every later request of it is refused and its unused numbers cancelled."""
        rt = runtime()
        with unit_of_work() as session:
            principal = auth.current_principal()
            _scoped_device(session, device_id)
            return device_ops.revoke_device(session, device_id, body["reason"], principal.actor(), rt.clock())


STAFF_READERS = ("admin", "clerk", "approver", "auditor")
_NOTICE_NO = re.compile(r"[0-9]{15}")


@blp.route("/notices")
class Notices(MethodView):
    @auth.staff(*STAFF_READERS)
    @blp.arguments(schemas.NoticeQuery, location="query")
    @blp.response(200, schemas.NoticeList)
    def get(self, query: dict[str, Any]) -> schemas.Page[notice_ops.Notice]:
        """Notices in the caller's jurisdiction, newest first; ``next`` is the cursor of the following page."""
        flt = notice_ops.NoticeFilter(
            notice_no=query.get("notice_no"),
            plate=query.get("plate"),
            status=query.get("status"),
            observed_from=query.get("from_"),
            observed_to=query.get("to"),
        )
        limit, after = query["limit"], int(query["after"]) if query.get("after") else None
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            items = notice_ops.list_notices(session, scope, flt, limit + 1, after)
            return schemas.keyset_page(items, limit, lambda notice: notice.id)


@blp.route("/notices/<notice_no>")
class NoticeOne(MethodView):
    @auth.staff(*STAFF_READERS)
    @blp.response(200, schemas.NoticeDetail)
    def get(self, notice_no: str) -> NoticeDetails:
        """One notice with its receivable, ledger entries, payments and timeline."""
        if not _NOTICE_NO.fullmatch(notice_no):
            # never a number (NUL, say, which PostgreSQL cannot even compare): the same answer as an unknown one
            raise NotFound("no such notice", field="notice_no")
        with unit_of_work() as session:
            return notice_details(session, auth.scope_of(session, auth.current_principal()), notice_no)
