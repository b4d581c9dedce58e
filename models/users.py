"""Staff users (admin, clerk, officer, approver, auditor), argon2 password hashes, throttling and lockout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base
from models.errors import RateLimited, Unauthorized
from models.feed import jurisdiction_scope, record_change

ROLES = ("admin", "clerk", "officer", "approver", "auditor")

_hasher = PasswordHasher()
# verified against when the login is unknown, so a wrong login costs the same time as a wrong password
_DUMMY_HASH = _hasher.hash("not-a-password")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(60))
    role: Mapped[str] = mapped_column(String(20))
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_secret(stored_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def officer_data(user: User) -> dict[str, object]:
    return {"id": user.id, "name": user.name}


@dataclass(frozen=True)
class CreateUser:
    login: str
    name: str
    role: str
    jurisdiction: str
    password: str


def ensure_user(session: Session, cmd: CreateUser) -> User:
    """Create a user unless the login exists (then its name, role and jurisdiction are brought up to date)."""
    if cmd.role not in ROLES:
        raise ValueError(f"unknown role {cmd.role}")
    user = session.scalar(select(User).where(User.login == cmd.login))
    if user is None:
        user = User(
            login=cmd.login,
            name=cmd.name,
            role=cmd.role,
            jurisdiction=cmd.jurisdiction,
            password_hash=hash_password(cmd.password),
            active=True,
            failed_count=0,
        )
        session.add(user)
    elif (user.name, user.role, user.jurisdiction) == (cmd.name, cmd.role, cmd.jurisdiction):
        if not verify_secret(user.password_hash, cmd.password):
            user.password_hash = hash_password(cmd.password)
        return user
    else:
        user.name, user.role, user.jurisdiction = cmd.name, cmd.role, cmd.jurisdiction
    session.flush()
    if user.role == "officer":
        record_change(session, jurisdiction_scope(user.jurisdiction), "officer", str(user.id), officer_data(user))
    return user


@dataclass(frozen=True)
class LockoutPolicy:
    failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lock_for: timedelta = timedelta(minutes=15)


def authenticate(session: Session, login: str, password: str, now: datetime, policy: LockoutPolicy) -> User:
    """Check a login and password with throttling.

    Raises ``RateLimited`` while the user is locked (even with the right password) and ``Unauthorized`` for a bad
    login or password. ``policy.failures`` failures within ``policy.window`` lock the user for ``policy.lock_for``.
    The failure count is committed by the caller even though the request fails (see ``server``).
    """
    user = session.scalar(select(User).where(User.login == login).with_for_update())
    if user is None or not user.active:
        verify_secret(_DUMMY_HASH, password)
        raise Unauthorized("login or password is wrong", code="invalid_credentials")
    if user.locked_until is not None and user.locked_until > now:
        raise RateLimited("too many failed sign-ins; try again later", code="rate_limited")
    if verify_secret(user.password_hash, password):
        user.failed_count = 0
        user.failed_window_start = None
        user.locked_until = None
        return user
    if user.failed_window_start is None or now - user.failed_window_start > policy.window:
        user.failed_window_start = now
        user.failed_count = 0
    user.failed_count += 1
    if user.failed_count >= policy.failures:
        user.locked_until = now + policy.lock_for
        user.failed_count = 0
        user.failed_window_start = None
    session.flush()
    raise Unauthorized("login or password is wrong", code="invalid_credentials", keep_changes=True)
