"""PDAs: registration, enrollment, revocation, their QR keys, and the notice-number blocks they issue from.

Numbers come from server-allocated blocks (PROTOCOL.md §2, §3): sigungu (5) + year of allocation (2) + serial (7) +
Luhn digit. Every allocated number ends issued, voided, spoiled, returned or cancelled; revoking a device cancels
what it has not used.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Actor, Base, Scope
from models.crypto import PiiCipher
from models.errors import Conflict, Forbidden, NotFound, Unauthorized
from models.feed import device_scope, record_change
from models.server_state import bump_epoch
from models.users import hash_password, verify_secret
from protocol import SEOUL, format_notice_no, parse_notice_no

REGISTERED, ENROLLED, REVOKED = "registered", "enrolled", "revoked"
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed on a PDA


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    label: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(12), default=REGISTERED)
    secret_hash: Mapped[str | None] = mapped_column(String(200))
    enrollment_code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    enrollment_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    model: Mapped[str | None] = mapped_column(String(80))
    app_version: Mapped[str | None] = mapped_column(String(40))
    enrolled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoke_reason: Mapped[str | None] = mapped_column(String(200))
    acked_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # each enrollment starts a new event chain (seq 1, 2, …); a re-enrolled PDA is a fresh install
    generation: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_push_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    clock_offset_ms: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class DeviceQrKey(Base):
    """A device's QR signing key; every key it ever had stays, so old printed QRs stay verifiable."""

    __tablename__ = "device_qr_keys"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class NumberSeries(Base):
    """The next unallocated serial per (jurisdiction, two-digit year)."""

    __tablename__ = "number_series"

    jurisdiction: Mapped[str] = mapped_column(String(5), primary_key=True)
    year2: Mapped[str] = mapped_column(String(2), primary_key=True)
    next_serial: Mapped[int] = mapped_column(BigInteger)


ACTIVE, CANCELLED = "active", "cancelled"


class NumberBlock(Base):
    __tablename__ = "number_blocks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    jurisdiction: Mapped[str] = mapped_column(String(5))
    year2: Mapped[str] = mapped_column(String(2))
    first_serial: Mapped[int] = mapped_column(BigInteger)
    last_serial: Mapped[int] = mapped_column(BigInteger)
    used_count: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default=ACTIVE)
    allocated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_count: Mapped[int] = mapped_column(Integer, default=0)

    @property
    def count(self) -> int:
        return self.last_serial - self.first_serial + 1

    @property
    def first(self) -> str:
        return format_notice_no(self.jurisdiction, self.year2, self.first_serial)

    @property
    def last(self) -> str:
        return format_notice_no(self.jurisdiction, self.year2, self.last_serial)


def number_block_data(block: NumberBlock) -> dict[str, object]:
    return {
        "first": block.first,
        "last": block.last,
        "count": block.count,
        "expires_at": block.expires_at.isoformat(),
    }


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def _new_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))


# --- registration and enrollment -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterDevice:
    jurisdiction: str
    label: str
    device_id: str | None = None


def register_device(
    session: Session, cmd: RegisterDevice, actor: Actor, now: datetime, code_ttl: timedelta
) -> tuple[Device, str]:
    """Register a device and give it a one-use enrollment code (returned in clear, stored hashed)."""
    device = Device(
        id=cmd.device_id or str(uuid.uuid4()),
        jurisdiction=cmd.jurisdiction,
        label=cmd.label,
        status=REGISTERED,
        acked_seq=0,
        created_by=actor.user_id,
    )
    session.add(device)
    session.flush()
    return device, new_enrollment_code(session, device, now, code_ttl)


def new_enrollment_code(session: Session, device: Device, now: datetime, code_ttl: timedelta) -> str:
    """Replace the device's enrollment code by a fresh one (the old one stops working)."""
    if device.status == REVOKED:
        raise Conflict("a revoked device cannot enroll", code="device_revoked")
    code = _new_code()
    device.enrollment_code_hash = _code_hash(code)
    device.enrollment_expires_at = now + code_ttl
    session.flush()
    return code


@dataclass(frozen=True)
class Enrollment:
    device: Device
    device_secret: str
    qr_key: str


def enroll(session: Session, code: str, model: str, app_version: str, now: datetime, cipher: PiiCipher) -> Enrollment:
    """Enroll a device with its one-use code: a new secret and a new QR key (earlier keys stay for verification).

    Raises ``Conflict(enrollment_code_invalid)`` for a used, expired or unknown code alike.
    """
    device = session.scalar(select(Device).where(Device.enrollment_code_hash == _code_hash(code)).with_for_update())
    if (
        device is None
        or device.status == REVOKED
        or device.enrollment_expires_at is None
        or device.enrollment_expires_at <= now
    ):
        raise Conflict("the enrollment code is not valid", code="enrollment_code_invalid")
    if device.enrolled_at is not None:
        # enrolled before: the PDA was reinstalled or replaced. Its new chain starts at seq 1, and the numbers of
        # its earlier blocks are cancelled (whatever it printed from them and never synced cannot be trusted to
        # come back; a fresh install must never print them again).
        device.generation += 1
        device.acked_seq = 0
        _cancel_blocks(session, device, now)
    secret = secrets.token_urlsafe(32)
    qr_key = secrets.token_hex(32)
    device.secret_hash = hash_password(secret)
    device.enrollment_code_hash = None
    device.enrollment_expires_at = None
    device.status = ENROLLED
    device.model = model
    device.app_version = app_version
    device.enrolled_at = now
    session.add(DeviceQrKey(device_id=device.id, key_enc=cipher.encrypt(qr_key.encode(), context=device.id.encode())))
    session.flush()
    return Enrollment(device=device, device_secret=secret, qr_key=qr_key)


def get_device(session: Session, device_id: str, *, for_update: bool = False) -> Device:
    try:
        uuid.UUID(device_id)
    except (ValueError, AttributeError, TypeError):
        raise NotFound("no such device") from None
    stmt = select(Device).where(Device.id == device_id)
    if for_update:
        stmt = stmt.with_for_update()
    device = session.scalar(stmt)
    if device is None:
        raise NotFound("no such device")
    return device


def check_device_secret(session: Session, device_id: str, secret: str) -> Device:
    """The enrolled device whose secret this is; revoked → ``Forbidden(device_revoked)``, else ``Unauthorized``."""
    try:
        device = get_device(session, device_id)
    except NotFound:
        raise Unauthorized("unknown device or wrong secret", code="invalid_credentials") from None
    if device.status == REVOKED:
        raise Forbidden("this device has been revoked", code="device_revoked")
    if device.secret_hash is None or not verify_secret(device.secret_hash, secret):
        raise Unauthorized("unknown device or wrong secret", code="invalid_credentials")
    return device


def qr_keys(session: Session, device_id: str, cipher: PiiCipher) -> list[str]:
    """Every QR key the device ever had, newest first."""
    rows = session.scalars(
        select(DeviceQrKey).where(DeviceQrKey.device_id == device_id).order_by(DeviceQrKey.id.desc())
    )
    return [cipher.decrypt(row.key_enc, context=device_id.encode()).decode() for row in rows]


@dataclass(frozen=True)
class Revocation:
    device_id: str
    revoked_at: datetime
    cancelled_numbers: int


def revoke_device(session: Session, device_id: str, reason: str, actor: Actor, now: datetime) -> Revocation:
    """Revoke a lost or stolen device and cancel its unused numbers; idempotent (same ``revoked_at``)."""
    device = get_device(session, device_id, for_update=True)
    if device.status == REVOKED:
        assert device.revoked_at is not None
        cancelled = session.scalar(
            select(func.coalesce(func.sum(NumberBlock.cancelled_count), 0)).where(NumberBlock.device_id == device.id)
        )
        # read back in the database session's time zone: in UTC, so a second call answers the same text as the first
        return Revocation(device.id, device.revoked_at.astimezone(UTC), int(cancelled or 0))
    device.status = REVOKED
    device.revoked_at = now
    device.revoke_reason = reason
    device.enrollment_code_hash = None
    cancelled = _cancel_blocks(session, device, now)
    return Revocation(device.id, now.astimezone(UTC), cancelled)


def _cancel_blocks(session: Session, device: Device, now: datetime) -> int:
    """Cancel the device's active blocks; returns how many numbers were still unused."""
    cancelled = 0
    for block in session.scalars(
        select(NumberBlock).where(NumberBlock.device_id == device.id, NumberBlock.status == ACTIVE).with_for_update()
    ):
        block.status = CANCELLED
        block.cancelled_at = now
        block.cancelled_count = max(block.count - block.used_count, 0)
        cancelled += block.cancelled_count
        record_change(session, device_scope(device.id), "number_block", str(block.id), None, op="delete")
    session.flush()
    return cancelled


# --- number blocks ---------------------------------------------------------------------------------------------


def live_blocks(session: Session, device_id: str, now: datetime) -> list[NumberBlock]:
    """Unexpired active blocks that still have numbers the server has not seen used."""
    return list(
        session.scalars(
            select(NumberBlock)
            .where(
                NumberBlock.device_id == device_id,
                NumberBlock.status == ACTIVE,
                NumberBlock.expires_at > now,
                NumberBlock.used_count < NumberBlock.last_serial - NumberBlock.first_serial + 1,
            )
            .order_by(NumberBlock.id)
        )
    )


class Watermarks(Protocol):
    """High-water marks of the number series kept outside the database (they survive its restore)."""

    def get(self, jurisdiction: str, year2: str) -> int: ...

    def raise_to(self, jurisdiction: str, year2: str, next_serial: int) -> None: ...


AFTER_COMMIT = "after_commit"  # session.info key: callables the unit of work runs once the transaction committed


def top_up_blocks(
    session: Session,
    device: Device,
    now: datetime,
    *,
    block_size: int,
    min_live: int,
    expiry: timedelta,
    watermarks: Watermarks | None = None,
) -> list[NumberBlock]:
    """Allocate blocks until the device holds ``min_live`` live ones; returns the new blocks (maybe none).

    Numbers are never handed out twice, even after the database was restored from a backup: the series never goes
    below its high-water mark in ``watermarks``. Finding the database behind that mark means it was restored, so the
    sync epoch changes at once (every device pushes everything, then refetches its scope).
    """
    missing = min_live - len(live_blocks(session, device.id, now))
    if missing <= 0:
        return []
    year2 = f"{now.astimezone(SEOUL).year % 100:02d}"
    session.execute(
        pg_insert(NumberSeries)
        .values(jurisdiction=device.jurisdiction, year2=year2, next_serial=1)
        .on_conflict_do_nothing()
    )
    series = session.scalar(
        select(NumberSeries)
        .where(NumberSeries.jurisdiction == device.jurisdiction, NumberSeries.year2 == year2)
        .with_for_update()
    )
    assert series is not None
    if watermarks is not None:
        mark = watermarks.get(device.jurisdiction, year2)
        if mark > series.next_serial:
            series.next_serial = mark
            bump_epoch(session)
    blocks = []
    for _ in range(missing):
        first = series.next_serial
        last = first + block_size - 1
        if last > 9_999_999:
            raise Conflict("the number series of this year is exhausted", code="numbers_exhausted")
        series.next_serial = last + 1
        block = NumberBlock(
            device_id=device.id,
            jurisdiction=device.jurisdiction,
            year2=year2,
            first_serial=first,
            last_serial=last,
            used_count=0,
            status=ACTIVE,
            allocated_at=now,
            expires_at=now + expiry,
            cancelled_count=0,
        )
        session.add(block)
        blocks.append(block)
    session.flush()
    if watermarks is not None:
        jurisdiction, high = device.jurisdiction, series.next_serial
        session.info.setdefault(AFTER_COMMIT, []).append(lambda: watermarks.raise_to(jurisdiction, year2, high))
    return blocks


def block_of(session: Session, notice_no: str) -> NumberBlock | None:
    """The block a (valid) notice number was allocated in, whichever device holds it."""
    parsed = parse_notice_no(notice_no)
    if parsed is None:
        return None
    return session.scalar(
        select(NumberBlock).where(
            NumberBlock.jurisdiction == parsed.jurisdiction,
            NumberBlock.year2 == parsed.year2,
            NumberBlock.first_serial <= parsed.serial,
            NumberBlock.last_serial >= parsed.serial,
        )
    )


def mark_numbers_used(session: Session, block_counts: dict[int, int]) -> None:
    """Count numbers the server has now seen used, per block id."""
    for block_id, count in block_counts.items():
        session.execute(
            update(NumberBlock).where(NumberBlock.id == block_id).values(used_count=NumberBlock.used_count + count)
        )


class SpoiledNumber(Base):
    """A number that will never be issued (printer jam, misprint): accounted for, never reused."""

    __tablename__ = "spoiled_numbers"

    notice_no: Mapped[str] = mapped_column(String(15), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    reason: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(36))
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    spoiled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def is_spoiled(session: Session, notice_no: str) -> bool:
    return session.get(SpoiledNumber, notice_no) is not None


def spoil_number(
    session: Session,
    *,
    notice_no: str,
    device_id: str,
    reason: str,
    event_id: str,
    officer_id: int | None,
    spoiled_at: datetime,
) -> bool:
    """Record a spoiled number; ``False`` when the number was already spoiled (by another event)."""
    inserted = session.scalar(
        pg_insert(SpoiledNumber)
        .values(notice_no=notice_no, device_id=device_id, reason=reason, event_id=event_id, officer_id=officer_id,
                spoiled_at=spoiled_at)
        .on_conflict_do_nothing(index_elements=["notice_no"])
        .returning(SpoiledNumber.notice_no)
    )  # fmt: skip
    return inserted is not None


def blocks_of_device(session: Session, device_id: str) -> list[NumberBlock]:
    """Every block ever allocated to a device (a number of a cancelled block is still the device's)."""
    return list(session.scalars(select(NumberBlock).where(NumberBlock.device_id == device_id).order_by(NumberBlock.id)))


def spoiled_among(session: Session, notice_nos: Iterable[str]) -> set[str]:
    """Which of these numbers are spoiled (one query for a whole batch)."""
    wanted = sorted(notice_nos)
    if not wanted:
        return set()
    return set(session.scalars(select(SpoiledNumber.notice_no).where(SpoiledNumber.notice_no.in_(wanted))))


def devices_in(session: Session, scope: Scope) -> list[Device]:
    """The devices of ``scope``, oldest registration first."""
    return list(session.scalars(scope.apply(select(Device), Device.jurisdiction).order_by(Device.created_at)))
