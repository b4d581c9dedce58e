"""Device sync protocol v1, ``/sync/v1`` (PROTOCOL.md §0–§3): enrollment, sign-in, push, pull.

Refusal order (§0): 426 version, 413 size, 401 token, 403 revoked, 403 jurisdiction, 422/400 validation.
"""

from __future__ import annotations

from typing import Any

from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from models import devices as device_ops
from models.errors import Forbidden
from models.server_state import current_epoch
from models.users import authenticate
from server import auth
from server.errors import ApiError
from server.jsonbody import MalformedJson, strict_loads
from server.runtime import runtime, unit_of_work
from sync import changes
from sync import schemas as wire
from sync.push.engine import push

blp = Blueprint("sync", __name__, url_prefix="/sync/v1", description="Device sync protocol v1 (PROTOCOL.md)")


@blp.before_request
def _protocol_version_and_size() -> None:
    auth.check_protocol_version()
    if request.endpoint == "sync.Push" and request.method == "POST":
        limit = runtime().config.max_batch_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, "batch_too_large", f"a push batch may be at most {limit} bytes")
        raw = request.stream.read(limit + 1) if request.content_length is None else request.get_data(cache=True)
        if len(raw) > limit:
            raise ApiError(413, "batch_too_large", f"a push batch may be at most {limit} bytes")
        if request.content_length is None:
            request._cached_data = raw
        try:
            body = strict_loads(raw)
        except MalformedJson:
            return  # refused as malformed_json after the token check
        max_events = runtime().config.max_batch_events
        if isinstance(body, dict) and isinstance(body.get("events"), list) and len(body["events"]) > max_events:
            raise ApiError(413, "batch_too_large", f"a push batch may hold at most {max_events} events")


@blp.route("/enroll")
class Enroll(MethodView):
    @auth.public
    @blp.arguments(wire.EnrollRequest)
    @blp.response(201, wire.EnrollResponse)
    @blp.alt_response(409, description="enrollment_code_invalid")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Enroll a device with its one-use code; ``device_secret`` and ``qr_key`` are shown only here."""
        rt = runtime()
        now = rt.clock()
        with unit_of_work() as session:
            enrolled = device_ops.enroll(
                session, body["enrollment_code"], body["model"], body["app_version"], now, rt.cipher
            )
            return {
                "device_id": enrolled.device.id,
                "device_secret": enrolled.device_secret,
                "qr_key": enrolled.qr_key,
                "pay_base_url": rt.config.pay_base_url,
                "jurisdiction": enrolled.device.jurisdiction,
                "server_time": now,
                "epoch": current_epoch(session),
            }


@blp.route("/session")
class SignIn(MethodView):
    @auth.public
    @blp.arguments(wire.SessionRequest)
    @blp.response(200, wire.SessionResponse)
    @blp.alt_response(401, description="invalid_credentials")
    @blp.alt_response(403, description="device_revoked / forbidden_jurisdiction")
    @blp.alt_response(429, description="rate_limited")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """An officer signs in on a device: a token bound to (device, officer) for one shift."""
        rt = runtime()
        now = rt.clock()
        with unit_of_work() as session:
            device = device_ops.check_device_secret(session, body["device_id"], body["device_secret"])
            officer = authenticate(session, body["officer_login"], body["password"], now, rt.lockout)
            if officer.role != "officer" or officer.jurisdiction != device.jurisdiction:
                raise Forbidden("the officer is not of this device's jurisdiction", code="forbidden_jurisdiction")
            token = auth.issue_token(officer, auth.DEVICE, now, device_id=device.id)
            return {
                "access_token": token.access_token,
                "expires_in": token.expires_in,
                "officer": {"id": officer.id, "name": officer.name, "jurisdiction": officer.jurisdiction},
                "server_time": now,
                "epoch": current_epoch(session),
            }


@blp.route("/push")
class Push(MethodView):
    @auth.device
    @blp.doc(requestBody={"required": True, "content": {"application/json": {"schema": wire.PushRequest}}})
    @blp.response(200, wire.PushResponse)
    @blp.alt_response(413, description="batch_too_large")
    @blp.alt_response(422, description="validation_failed: the envelope is malformed, nothing applied")
    def post(self) -> dict[str, Any]:
        """Push a batch of events; every event gets its own fate, the envelope is all-or-nothing."""
        rt = runtime()
        principal = auth.current_principal()
        body = g.get("json_body")  # parsed (strictly) by the auth step
        assert principal.device_id is not None
        with unit_of_work() as session:
            return push(
                session,
                principal.device_id,
                body,
                now=rt.clock(),
                cipher=rt.cipher,
                settings=rt.sync_settings,
                pay_base_url=rt.config.pay_base_url,
                officer_id=principal.user_id,
            )


@blp.route("/changes")
class Changes(MethodView):
    @auth.device
    @blp.arguments(wire.ChangesQuery, location="query")
    @blp.response(200, wire.ChangesResponse)
    @blp.alt_response(409, description="reset_required")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """What changed in the device's scope since ``cursor``; tops up its number blocks in the same response."""
        rt = runtime()
        principal = auth.current_principal()
        assert principal.device_id is not None
        limit = min(query.get("limit") or rt.config.pull_default_limit, rt.config.pull_max_limit)
        with unit_of_work() as session:
            return changes.pull(session, principal.device_id, query.get("cursor"), limit, rt.clock(), rt.pull_settings)
