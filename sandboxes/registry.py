"""Sandbox vehicle registry (차적조회): the dev/test stand-in for the 자동차등록원부 lookup, run as its own process.

    python -m sandboxes.registry --host 127.0.0.1 --port 5002 --key HEX [--max-skew SECONDS]

It speaks the contract of ``docs/registry.md`` over HTTP, as ``adapters.registry.HttpRegistry`` expects of
the real bridge: a signed, timestamped ``POST /v1/lookups {"plate", "on"}`` answers the owner on that date or
``404 not_registered``. A lookup with an ``Idempotency-Key`` is logged (an effect) once per key and answered the same
way again (``sandboxes.common``: ``/sandbox/idempotency`` counts them, ``/sandbox/hold`` holds answers back).

Its data is fixed and deterministic, so it has no state to keep across restarts:

- ``demo_vehicles()``: about thirty hand-written vehicles (people and companies, Seoul addresses), among them one
  whose owner changed on ``TRANSFER_DATE`` and one deregistered (말소) on ``DEREGISTERED_ON``;
- every other well-formed plate gets a generated owner derived from a hash of the plate (same plate, same owner, in
  every process), registered since a date in 2010–2019, so fleet tests with any plates find owners;
- except the plates in ``NOT_REGISTERED`` and every plate whose four-digit serial is ``0000``: never registered.

The fake RRNs and business numbers are made up; they are personal data in form all the same, so the sandbox logs
request lines only (the plate travels in the body) and never an answer.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flask import Flask, Response, request

from sandboxes.common import (
    SandboxError,
    arg_parser,
    base_app,
    check_stamped,
    deliveries,
    error_json,
    hex_secret,
    json_object,
    json_response,
    serve,
)

TIMESTAMP_HEADER = "X-Jingsu-Timestamp"
SIGNATURE_HEADER = "X-Jingsu-Signature"
MAX_SKEW_S = 300

PLATE_RE = re.compile(r"^(?:[가-힣]{2})?\d{2,3}[가-힣]\d{4}$")

TRANSFER_PLATE = "34나5678"
TRANSFER_DATE = date(2025, 3, 15)  # the new owner from this day on
DEREGISTERED_PLATE = "56다7890"
DEREGISTERED_ON = date(2024, 6, 30)  # no owner from this day on
NOT_REGISTERED = frozenset({"99가9999", "777너7777", "12가3457"})


# --- data -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """One owner's registration of a vehicle: from ``since`` (inclusive) to ``until`` (exclusive, None = still)."""

    kind: str  # person | company
    name: str
    id_no: str  # RRN for a person, business number for a company
    postal_code: str
    line1: str
    line2: str
    since: date
    until: date | None = None

    def owner(self) -> dict[str, Any]:
        """The ``owner`` object of a lookup answer."""
        person = self.kind == "person"
        return {
            "kind": self.kind,
            "name": self.name,
            "rrn": self.id_no if person else None,
            "business_no": None if person else self.id_no,
            "address": {"postal_code": self.postal_code, "line1": self.line1, "line2": self.line2},
            "since": self.since.isoformat(),
        }


@dataclass(frozen=True)
class Vehicle:
    plate: str
    type: str  # car | van | truck | special (승용, 승합, 화물, 특수)
    holders: tuple[Holder, ...]
    deregistered_on: date | None = None

    def holder_on(self, on: date) -> Holder | None:
        """Who held the registration on ``on``; None before the first registration and from deregistration on."""
        if self.deregistered_on is not None and on >= self.deregistered_on:
            return None
        for holder in self.holders:
            if holder.since <= on and (holder.until is None or on < holder.until):
                return holder
        return None


_S = "서울특별시 "
# plate | type | kind | name | RRN or business number | postal code | address in 서울특별시 | detail | since
_DEMO_TABLE = """
12가3456 | car | person | 김민준 | 850314-1234567 | 06236 | 강남구 테헤란로 152 | 1203호 | 2019-04-02
23가4567 | car | person | 이지은 | 920708-2345678 | 04524 | 중구 세종대로 110 |  | 2020-01-15
45나6789 | car | person | 최윤서 | 881122-2456789 | 03154 | 종로구 종로 1 | 5층 | 2018-09-03
67다8901 | van | person | 정도윤 | 790215-1567890 | 07327 | 영등포구 여의대로 24 |  | 2016-05-20
89라1234 | car | person | 강하은 | 010503-4678901 | 04104 | 마포구 신촌로 90 | 302호 | 2021-07-11
11마2345 | car | person | 조서준 | 750930-1789012 | 02841 | 성북구 보문로 168 |  | 2015-02-28
22바3456 | car | person | 윤지우 | 980417-2890123 | 05551 | 송파구 올림픽로 300 | 2201호 | 2022-03-08
33사4567 | truck | person | 장현우 | 690812-1901234 | 08826 | 관악구 관악로 145 |  | 2012-11-30
44아5678 | car | person | 임수아 | 030129-4012345 | 01811 | 노원구 동일로 1405 | 1102호 | 2023-06-19
55자6789 | car | person | 한예준 | 860605-1123456 | 03722 | 서대문구 연세로 50 |  | 2017-08-08
66거7890 | car | person | 오채원 | 940221-2234567 | 04391 | 용산구 이태원로 29 |  | 2019-12-24
77너8901 | van | person | 서지호 | 810710-1345678 | 07995 | 양천구 목동동로 105 | 803호 | 2014-04-01
88더9012 | car | person | 신유나 | 960918-2456780 | 02583 | 동대문구 천호대로 145 |  | 2020-10-05
99러1230 | car | person | 권도현 | 000101-3567891 | 06500 | 서초구 반포대로 201 |  | 2024-01-02
10머2341 | car | person | 황서윤 | 730325-2678902 | 01064 | 강북구 도봉로 89 |  | 2013-03-14
20버3452 | special | person | 안시우 | 670603-1789013 | 08584 | 금천구 시흥대로 73 |  | 2011-10-10
30서4563 | car | person | 송하린 | 021111-4890124 | 05397 | 강동구 천호대로 1017 |  | 2022-12-01
40어5674 | car | person | 류준서 | 910427-1901235 | 07237 | 영등포구 당산로 123 |  | 2018-02-05
50저6785 | car | person | 전소율 | 870819-2012346 | 04156 | 마포구 마포대로 33 |  | 2016-09-27
123나4567 | car | person | 홍지안 | 990202-1123457 | 03051 | 종로구 사직로 161 |  | 2024-02-01
234다5678 | car | person | 문하윤 | 050814-4234568 | 02179 | 중랑구 망우로 353 |  | 2025-05-20
345라6789 | van | person | 배은우 | 800130-1345679 | 06043 | 강남구 압구정로 165 |  | 2023-09-09
456마7890 | car | person | 노다인 | 930909-2456781 | 07803 | 강서구 공항대로 247 | 1502호 | 2024-11-11
78라1234 | truck | company | (주)한강물류 | 214-81-12345 | 07335 | 영등포구 국제금융로 10 |  | 2017-01-09
90바1122 | van | company | 주식회사 새벽배송 | 120-86-54321 | 05854 | 송파구 법원로 114 |  | 2021-04-30
101하2345 | car | company | 서울렌터카(주) | 101-81-67890 | 04637 | 중구 퇴계로 100 |  | 2024-08-01
37소2468 | car | company | 한빛건설 주식회사 | 211-87-24680 | 06164 | 강남구 영동대로 513 |  | 2019-06-17
68보1357 | truck | company | (주)서울청과 | 204-81-13579 | 02580 | 동대문구 왕산로 259 |  | 2015-11-23
"""


@functools.cache
def demo_vehicles() -> dict[str, Vehicle]:
    """The hand-written demo vehicles by plate: ``_DEMO_TABLE`` plus the transferred and the deregistered one."""
    vehicles = [
        Vehicle(plate, vtype, (Holder(kind, name, id_no, postal, _S + line1, line2, date.fromisoformat(since)),))
        for plate, vtype, kind, name, id_no, postal, line1, line2, since in (
            [cell.strip() for cell in row.split("|")] for row in _DEMO_TABLE.strip().splitlines()
        )
    ]
    vehicles.append(
        Vehicle(
            TRANSFER_PLATE,
            "car",
            (
                Holder(
                    "person",
                    "이서연",
                    "900514-2234561",
                    "04779",
                    _S + "성동구 왕십리로 222",
                    "",
                    date(2020, 5, 6),
                    TRANSFER_DATE,
                ),
                Holder(
                    "person", "박지훈", "830227-1345672", "01411", _S + "도봉구 방학로 21", "101동 502호", TRANSFER_DATE
                ),
            ),
        )
    )
    vehicles.append(
        Vehicle(
            DEREGISTERED_PLATE,
            "car",
            (
                Holder(
                    "person", "김영수", "580101-1456783", "03900", _S + "마포구 월드컵북로 396", "", date(2009, 3, 2)
                ),
            ),
            deregistered_on=DEREGISTERED_ON,
        )
    )
    return {v.plate: v for v in vehicles}


# --- generated owners -----------------------------------------------------------------------------------------------

_SURNAMES = "김이박최정강조윤장임한오서신권황안송류전홍고문양손배백허유남심노"
_GIVEN = (
    "민준",
    "서연",
    "도윤",
    "지우",
    "하준",
    "서윤",
    "시우",
    "하은",
    "주원",
    "지유",
    "예준",
    "수아",
    "건우",
    "지안",
    "현우",
)
_COMPANIES = ("(주)가람상사", "누리운수(주)", "주식회사 다온", "(주)미래로지스", "바른건설(주)", "주식회사 한결")
# (구, postal code prefix of three digits, road names)
_DISTRICTS = (
    ("종로구", "031", ("율곡로", "삼일대로")),
    ("중구", "045", ("을지로", "퇴계로")),
    ("용산구", "043", ("한강대로", "녹사평대로")),
    ("성동구", "047", ("왕십리로", "고산자로")),
    ("광진구", "049", ("능동로", "자양로")),
    ("마포구", "041", ("양화로", "월드컵로")),
    ("강서구", "077", ("화곡로", "강서로")),
    ("관악구", "088", ("남부순환로", "봉천로")),
    ("서초구", "065", ("서초대로", "강남대로")),
    ("강남구", "062", ("논현로", "도산대로")),
    ("송파구", "056", ("송파대로", "백제고분로")),
    ("노원구", "018", ("노원로", "상계로")),
)
_TYPES = ("car",) * 14 + ("van",) * 3 + ("truck",) * 2 + ("special",)
_GENERATED_FROM = date(2010, 1, 1)


def generated(plate: str) -> Vehicle:
    """The deterministic vehicle of a well-formed plate that is neither a demo vehicle nor unregistered."""
    h = hashlib.sha256(plate.encode()).digest()
    n = int.from_bytes(h[:16], "big")

    def pick(count: int) -> int:
        nonlocal n
        n, index = divmod(n, count)
        return index

    gu, prefix, roads = _DISTRICTS[pick(len(_DISTRICTS))]
    postal = f"{prefix}{pick(100):02d}"
    line1 = f"서울특별시 {gu} {roads[pick(len(roads))]} {1 + pick(400)}"
    line2 = f"{1 + pick(20)}{pick(4) + 1:02d}호" if pick(2) else ""
    since = _GENERATED_FROM + timedelta(days=pick(3650))
    vtype = _TYPES[pick(len(_TYPES))]
    if pick(10) == 0:
        name = _COMPANIES[pick(len(_COMPANIES))]
        id_no = f"{100 + pick(800)}-{81 + pick(8)}-{pick(100000):05d}"
        holder = Holder("company", name, id_no, postal, line1, line2, since)
    else:
        name = _SURNAMES[pick(len(_SURNAMES))] + _GIVEN[pick(len(_GIVEN))]
        born = date(1950, 1, 1) + timedelta(days=pick(365 * 50))
        sex = pick(2) + (1 if born.year < 2000 else 3)
        id_no = f"{born:%y%m%d}-{sex}{pick(1000000):06d}"
        holder = Holder("person", name, id_no, postal, line1, line2, since)
    return Vehicle(plate, vtype, (holder,))


def find(plate: str) -> Vehicle | None:
    """The vehicle registered under ``plate`` (normalized, well-formed), demo or generated; None if unregistered."""
    demo = demo_vehicles()
    if plate in demo:
        return demo[plate]
    if plate in NOT_REGISTERED or plate.endswith("0000"):
        return None
    return generated(plate)


# --- web ------------------------------------------------------------------------------------------------------------


def check_signature(key: bytes, max_skew: int, timestamp: str | None, signature: str | None, payload: bytes) -> None:
    """Raise ``SandboxError(401, "bad_signature" | "stale_timestamp")`` unless the request is signed and fresh."""
    check_stamped(key, max_skew, timestamp, signature, payload, headers=(TIMESTAMP_HEADER, SIGNATURE_HEADER))


def parse_lookup(raw: bytes) -> tuple[str, date]:
    """``(plate, on)`` from a lookup body. Raises ``SandboxError(400, "invalid_request")`` naming the field."""
    body = json_object(raw)
    plate = body.get("plate")
    if not isinstance(plate, str) or not PLATE_RE.match(plate):
        raise SandboxError(400, "invalid_request", "plate: a Korean plate such as 12가3456 or 123가4567, no spaces")
    raw_on = body.get("on")
    try:
        if not isinstance(raw_on, str) or len(raw_on) != 10:
            raise ValueError(raw_on)
        on = date.fromisoformat(raw_on)
    except ValueError as exc:
        raise SandboxError(400, "invalid_request", "on: a date, YYYY-MM-DD") from exc
    return plate, on


def answer_lookup(raw: bytes) -> tuple[Response, bool]:
    """A lookup's answer, and whether it is one the registry logs (every answered lookup is: a 차적조회 is a
    recorded query of personal data, whatever it found). Raises ``SandboxError`` (400; 404 ``not_registered``, which
    is logged too)."""
    plate, on = parse_lookup(raw)
    vehicle = find(plate)
    holder = vehicle.holder_on(on) if vehicle is not None else None
    if vehicle is None or holder is None:
        not_found = SandboxError(404, "not_registered", "no vehicle was registered under this plate on that date")
        return error_json(not_found), True
    answer = {
        "plate": plate,
        "on": on.isoformat(),
        "vehicle": {"type": vehicle.type, "registered_on": vehicle.holders[0].since.isoformat()},
        "owner": holder.owner(),
    }
    return json_response(answer), True


def create_app(key: bytes, *, max_skew: int = MAX_SKEW_S) -> Flask:
    """The sandbox's Flask app; ``key`` is the shared secret, ``max_skew`` the timestamp window in seconds."""
    app = base_app(__name__, 16 * 1024)

    app.register_error_handler(SandboxError, error_json)

    keys = deliveries(app)

    @app.post("/v1/lookups")
    def lookup() -> Response:
        raw = request.get_data(cache=False)
        check_signature(
            key, max_skew, request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER), raw
        )
        return keys.answer(b"POST /v1/lookups\n" + raw, lambda: answer_lookup(raw))

    @app.get("/demo")
    def demo() -> Response:
        """Sandbox only: the scenario plates, for people trying the system (plates only, no owners)."""
        return json_response(
            {
                "vehicles": sorted(demo_vehicles()),
                "transfer": {"plate": TRANSFER_PLATE, "new_owner_from": TRANSFER_DATE.isoformat()},
                "deregistered": {"plate": DEREGISTERED_PLATE, "on": DEREGISTERED_ON.isoformat()},
                "not_registered": sorted(NOT_REGISTERED) + ["any plate whose serial is 0000"],
                "other_plates": "any other well-formed plate has a generated owner registered since 2010-2019",
            }
        )

    return app


# --- process --------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Run the sandbox until interrupted; prints ``registry sandbox on http://host:port`` once it is listening."""
    parser = arg_parser("registry", "Sandbox vehicle registry (차적조회).", 5002)
    parser.add_argument("--key", type=hex_secret("the key"), required=True, help="the shared secret key, hex")
    parser.add_argument("--max-skew", type=int, default=MAX_SKEW_S, help="accepted clock difference, seconds")
    args = parser.parse_args(argv)
    serve(create_app(args.key, max_skew=args.max_skew), args.host, args.port, "registry")


if __name__ == "__main__":
    main()
