"""The vehicle registry (차적조회, 자동차등록원부) adapter: the ``VehicleRegistry`` Protocol and ``HttpRegistry``.

A parking notice names a plate, not a person; the registry says who owned the vehicle on the day of the violation
(DESIGN.md §3). The contract is ``docs/registry.md``; ``server.sandboxes.registry`` is the sandbox that speaks it in
dev and tests, and a production bridge is the same class with another base URL and key.

Errors split by what the caller does next: ``RegistryUnavailable`` — retry later (transport error, timeout, 5xx, a
malformed answer); ``RegistryRefused`` — the registry said no (bad signature, stale timestamp, malformed plate);
fix the request. "No such vehicle on that date" is not an error: ``lookup`` returns ``None``.

Personal data: an ``Owner`` carries a name, an RRN or business number and an address. Its ``repr`` leaves them out
and no message of this module quotes an answer's body, so neither logs nor tracebacks carry them.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import httpx

from server.adapters import sandbox_process
from server.config import Config

OwnerKind = Literal["person", "company"]
VehicleType = Literal["car", "van", "truck", "special"]  # 승용, 승합, 화물, 특수
_KINDS: tuple[str, ...] = get_args(OwnerKind)
_VEHICLE_TYPES: tuple[str, ...] = get_args(VehicleType)

TIMESTAMP_HEADER = "X-Jingsu-Timestamp"
SIGNATURE_HEADER = "X-Jingsu-Signature"
LOOKUP_PATH = "/v1/lookups"

# 12가3456, 123가4567, and the older regional 서울12가3456; spaces are dropped before matching
PLATE_RE = re.compile(r"^(?:[가-힣]{2})?\d{2,3}[가-힣]\d{4}$")


class RegistryError(Exception):
    """Base of every vehicle registry error."""


class RegistryUnavailable(RegistryError):
    """Retry later: the registry could not be reached, timed out, answered 5xx or answered outside the contract."""


class RegistryRefused(RegistryError):
    """The registry refused the request (4xx other than not-found); ``status`` is HTTP, ``code`` its stable code."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


@dataclass(frozen=True)
class Address:
    """A Korean postal address: 5-digit postal code (우편번호), road-name line, detail line (may be empty)."""

    postal_code: str
    line1: str
    line2: str = ""


@dataclass(frozen=True)
class Owner:
    """The registered owner (소유자) of a vehicle on a date, as the registry answered.

    ``rrn`` (주민등록번호, ``######-#######``) is set for a person, ``business_no`` (사업자등록번호, ``###-##-#####``)
    for a company. ``since`` is the day this owner's registration began. Personal fields stay out of ``repr``.
    """

    plate: str
    kind: OwnerKind
    name: str = field(repr=False)
    rrn: str | None = field(repr=False)
    business_no: str | None = field(repr=False)
    address: Address = field(repr=False)
    vehicle_type: VehicleType
    since: date


class VehicleRegistry(Protocol):
    """What Jingsu needs of the vehicle registry."""

    name: str

    def lookup(self, plate: str, on: date) -> Owner | None:
        """The owner of ``plate`` on ``on``; ``None`` if no vehicle had that plate that day (never registered,
        deregistered, or registered later). Raises ``RegistryUnavailable``, ``RegistryRefused``."""
        ...


def normalize_plate(plate: str) -> str:
    """``" 12가 3456 "`` → ``"12가3456"``: the form the registry is asked with."""
    return "".join(plate.split())


def is_plate(plate: str) -> bool:
    """Whether ``plate`` (normalized) has the shape of a Korean registration plate."""
    return bool(PLATE_RE.match(normalize_plate(plate)))


def sign(key: bytes, timestamp: str, payload: bytes) -> str:
    """Hex HMAC-SHA256 under ``key`` of ``"<timestamp>." + payload``: every signature of the contract."""
    return hmac.new(key, timestamp.encode("ascii") + b"." + payload, hashlib.sha256).hexdigest()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


class HttpRegistry:
    """``VehicleRegistry`` over HTTP (docs/registry.md) with httpx.

    ``key`` is the shared secret as hex; requests are signed with it and a timestamp (``clock``, Unix seconds).
    Without ``client``, each call uses a short-lived httpx client; pass one to pool connections (its base URL is not
    used).
    """

    def __init__(
        self,
        base_url: str,
        key: str,
        name: str = "sandbox",
        *,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            self._key = bytes.fromhex(key)
        except ValueError as exc:
            raise ValueError("the registry key must be hex") from exc
        if not self._key:
            raise ValueError("the registry key must not be empty")
        self.base_url = base_url.rstrip("/")
        self.name = name
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._client = client
        self._clock = clock

    def lookup(self, plate: str, on: date) -> Owner | None:
        """``POST /v1/lookups`` ``{"plate", "on"}``, signed: the owner on that date, or ``None`` (404
        not_registered).

        The plate travels in the body, not the URL, so it stays out of access logs. Raises ``RegistryRefused``
        (400 invalid_request, 401 bad_signature / stale_timestamp, 404 not_found for a route the registry does not
        have) and ``RegistryUnavailable``.
        """
        plate = normalize_plate(plate)
        body = json.dumps({"plate": plate, "on": on.isoformat()}, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._key, timestamp, body),
        }
        url = f"{self.base_url}{LOOKUP_PATH}"
        try:
            if self._client is not None:
                response = self._client.post(url, content=body, headers=headers, timeout=self._timeout)
            else:
                with httpx.Client(timeout=self._timeout, verify=_tls_context()) as client:
                    response = client.post(url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise RegistryUnavailable(f"the registry at {self.base_url} could not be reached: {exc!r}") from exc
        if response.status_code >= 500:
            raise RegistryUnavailable(f"the registry answered {response.status_code}; try again later")
        try:
            data = response.json()
        except ValueError:
            data = None
        if 400 <= response.status_code < 500:
            err = data if isinstance(data, dict) else {}
            code = str(err.get("code") or f"http_{response.status_code}")
            # only the registry's own "no such vehicle" is an answer; a 404 for a wrong URL must not read as one
            if response.status_code == 404 and code == "not_registered":
                return None
            # the registry's own error text names no person; anything else is not quoted
            raise RegistryRefused(response.status_code, code, str(err.get("detail") or "")[:200])
        if response.status_code != 200 or not isinstance(data, dict):
            raise RegistryUnavailable(f"the registry answered {response.status_code} outside the contract")
        return _owner(plate, on, data)


def _owner(plate: str, on: date, data: dict[str, Any]) -> Owner:
    """A lookup answer checked against the contract; anything else is ``RegistryUnavailable`` (naming the field,
    never its value: the values are personal data)."""
    where = "the answer"
    try:
        where = "plate"
        if data["plate"] != plate:
            raise ValueError
        where = "on"
        if data["on"] != on.isoformat():
            raise ValueError
        where = "vehicle.type"
        vehicle_type = data["vehicle"]["type"]
        if vehicle_type not in _VEHICLE_TYPES:
            raise ValueError
        owner = data["owner"]
        where = "owner.kind"
        kind = owner["kind"]
        if kind not in _KINDS:
            raise ValueError
        where = "owner.name"
        name = owner["name"]
        if not (isinstance(name, str) and name.strip()):
            raise ValueError
        where = "owner.rrn / owner.business_no"
        rrn, business_no = owner["rrn"], owner["business_no"]
        if kind == "person" and not (isinstance(rrn, str) and rrn and business_no is None):
            raise ValueError
        if kind == "company" and not (isinstance(business_no, str) and business_no and rrn is None):
            raise ValueError
        where = "owner.address"
        raw_address = owner["address"]
        address = Address(
            postal_code=raw_address["postal_code"], line1=raw_address["line1"], line2=raw_address.get("line2") or ""
        )
        if not (isinstance(address.postal_code, str) and re.fullmatch(r"\d{5}", address.postal_code)):
            raise ValueError
        if not (isinstance(address.line1, str) and address.line1 and isinstance(address.line2, str)):
            raise ValueError
        where = "owner.since"
        since = date.fromisoformat(owner["since"])
        if since > on:
            raise ValueError
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise RegistryUnavailable(f"the registry's lookup answer is outside the contract at {where}") from exc
    return Owner(
        plate=plate,
        kind=kind,
        name=name,
        rrn=rrn,
        business_no=business_no,
        address=address,
        vehicle_type=vehicle_type,
        since=since,
    )


def from_config(config: Config) -> HttpRegistry:
    """The registry ``config`` names (``JINGSU_REGISTRY_URL``, ``_KEY``, ``_NAME``)."""
    return HttpRegistry(config.registry_url, config.registry_key, name=config.registry_name)


# --- the sandbox process (tests, make run) --------------------------------------------------------------------------


def start_sandbox(
    port: int,
    key: str,
    *,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    timeout: float = 10.0,
) -> subprocess.Popen[bytes]:
    """Start ``python -m server.sandboxes.registry`` and return once it answers ``/healthz``.

    Output goes to ``log_path`` (appended) if given. Stop it with ``stop_sandbox``. Raises ``RuntimeError`` if it
    does not start within ``timeout`` seconds.
    """
    return sandbox_process.start(
        "server.sandboxes.registry",
        ["--key", key],
        host=host,
        port=port,
        log_path=log_path,
        timeout=timeout,
        label="the vehicle registry sandbox",
    )


stop_sandbox = sandbox_process.stop
