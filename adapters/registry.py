"""The vehicle registry (차적조회, 자동차등록원부) adapter: the ``VehicleRegistry`` Protocol and ``HttpRegistry``.

A parking notice names a plate, not a person; the registry says who owned the vehicle on the day of the violation
(DESIGN.md §3). The contract is ``docs/registry.md``; ``sandboxes.registry`` is the sandbox that speaks it in
dev and tests, and a production bridge is the same class with another base URL and key.

Errors split by what the caller does next: ``RegistryUnavailable`` — retry later (transport error, timeout, 5xx, a
malformed answer); ``RegistryRefused`` — the registry said no (bad signature, stale timestamp, malformed plate);
fix the request. "No such vehicle on that date" is not an error: ``lookup`` returns ``None``.

Personal data: an ``Owner`` carries a name, an RRN or business number and an address. Its ``repr`` leaves them out
and no message of this module quotes an answer's body, so neither logs nor tracebacks carry them.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, Protocol, get_args

import httpx

from adapters.http import SIGNATURE_HEADER as SIGNATURE_HEADER
from adapters.http import TIMESTAMP_HEADER as TIMESTAMP_HEADER
from adapters.http import Clock, Refused, Service, SignedClient, error_code, hex_key, hmac_hex, timestamped

OwnerKind = Literal["person", "company"]
VehicleType = Literal["car", "van", "truck", "special"]  # 승용, 승합, 화물, 특수
_KINDS: tuple[str, ...] = get_args(OwnerKind)
_VEHICLE_TYPES: tuple[str, ...] = get_args(VehicleType)

LOOKUP_PATH = "/v1/lookups"

# 12가3456, 123가4567, and the older regional 서울12가3456; spaces are dropped before matching
PLATE_RE = re.compile(r"^(?:[가-힣]{2})?\d{2,3}[가-힣]\d{4}$")


class RegistryError(Exception):
    """Base of every vehicle registry error."""


class RegistryUnavailable(RegistryError):
    """Retry later: the registry could not be reached, timed out, answered 5xx or answered outside the contract."""


class RegistryRefused(RegistryError, Refused):
    """The registry refused the request (4xx other than not-found); ``status`` is HTTP, ``code`` its stable code."""


_SERVICE = Service("the registry", RegistryUnavailable, RegistryRefused)


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

    def lookup(self, plate: str, on: date, *, idempotency_key: str | None = None) -> Owner | None:
        """The owner of ``plate`` on ``on``; ``None`` if no vehicle had that plate that day (never registered,
        deregistered, or registered later). ``idempotency_key``: the outbox row's key (one logged lookup however
        often it is sent). Raises ``RegistryUnavailable``, ``RegistryRefused``."""
        ...


def normalize_plate(plate: str) -> str:
    """``" 12가 3456 "`` → ``"12가3456"``: the form the registry is asked with."""
    return "".join(plate.split())


def is_plate(plate: str) -> bool:
    """Whether ``plate`` (normalized) has the shape of a Korean registration plate."""
    return bool(PLATE_RE.match(normalize_plate(plate)))


def sign(key: bytes, timestamp: str, payload: bytes) -> str:
    """Hex HMAC-SHA256 under ``key`` of ``"<timestamp>." + payload``: every signature of the contract."""
    return hmac_hex(key, timestamped(timestamp, payload))


@dataclass(frozen=True)
class RegistrySettings:
    """Where the registry is and how to talk to it: base URL, the shared key (hex), its name, the request timeout."""

    url: str
    key: str
    name: str = "sandbox"
    timeout: float = 10.0


class HttpRegistry:
    """``VehicleRegistry`` over HTTP (docs/registry.md) with httpx, as ``settings`` describe it.

    Requests are signed with the key and a timestamp (``clock``, Unix seconds). Without ``client``, each call uses a
    short-lived httpx client; pass one to pool connections (its base URL is not used).
    """

    def __init__(
        self, settings: RegistrySettings, *, client: httpx.Client | None = None, clock: Clock = time.time
    ) -> None:
        self.base_url = settings.url.rstrip("/")
        self.name = settings.name
        key = hex_key(settings.key, "the registry key")
        self._http = SignedClient(
            self.base_url, key, _SERVICE, timeout=settings.timeout, stamp=True, clock=clock, client=client
        )

    def lookup(self, plate: str, on: date, *, idempotency_key: str | None = None) -> Owner | None:
        """``POST /v1/lookups`` ``{"plate", "on"}``, signed (with ``Idempotency-Key`` if given): the owner on that
        date, or ``None`` (404 not_registered).

        The plate travels in the body, not the URL, so it stays out of access logs. Raises ``RegistryRefused``
        (400 invalid_request, 401 bad_signature / stale_timestamp, 404 not_found for a route the registry does not
        have) and ``RegistryUnavailable``.
        """
        plate = normalize_plate(plate)
        body = json.dumps({"plate": plate, "on": on.isoformat()}, ensure_ascii=False, separators=(",", ":")).encode()
        response = self._http.send("POST", LOOKUP_PATH, body, idempotency_key=idempotency_key)
        # only the registry's own "no such vehicle" is an answer; a 404 for a wrong URL must not read as one
        if response.status_code == 404 and error_code(response) == "not_registered":
            return None
        # the registry's own error text names no person; anything else is not quoted
        return _owner(plate, on, self._http.answer(response, ok=(200,), quote_body=False))


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
