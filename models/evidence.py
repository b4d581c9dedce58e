"""증거 사진: evidence photos of notices (PROTOCOL.md §4), content-addressed by their SHA-256.

The bytes live on disk, never in a database row: ``<evidence_dir>/<aa>/<sha256>`` (``aa`` = the hash's first two
hex digits), written to a temporary file in the same folder, fsynced, then renamed into place (atomic), and the
folder fsynced. The table ``attachments`` records what is stored (hash, size, content type, the first device that
sent it, when); a hash is stored once whoever sends it again (deduplicated). The file is written before its row:
a row always has its file, while a transaction that fails after the write leaves at most a file the next upload of
that hash writes again.

``photos_missing`` (PROTOCOL.md §2 flags): a notice whose ``data.photos`` names a hash the server does not have is
accepted and flagged, so it waits in review (``under_review``) like any flagged notice; each missing hash is kept in
``photo_waits`` (hash, notice). When the last missing photo of a notice arrives, the flag is removed and
``photos_complete`` is put on the notice's timeline. The notice's version and status are left as they are: the
flag only told the clerk that evidence was incomplete; whether the notice leaves review is the clerk's decision (it
may carry other flags, and a clerk may already be looking at it), and devices learn nothing new from a flag, so
there is no new version for them to pull.

Concurrency. Two uploads of one hash are serialized by a transaction-level advisory lock on the hash (exclusive);
a push that checks photos takes the same lock shared, so an upload and a push that names its hash see each other:
either the push sees the stored photo, or the upload sees the push's wait and clears it. Two uploads completing one
notice both lock the notice row before counting what it still waits for, so the second sees the first's delete.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from models import notices as notice_ops
from models.base import Actor, Base
from models.errors import InvalidInput

JPEG, PNG = "image/jpeg", "image/png"
CONTENT_TYPES = (JPEG, PNG)
PHOTOS_MISSING = "photos_missing"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAGIC = ((JPEG, b"\xff\xd8\xff"), (PNG, b"\x89PNG\r\n\x1a\n"))
# key space of our advisory locks on hashes (pg_advisory_xact_lock(int, int)): "EV" + 2 bytes, clear of others'
_LOCK_SPACE = 0x4556_0004


class Attachment(Base):
    """A stored evidence file; its bytes are on disk under ``evidence_dir``."""

    __tablename__ = "attachments"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(40))
    first_device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PhotoWait(Base):
    """A notice accepted without one of its photos: removed when the photo arrives."""

    __tablename__ = "photo_waits"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    notice_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("notices.id"), primary_key=True, index=True)


class HashMismatch(InvalidInput):
    """The bytes sent do not have the SHA-256 the URL names."""

    code = "hash_mismatch"


def is_sha256(text: str) -> bool:
    """64 lower-case hex digits (how the protocol writes every hash)."""
    return _SHA256.fullmatch(text) is not None


def sniff(content: bytes) -> str | None:
    """The content type the bytes are (JPEG or PNG, by their signature), else ``None``."""
    return next((kind for kind, magic in _MAGIC if content.startswith(magic)), None)


# --- the files ------------------------------------------------------------------------------------------------------


class EvidenceFiles(Protocol):
    """Where evidence bytes are kept (a folder today; an object store could stand in)."""

    def exists(self, sha256: str) -> bool: ...

    def write(self, sha256: str, content: bytes) -> None: ...


class EvidenceDir:
    """``<root>/<aa>/<sha256>``, written durably and atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def write(self, sha256: str, content: bytes) -> None:
        """Write to a temporary file beside the target, fsync it, rename it into place, fsync the folder: a reader
        (or a crash) sees the whole file or none. Concurrent writers of one hash write the same bytes: either
        rename wins."""
        target = self.path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{sha256}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


# --- operations -----------------------------------------------------------------------------------------------------


def _lock(session: Session, sha256: str, *, shared: bool) -> None:
    lock = func.pg_advisory_xact_lock_shared if shared else func.pg_advisory_xact_lock
    session.execute(select(lock(_LOCK_SPACE, _lock_key(sha256))))


def _lock_key(sha256: str) -> int:
    # 32 bits of the hash pick the lock; another hash on the same lock only waits a little longer
    return int(sha256[:8], 16) - 2**31


@dataclass(frozen=True)
class StoreAttachment:
    """A device sends the bytes of one photo under the hash it computed."""

    sha256: str
    content: bytes
    content_type: str
    device_id: str


@dataclass(frozen=True)
class Stored:
    attachment: Attachment
    created: bool  # False: the server already had it
    completed: list[str]  # notice numbers this photo completed (their photos_missing removed)


def store_attachment(
    session: Session, files: EvidenceFiles, cmd: StoreAttachment, now: datetime, actor: Actor
) -> Stored:
    """Keep a photo (once per hash) and complete the notices that waited for it.

    Raises ``HashMismatch`` when the bytes' SHA-256 is not ``cmd.sha256``, ``InvalidInput`` for a content type other
    than JPEG or PNG (the web layer answers that one as 415 before calling).
    """
    if cmd.content_type not in CONTENT_TYPES:
        raise InvalidInput(f"a photo is {' or '.join(CONTENT_TYPES)}", field="content_type")
    if hashlib.sha256(cmd.content).hexdigest() != cmd.sha256:
        raise HashMismatch("the SHA-256 of the bytes sent is not the one in the URL", field="sha256")
    _lock(session, cmd.sha256, shared=False)
    existing = session.get(Attachment, cmd.sha256)
    if existing is not None and files.exists(cmd.sha256):
        return Stored(existing, created=False, completed=[])
    # no row, or a row whose file was lost: (re)write the bytes before the row says they are there
    files.write(cmd.sha256, cmd.content)
    if existing is not None:
        return Stored(existing, created=False, completed=[])
    inserted = session.scalar(
        pg_insert(Attachment)
        .values(
            sha256=cmd.sha256,
            size=len(cmd.content),
            content_type=cmd.content_type,
            first_device_id=cmd.device_id,
            stored_at=now,
        )
        .on_conflict_do_nothing(index_elements=["sha256"])
        .returning(Attachment.sha256)
    )
    attachment = session.get(Attachment, cmd.sha256)
    assert attachment is not None
    if inserted is None:  # cannot happen under the lock; if it did, the other sender completed the notices
        return Stored(attachment, created=False, completed=[])
    return Stored(attachment, created=True, completed=_photo_arrived(session, cmd.sha256, now, actor))


def is_stored(session: Session, files: EvidenceFiles, sha256: str) -> bool:
    """The server has this photo: recorded, and its file is on disk (a lost file is asked for again)."""
    return session.get(Attachment, sha256) is not None and files.exists(sha256)


def missing_photos(session: Session, hashes: Iterable[str]) -> list[str]:
    """The hashes of ``hashes`` the server does not have, in order (called by the push before it flags
    ``photos_missing``; takes each hash's lock shared until the push commits, see the module docstring)."""
    wanted = list(dict.fromkeys(hashes))
    if not wanted:
        return []
    # every lock in one statement, in key order (as one at a time would take them: no deadlock with an upload)
    keys = sorted({_lock_key(sha256) for sha256 in wanted})
    session.execute(
        text(
            "SELECT count(pg_advisory_xact_lock_shared(:space, k)) FROM (SELECT k FROM unnest(CAST(:keys AS int[])) "
            "AS k ORDER BY k) AS ordered"
        ),
        {"space": _LOCK_SPACE, "keys": keys},
    )
    stored = set(session.scalars(select(Attachment.sha256).where(Attachment.sha256.in_(wanted))))
    return [sha256 for sha256 in wanted if sha256 not in stored]


def await_photos(session: Session, notice_id: int, hashes: Iterable[str]) -> None:
    """Record that an accepted notice waits for these photos (it was flagged ``photos_missing``)."""
    rows = [{"sha256": sha256, "notice_id": notice_id} for sha256 in dict.fromkeys(hashes)]
    if rows:
        session.execute(pg_insert(PhotoWait).values(rows).on_conflict_do_nothing())


def _photo_arrived(session: Session, sha256: str, now: datetime, actor: Actor) -> list[str]:
    waiting = list(session.scalars(delete(PhotoWait).where(PhotoWait.sha256 == sha256).returning(PhotoWait.notice_id)))
    completed = []
    for notice_id in sorted(waiting):
        # the row lock orders uploads completing the same notice; the count after it sees the other's delete
        notice = session.scalar(select(notice_ops.Notice).where(notice_ops.Notice.id == notice_id).with_for_update())
        if notice is None:
            continue
        left = session.scalar(select(func.count()).select_from(PhotoWait).where(PhotoWait.notice_id == notice_id))
        if not left and notice_ops.photos_complete(session, notice, now, actor):
            completed.append(notice.notice_no)
    return completed
