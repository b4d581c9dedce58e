"""Evidence photos from the device to the server (PROTOCOL.md §4), sent by ``pda sync`` before it pushes.

``pda issue --photo FILE`` keeps each photo as ``<home>/photos/<sha256>`` and names the hash in the notice's
``data.photos``. Before a push, every photo of the device's notices that the server is not yet known to have is
asked for (``HEAD``) and, when the server lacks it, sent (``PUT``), so that the notices arrive without
``photos_missing``. Each photo the server confirmed is written down at once (table ``photo_uploads``, created here on
first use), so a sync cut between photos goes on where it stopped; a photo sent whose answer was lost is found by the
next ``HEAD`` and not sent again.

A photo that cannot be sent (unreadable here, not a JPEG or PNG, larger than PROTOCOL.md's 5 MiB, or refused by the
server) is reported and the others go on; the notice then arrives flagged ``photos_missing`` and the photo is tried
again on every later sync. A refusal of the device itself (token, revocation: 401, 403, 426) stops the sync, as it
would stop the push; so does a server that cannot be reached (``Unreachable``).
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from pda_client.errors import Refused, Unreachable
from pda_client.store import Store
from pda_client.transport import Transport
from protocol import PROTOCOL_VERSION

MAX_PHOTO_BYTES = 5 * 1024 * 1024  # PROTOCOL.md §4
_MAGIC = (("image/jpeg", b"\xff\xd8\xff"), ("image/png", b"\x89PNG\r\n\x1a\n"))
_DEVICE_REFUSALS = (401, 403, 426)  # about the device or its token, not this photo

# Fault injection for tests: SIGKILL right after the server answered the first PUT, before the answer is written.
FAULT_KILL_AFTER_UPLOAD = "kill_after_upload"

_SCHEMA = "CREATE TABLE IF NOT EXISTS photo_uploads (sha256 TEXT PRIMARY KEY, confirmed_at TEXT NOT NULL)"


@dataclass(frozen=True)
class PhotoProblem:
    """A photo that was not sent this time, and why (``unreadable``, ``damaged``, ``not_an_image``, ``too_large``,
    or the server's problem code)."""

    sha256: str
    notice_no: str
    reason: str


Progress = Callable[[str, int, int], None]


def content_type(content: bytes) -> str | None:
    return next((kind for kind, magic in _MAGIC if content.startswith(magic)), None)


def photos_to_send(store: Store) -> list[tuple[str, str]]:
    """(sha256, notice_no) of every photo of this device's notices the server has not confirmed, oldest first."""
    store.conn.execute(_SCHEMA)
    rows = store.conn.execute(
        "SELECT p.value AS sha256, min(n.notice_no) AS notice_no FROM notices n, json_each(n.data, '$.photos') p "
        "WHERE p.value NOT IN (SELECT sha256 FROM photo_uploads) GROUP BY p.value ORDER BY min(n.issued_at), p.value"
    ).fetchall()
    return [(row["sha256"], row["notice_no"]) for row in rows]


class _Photos:
    """``HEAD``/``PUT`` of ``/sync/v1/attachments/<sha256>`` (raw bytes: not the JSON calls of ``Transport``)."""

    def __init__(self, transport: Transport) -> None:
        headers = {"Jingsu-Protocol": str(PROTOCOL_VERSION)}
        if transport.token:
            headers["Authorization"] = f"Bearer {transport.token}"
        self.base_url = transport.base_url
        self.client = httpx.Client(
            base_url=transport.base_url, headers=headers, timeout=httpx.Timeout(60.0, connect=5.0)
        )

    def close(self) -> None:
        self.client.close()

    def _request(self, method: str, sha256: str, **kwargs: object) -> httpx.Response:
        try:
            response = self.client.request(method, f"/sync/v1/attachments/{sha256}", **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            raise Unreachable(f"the server at {self.base_url} could not be reached: {exc}") from exc
        if response.status_code >= 500:
            raise Unreachable(f"the server answered {response.status_code}; try again later")
        return response

    def has(self, sha256: str) -> bool:
        return self._request("HEAD", sha256).status_code == 200

    def put(self, sha256: str, content: bytes, kind: str) -> httpx.Response:
        return self._request("PUT", sha256, content=content, headers={"Content-Type": kind})


def _problem_code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code", f"http_{response.status_code}"))
    except ValueError:
        return f"http_{response.status_code}"


def upload_photos(
    store: Store, transport: Transport, progress: Progress, fault: str | None = None
) -> list[PhotoProblem]:
    """Send every photo the server lacks; returns the photos that could not be sent (the others went).

    Raises ``Unreachable`` (retry later: what was confirmed stays confirmed) and ``Refused`` (401, 403, 426: the
    device or its token was refused).
    """
    todo = photos_to_send(store)
    problems: list[PhotoProblem] = []
    folder = store.path.parent / "photos"
    progress("upload", 0, len(todo))
    if not todo:
        return problems
    photos = _Photos(transport)
    try:
        for done, (sha256, notice_no) in enumerate(todo, start=1):
            reason = _send(store, photos, folder / sha256, sha256, fault)
            if reason is not None:
                problems.append(PhotoProblem(sha256, notice_no, reason))
            progress("upload", done, len(todo))
    finally:
        photos.close()
    return problems


def _send(store: Store, photos: _Photos, path: Path, sha256: str, fault: str | None) -> str | None:
    """Make sure the server has one photo; the reason it could not, or ``None``."""
    try:
        content = path.read_bytes()
    except OSError:
        return "unreadable"
    if hashlib.sha256(content).hexdigest() != sha256:
        return "damaged"  # the file changed since it was kept: it is not the evidence any more
    kind = content_type(content)
    if kind is None:
        return "not_an_image"
    if len(content) > MAX_PHOTO_BYTES:
        return "too_large"
    if not photos.has(sha256):
        response = photos.put(sha256, content, kind)
        if fault == FAULT_KILL_AFTER_UPLOAD:
            os.kill(os.getpid(), signal.SIGKILL)
        if response.status_code in _DEVICE_REFUSALS:
            code = _problem_code(response)
            raise Refused(response.status_code, code, f"the server refused the photo upload ({code})")
        if response.status_code not in (200, 201):
            return _problem_code(response)
    with store.transaction():
        store.conn.execute(
            "INSERT OR IGNORE INTO photo_uploads (sha256, confirmed_at) VALUES (?, datetime('now'))", (sha256,)
        )
    return None
