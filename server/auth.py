"""Tokens, roles and jurisdiction scope: who is calling, and what they may see — decided here and nowhere else.

Staff tokens last an hour; device tokens are bound to (device, officer) for one shift; ``issue_token`` makes both.
A device token is checked against the database on every request, so a revoked device is refused whatever token it
holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

import jwt
from flask import g, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import Actor, Scope
from models.devices import REVOKED, Device
from models.jurisdictions import is_city
from models.users import User
from server.errors import ApiError
from server.jsonbody import MalformedJson, strict_loads
from server.runtime import runtime

STAFF, DEVICE = "staff", "device"
_ALGORITHM = "HS256"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    user_id: int
    login: str
    role: str
    jurisdiction: str
    kind: str  # staff / device
    device_id: str | None = None

    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, device_id=self.device_id, address=request.remote_addr, label=self.login)


@dataclass(frozen=True)
class Token:
    """A signed token and the user it names: staff sign-in and a device's officer sign-in answer with it."""

    access_token: str
    expires_in: int  # seconds
    user: User


def token_lifetime(kind: str) -> timedelta:
    """A staff token lasts ``staff_token_minutes``; a device token one shift, ``device_token_hours``."""
    config = runtime().config
    if kind == STAFF:
        return timedelta(minutes=config.staff_token_minutes)
    return timedelta(hours=config.device_token_hours)


def issue_token(user: User, kind: str, now: datetime, *, device_id: str | None = None) -> Token:
    """The one way a token is made: staff (``kind=STAFF``) and device (``DEVICE``, bound to ``device_id``) tokens
    differ only by their kind, lifetime and device claim."""
    lifetime = token_lifetime(kind)
    claims: dict[str, Any] = {
        "sub": str(user.id),
        "login": user.login,
        "role": user.role,
        "jur": user.jurisdiction,
        "typ": kind,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    if device_id:
        claims["dev"] = device_id
    signed = jwt.encode(claims, runtime().config.jwt_secret, algorithm=_ALGORITHM)
    return Token(signed, int(lifetime.total_seconds()), user)


def _token_principal() -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "token_invalid", "a bearer token is required")
    try:
        claims = jwt.decode(
            token,
            runtime().config.jwt_secret,
            algorithms=[_ALGORITHM],
            options={"require": ["exp", "sub", "typ", "role", "jur"]},
            leeway=0,
        )
    except jwt.PyJWTError:
        raise ApiError(401, "token_invalid", "the token is missing, malformed or expired") from None
    try:
        return Principal(
            user_id=int(claims["sub"]),
            login=str(claims.get("login", "")),
            role=str(claims["role"]),
            jurisdiction=str(claims["jur"]),
            kind=str(claims["typ"]),
            device_id=claims.get("dev"),
        )
    except (TypeError, ValueError):
        raise ApiError(401, "token_invalid", "the token's claims are malformed") from None


def current_principal() -> Principal:
    principal: Principal = g.principal
    return principal


def scope_of(session: Session, principal: Principal) -> Scope:
    """The one place jurisdiction isolation is decided: city users see every district, others only their own."""
    if is_city(session, principal.jurisdiction):
        return Scope.everything()
    return Scope.only(principal.jurisdiction)


def check_json_body() -> None:
    """400 ``malformed_json`` for a body that is not JSON (checked after auth, as PROTOCOL.md §0 orders)."""
    if request.method in ("POST", "PUT", "PATCH") and request.content_length != 0:
        data = request.get_data(cache=True)
        if data:
            try:
                g.json_body = strict_loads(data)
            except MalformedJson:
                raise ApiError(400, "malformed_json", "the request body is not valid JSON") from None


def public(fn: F) -> F:
    """A route that needs no token (login, enrollment): only the body check."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check_json_body()
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def staff(*roles: str) -> Callable[[F], F]:
    """A back-office route for staff tokens with one of ``roles``."""

    def decorate(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = _token_principal()
            if principal.kind != STAFF:
                raise ApiError(401, "token_invalid", "this route needs a staff token")
            if roles and principal.role not in roles:
                raise ApiError(403, "forbidden_role", f"this needs one of the roles: {', '.join(roles)}")
            g.principal = principal
            check_json_body()
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def device(fn: F) -> F:
    """A sync route for a device token; the device must exist and not be revoked, in the officer's jurisdiction."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        principal = _token_principal()
        if principal.kind != DEVICE or not principal.device_id:
            raise ApiError(401, "token_invalid", "this route needs a device token")
        # checked in the request's own transaction, which the handler's unit of work then continues
        session = g.request_session = runtime().sessions()
        found = session.execute(
            select(Device.status, Device.jurisdiction).where(Device.id == principal.device_id)
        ).first()
        if found is None:
            raise ApiError(401, "token_invalid", "the token names an unknown device")
        if found.status == REVOKED:
            raise ApiError(403, "device_revoked", "this device has been revoked")
        if found.jurisdiction != principal.jurisdiction:
            raise ApiError(403, "forbidden_jurisdiction", "the officer is not of this device's jurisdiction")
        g.principal = principal
        check_json_body()
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_protocol_version() -> None:
    """426 ``protocol_unsupported`` for a ``Jingsu-Protocol`` major version this server does not speak (§0; the
    first refusal of every /sync/v1 route, before size and token)."""
    from protocol import PROTOCOL_VERSION

    header = request.headers.get("Jingsu-Protocol")
    if header is None:
        return
    try:
        version = int(header.strip())
    except ValueError:
        version = -1
    if version != PROTOCOL_VERSION:
        raise ApiError(426, "protocol_unsupported", f"this server speaks sync protocol {PROTOCOL_VERSION}")
