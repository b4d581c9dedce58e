"""Evidence photos, ``/sync/v1/attachments/<sha256>`` (PROTOCOL.md §4): a device sends the bytes of a photo under
its SHA-256 before it pushes the notice that names it.

- ``PUT`` with the raw bytes (``Content-Type: image/jpeg`` or ``image/png``, at most ``max_attachment_bytes``, 5 MiB
  by default) → 201 stored, or 200 when the server already had it (same body: hash, size, content type).
- ``HEAD`` → 200 the server has it, 404 it has not; no body either way.

Refusals, in PROTOCOL.md §0's order: 426 ``protocol_unsupported``, 413 ``payload_too_large``, 401
``token_invalid``, 403 ``device_revoked`` / ``forbidden_jurisdiction``, then 404 ``not_found`` for a path that is
not 64 lower-case hex digits (no such attachment can exist there: the same answer as any unknown resource, for
``HEAD`` too), 415 ``unsupported_media_type`` for another content type or bytes that are not a JPEG or PNG image,
422 ``hash_mismatch`` for bytes whose SHA-256 is not the path's.

The body is raw bytes, not JSON. The size check must come before the token check, so ``_version_and_size`` takes
the body off the request stream first (into ``g.attachment_body``); ``auth.device``'s JSON check then finds no body
left to parse, and an image is never refused as malformed JSON. Other routes are untouched.
"""

from __future__ import annotations

from flask import Response, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from models import evidence
from server import auth
from server.errors import ApiError
from server.runtime import runtime, unit_of_work

blp = Blueprint(
    "attachments", __name__, url_prefix="/sync/v1/attachments", description="Evidence photos (PROTOCOL.md §4)"
)

_BINARY = {"schema": {"type": "string", "format": "binary"}}


class AttachmentOut(Schema):
    """Dumps ``evidence.Stored``."""

    sha256 = fields.String(required=True, attribute="attachment.sha256")
    size = fields.Integer(required=True, attribute="attachment.size")
    content_type = fields.String(required=True, attribute="attachment.content_type")


@blp.before_request
def _version_and_size() -> None:
    auth.check_protocol_version()
    if request.method == "PUT":
        limit = runtime().config.max_attachment_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, "payload_too_large", f"a photo may be at most {limit} bytes")
        body = request.stream.read(limit + 1)
        if len(body) > limit:
            raise ApiError(413, "payload_too_large", f"a photo may be at most {limit} bytes")
        g.attachment_body = body


def _checked(sha256: str) -> str:
    if not evidence.is_sha256(sha256):
        raise ApiError(404, "not_found", "no such attachment: the path is a SHA-256 in 64 lower-case hex digits")
    return sha256


def _photo(sha256: str, device_id: str | None) -> evidence.StoreAttachment:
    """The request's photo as a command: a JPEG or PNG, as declared (else 415), under a well-formed path."""
    _checked(sha256)
    content: bytes = g.attachment_body
    declared = request.mimetype
    if declared not in evidence.CONTENT_TYPES:
        raise ApiError(415, "unsupported_media_type", "a photo is sent as image/jpeg or image/png")
    if evidence.sniff(content) != declared:
        raise ApiError(415, "unsupported_media_type", f"the body is not a {declared} image")
    assert device_id is not None
    return evidence.StoreAttachment(sha256, content, declared, device_id)


@blp.route("/<sha256>")
class Attachment(MethodView):
    @auth.device
    @blp.doc(requestBody={"required": True, "content": {evidence.JPEG: _BINARY, evidence.PNG: _BINARY}})
    @blp.response(201, AttachmentOut, description="stored")
    @blp.alt_response(200, schema=AttachmentOut, description="already stored")
    @blp.alt_response(404, description="not_found: the path is not a SHA-256 in lower-case hex")
    @blp.alt_response(413, description="payload_too_large")
    @blp.alt_response(415, description="unsupported_media_type: not image/jpeg or image/png")
    @blp.alt_response(422, description="hash_mismatch: the bytes' SHA-256 is not the path's")
    def put(self, sha256: str) -> tuple[evidence.Stored, int]:
        """Store an evidence photo under its SHA-256 (once: sending it again changes nothing)."""
        rt, principal = runtime(), auth.current_principal()
        cmd = _photo(sha256, principal.device_id)
        with unit_of_work() as session:
            stored = evidence.store_attachment(
                session, evidence.EvidenceDir(rt.config.evidence_dir), cmd, rt.clock(), principal.actor()
            )
        return stored, 201 if stored.created else 200

    @auth.device
    @blp.response(200, description="the server has this photo")
    @blp.alt_response(404, description="the server does not have this photo")
    def head(self, sha256: str) -> Response:
        """Does the server have this photo? (No body.)"""
        _checked(sha256)
        with unit_of_work() as session:
            found = evidence.is_stored(session, evidence.EvidenceDir(runtime().config.evidence_dir), sha256)
        if not found:
            raise ApiError(404, "not_found", "the server does not have this photo")
        return Response(status=200)
