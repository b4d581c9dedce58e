"""Every ``/api`` and ``/sync`` route answers bad input with problem+json and a stable ``code``, never a 500
(PROTOCOL.md §0).

The sweep reads ``/openapi.json``: request bodies and query parameters are swept from the document, so a new field is
covered without editing this file. ``ROUTES`` says how to call each route (whose token, which path ids); a route
the document lists and the table does not know fails the sweep, so a new route forces the table to grow.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import httpx
import pytest

import protocol
from tests.support.device import Device, register_device, staff_token

PROBLEM_JSON = "application/problem+json"
SIGN_AS_GATEWAY = "X-Sweep-Sign-As-Gateway"  # replaced by the gateway's HMAC of the body when the case is sent
SIGN_AS_SEN = "X-Sweep-Sign-As-Sen"  # replaced by the treasury bank's SEN timestamp and signature
SWEPT_PREFIXES = ("/api/", "/sync/")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

UNKNOWN_DEVICE_IDS = [
    "00000000-0000-4000-8000-000000000000",  # a well-formed UUID no device has
    "not-a-uuid",
    "%00",  # NUL, which PostgreSQL cannot even compare
    "1" * 300,
]
UNKNOWN_NOTICE_NOS = [
    protocol.format_notice_no("11110", "26", 9_999_999),  # well-formed, valid check digit, never issued
    "111102600000013",  # bad check digit
    "123",
    "not-a-number",
    "%00",
    "9" * 300,
]

UNKNOWN_IDS = ["999999999999", "0", "-1", "not-a-number", "%00", "9" * 300]  # receivable and hold ids


class World:
    """What a route needs to be called by the right person: tokens and real ids, made on first use."""

    def __init__(self, client: httpx.Client, gateway_key: str = "", sen_key: str = "") -> None:
        self.client = client
        self.gateway_key = gateway_key
        self.sen_key = sen_key

    @cached_property
    def admin(self) -> str:
        return staff_token(self.client, "admin")

    @cached_property
    def clerk(self) -> str:
        return staff_token(self.client, "clerk.11110")

    @cached_property
    def device(self) -> Device:
        return Device.enrolled(self.client, "11110")

    @cached_property
    def registered_device_id(self) -> str:
        return register_device(self.client, "11110", "스윕 대상 단말")[0]

    def headers(self, auth: str) -> dict[str, str]:
        if auth == "public":
            return {}
        if auth == "device":
            return dict(self.device.headers)
        if auth == "gateway":
            return {SIGN_AS_GATEWAY: self.gateway_key}
        if auth == "sen":
            return {SIGN_AS_SEN: self.sen_key}
        return {"Authorization": f"Bearer {getattr(self, auth)}"}


@dataclass(frozen=True)
class Route:
    """How the sweep calls one operation: ``auth`` is public, admin, clerk or device; ``path_ids`` give a real value
    for each path parameter, ``unknown_ids`` values that name nothing; ``body`` a valid request body; ``bogus_query``
    wrong values for query parameters beyond the ones the sweep derives from the schema."""

    auth: str
    path_ids: dict[str, Callable[[World], str]] = field(default_factory=dict)
    unknown_ids: dict[str, list[str]] = field(default_factory=dict)
    body: Callable[[World], Any] | None = None
    bogus_query: dict[str, list[str]] = field(default_factory=dict)


ROUTES: dict[tuple[str, str], Route] = {
    # a login that would succeed (officer.11110.2, not admin: no failure may lock out the sweep's own admin)
    ("POST", "/api/v1/auth/login"): Route(
        "public", body=lambda w: {"login": "officer.11110.2", "password": "jingsu-demo"}
    ),
    ("GET", "/api/v1/devices"): Route("admin"),
    ("POST", "/api/v1/devices"): Route("admin", body=lambda w: {"jurisdiction": "11110", "label": "스윕 단말"}),
    ("POST", "/api/v1/devices/{device_id}/enrollment-code"): Route(
        "admin",
        path_ids={"device_id": lambda w: w.registered_device_id},
        unknown_ids={"device_id": UNKNOWN_DEVICE_IDS},
    ),
    ("POST", "/api/v1/devices/{device_id}/revoke"): Route(
        "admin",
        path_ids={"device_id": lambda w: w.registered_device_id},
        unknown_ids={"device_id": UNKNOWN_DEVICE_IDS},
        body=lambda w: {"reason": "분실"},
    ),
    ("GET", "/api/v1/notices"): Route("clerk", bogus_query={"notice_no": ["\x00"], "plate": ["12가\x003456"]}),
    ("GET", "/api/v1/numbers/report"): Route("clerk", bogus_query={"device": ["\x00", "a\x1fb"]}),
    ("GET", "/api/v1/notices/{notice_no}"): Route(
        "clerk",
        path_ids={"notice_no": lambda w: UNKNOWN_NOTICE_NOS[0]},
        unknown_ids={"notice_no": UNKNOWN_NOTICE_NOS},
    ),
    # the review queue: decisions name the notice's version (If-Match); an unknown notice is a 404 before that
    ("GET", "/api/v1/review"): Route("clerk"),
    **{
        ("POST", f"/api/v1/review/{{notice_no}}/{action}"): Route(
            "clerk",
            path_ids={"notice_no": lambda w: UNKNOWN_NOTICE_NOS[0]},
            unknown_ids={"notice_no": UNKNOWN_NOTICE_NOS},
            body=body,
        )
        for action, body in (
            ("confirm", lambda w: {"reason": "검토 완료"}),
            ("cancel", lambda w: {"reason": "직권취소"}),
            ("correct", lambda w: {"reason": "정정", "fields": {"amount": 40_000}}),
        )
    },
    # the hold queue of pushed events and a clerk's force-processing
    ("GET", "/api/v1/sync/held"): Route("clerk"),
    ("POST", "/api/v1/sync/held/{event_id}/process"): Route(
        "clerk",
        path_ids={"event_id": lambda w: UNKNOWN_DEVICE_IDS[0]},
        unknown_ids={"event_id": UNKNOWN_DEVICE_IDS},
        body=lambda w: {"action": "reject", "reason": "시험"},
    ),
    # the fine case after sync (models.fines): an unknown notice is a 404 after the token and the body
    ("GET", "/api/v1/fines/{notice_no}"): Route(
        "clerk",
        path_ids={"notice_no": lambda w: UNKNOWN_NOTICE_NOS[0]},
        unknown_ids={"notice_no": UNKNOWN_NOTICE_NOS},
    ),
    ("GET", "/api/v1/notices/{notice_no}/timeline"): Route(
        "clerk",
        path_ids={"notice_no": lambda w: UNKNOWN_NOTICE_NOS[0]},
        unknown_ids={"notice_no": UNKNOWN_NOTICE_NOS},
    ),
    **{
        ("POST", f"/api/v1/fines/{{notice_no}}/{action}"): Route(
            "clerk",
            path_ids={"notice_no": lambda w: UNKNOWN_NOTICE_NOS[0]},
            unknown_ids={"notice_no": UNKNOWN_NOTICE_NOS},
            body=body,
        )
        for action, body in (
            ("opinions", lambda w: {"summary": "위반 사실이 없습니다"}),
            ("opinion-decision", lambda w: {"decision": "reject", "reason": "이유 없음"}),
            ("hardship", lambda w: {"grounds": ["minor"], "reason": "미성년자"}),
            ("cancel", lambda w: {"reason": "직권취소"}),
            ("imposition-receipt", lambda w: {"received_on": "2026-11-25"}),
            ("objection", lambda w: {"filed_on": "2026-11-25", "reason": "이의제기"}),
            ("objection-withdrawal", lambda w: {"reason": "취하"}),
            ("referral", lambda w: {"court": "서울중앙지방법원", "reason": "법원 통보"}),
            ("court-decision", lambda w: {"outcome": "dismissed", "decided_on": "2026-11-25", "reason": "불처벌"}),
        )
    },
    ("POST", "/api/v1/owner-lookups"): Route("clerk", body=lambda w: {"channel": "mail"}),
    ("POST", "/api/v1/imposition-batches"): Route("clerk", body=lambda w: {"jurisdiction": "11110"}),
    **{
        (method, path): Route(
            "clerk",
            path_ids={"batch_id": lambda w: "999999999"},
            unknown_ids={"batch_id": ["999999999", "abc", "%00", "9" * 300]},
        )
        for method, path in (
            ("GET", "/api/v1/imposition-batches/{batch_id}"),
            ("POST", "/api/v1/imposition-batches/{batch_id}/refresh"),
        )
    },
    ("GET", "/api/v1/court-referrals/overdue"): Route("clerk"),
    # the e-approval service's signed callback: no valid signature in the sweep, so a 401 (or 404 for a wrong name)
    ("POST", "/api/v1/approvals/callbacks/{approval_name}"): Route(
        "public",
        path_ids={"approval_name": lambda w: "sandbox"},
        unknown_ids={"approval_name": ["no-such-service", "%00"]},
    ),
    # arrears (체납): the business date and its steps (admin), a receivable's arrears and holds, the hotlist refresh
    ("GET", "/api/v1/business-date"): Route("clerk"),
    ("POST", "/api/v1/business-date"): Route("admin", body=lambda w: {"business_date": "2030-01-31"}),
    ("POST", "/api/v1/arrears/steps/daily"): Route("admin", body=lambda w: {"business_date": "2026-01-01"}),
    ("POST", "/api/v1/arrears/steps/month"): Route("admin", body=lambda w: {"business_date": "2026-01-01"}),
    ("POST", "/api/v1/arrears/hotlist/refresh"): Route("clerk", body=lambda w: {"jurisdiction": "11110"}),
    ("GET", "/api/v1/receivables/{receivable_id}/arrears"): Route(
        "clerk", path_ids={"receivable_id": lambda w: UNKNOWN_IDS[0]}, unknown_ids={"receivable_id": UNKNOWN_IDS}
    ),
    ("GET", "/api/v1/receivables/{receivable_id}/holds"): Route(
        "clerk", path_ids={"receivable_id": lambda w: UNKNOWN_IDS[0]}, unknown_ids={"receivable_id": UNKNOWN_IDS}
    ),
    ("POST", "/api/v1/receivables/{receivable_id}/holds"): Route(
        "clerk",
        path_ids={"receivable_id": lambda w: UNKNOWN_IDS[0]},
        unknown_ids={"receivable_id": UNKNOWN_IDS},
        body=lambda w: {
            "kind": "installment",
            "starts_on": "2030-01-01",
            "installments": [{"due_on": "2030-02-01", "amount": 20_000}],
            "basis": "분납",
        },
    ),
    ("POST", "/api/v1/holds/{hold_id}/end"): Route(
        "clerk",
        path_ids={"hold_id": lambda w: UNKNOWN_IDS[0]},
        unknown_ids={"hold_id": UNKNOWN_IDS},
        body=lambda w: {"reason": "default"},
    ),
    # suspense payments (미확인 수납): the clerk's list, matching and refunds
    ("GET", "/api/v1/suspense"): Route("clerk", bogus_query={"status": ["lost", "\x00", "open\n"]}),
    ("POST", "/api/v1/suspense/{suspense_id}/match"): Route(
        "clerk",
        path_ids={"suspense_id": lambda w: UNKNOWN_IDS[0]},
        unknown_ids={"suspense_id": UNKNOWN_IDS},
        body=lambda w: {"notice_no": UNKNOWN_NOTICE_NOS[0], "note": "확인"},
    ),
    ("POST", "/api/v1/suspense/{suspense_id}/refund"): Route(
        "clerk",
        path_ids={"suspense_id": lambda w: UNKNOWN_IDS[0]},
        unknown_ids={"suspense_id": UNKNOWN_IDS},
        body=lambda w: {"reason": "미확인", "bank_name": "신한은행", "account_no": "110123456789", "holder": "홍길동"},
    ),
    # bulk print runs (인쇄 차수): a run over nothing to print is fine; downloads of an unknown run are 404
    ("GET", "/api/v1/print-runs"): Route("clerk"),
    ("POST", "/api/v1/print-runs"): Route(
        "clerk",
        body=lambda w: {
            "kind": "advance_notice",
            "jurisdiction": "11110",
            "issued_from": "2020-01-01",
            "issued_to": "2020-01-02",
        },
    ),  # fmt: skip
    **{
        ("GET", f"/api/v1/print-runs/{{run_id}}{suffix}"): Route(
            "clerk", path_ids={"run_id": lambda w: UNKNOWN_IDS[0]}, unknown_ids={"run_id": UNKNOWN_IDS}
        )
        for suffix in ("", "/notices.pdf", "/manifest")
    },
    # the treasury (금고): SEN pushes signed by the bank; the daily file, exceptions and the reconciliation report
    ("POST", "/api/v1/treasury/sen"): Route(
        "sen",
        body=lambda w: {
            "bank_code": "088",
            "receipt_id": "SWEEP-1",
            "kind": "deposit",
            "channel": "bank",
            "reference": "1111026410000001234",
            "amount": 1000,
            "received_at": "2026-11-25T14:00:00+09:00",
        },
    ),
    ("POST", "/api/v1/treasury/files"): Route("admin", body=lambda w: {"name": "x.txt", "content": "H088"}),
    ("GET", "/api/v1/treasury/exceptions"): Route("clerk", bogus_query={"date": ["yesterday", "2026-13-01"]}),
    ("POST", "/api/v1/treasury/exceptions/{exception_id}/resolve"): Route(
        "clerk",
        path_ids={"exception_id": lambda w: UNKNOWN_IDS[0]},
        unknown_ids={"exception_id": UNKNOWN_IDS},
        body=lambda w: {"note": "x"},
    ),
    ("GET", "/api/v1/treasury/reconciliation"): Route("clerk", bogus_query={"date": ["yesterday", "2026-13-01"]}),
    # the outbox (calls to outside systems, dead letters): the list, one row, a dead row's retry and cancellation
    ("GET", "/api/v1/outbox"): Route("clerk"),
    ("GET", "/api/v1/outbox/{outbox_id}"): Route(
        "admin", path_ids={"outbox_id": lambda w: UNKNOWN_IDS[0]}, unknown_ids={"outbox_id": UNKNOWN_IDS}
    ),
    **{
        ("POST", f"/api/v1/outbox/{{outbox_id}}/{action}"): Route(
            "admin",
            path_ids={"outbox_id": lambda w: UNKNOWN_IDS[0]},
            unknown_ids={"outbox_id": UNKNOWN_IDS},
            body=lambda w: {"reason": "레지스트리 복구 후 재전송"},
        )
        for action in ("retry", "cancel")
    },
    ("POST", "/sync/v1/enroll"): Route(
        "public", body=lambda w: {"enrollment_code": "ZZZZ2345", "model": "sweep-pda", "app_version": "1.0"}
    ),
    ("POST", "/sync/v1/session"): Route(
        "public",
        body=lambda w: {
            "device_id": w.device.device_id,
            "device_secret": w.device.device_secret,
            "officer_login": "officer.11110.2",
            "password": "jingsu-demo",
        },
    ),
    ("POST", "/sync/v1/push"): Route("device", body=lambda w: w.device.batch([w.device.issue_parking()])),
    ("GET", "/sync/v1/changes"): Route("device", bogus_query={"cursor": ["not-a-cursor-this-server-made", "\x00"]}),
    # an evidence photo: the body is raw image bytes (no JSON schema to sweep); a path that is no SHA-256 is a 404
    ("PUT", "/sync/v1/attachments/{sha256}"): Route(
        "device",
        path_ids={"sha256": lambda w: "ab" * 32},
        unknown_ids={"sha256": ["abc", "AB" * 32, "g" * 64, "ab" * 32 + "0", "%00", "ab" * 31 + "%0a%0a"]},
    ),
    # the payment gateway's server-to-server callback, signed with the gateway's key
    ("POST", "/api/v1/payments/callbacks/{gateway_name}"): Route(
        "gateway",
        path_ids={"gateway_name": lambda w: "sandbox"},
        unknown_ids={"gateway_name": ["no-such-gateway", "%00"]},
        body=lambda w: {
            "txn_id": "sbx_000000000000000000000000",
            "order_id": "00000000-0000-4000-8000-000000000000",
            "status": "approved",
            "amount": 32000,
            "approved_at": "2026-11-25T05:00:00+00:00",
            "notice_no": protocol.format_notice_no("11110", "26", 9_999_999),
        },
    ),
}


# --- the OpenAPI document ---------------------------------------------------------------------------------------


def swept_operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path) → operation, for every operation under /api and /sync; path-level parameters merged in."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path, item in doc["paths"].items():
        if not path.startswith(SWEPT_PREFIXES):
            continue
        for method, operation in item.items():
            if method.upper() in HTTP_METHODS:
                params = [*item.get("parameters", []), *operation.get("parameters", [])]
                out[(method.upper(), path)] = {**operation, "parameters": params}
    return out


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def body_schema(doc: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {})
    return resolve(doc, content["application/json"]["schema"]) if "application/json" in content else None


def wrong_type(schema: dict[str, Any]) -> Any:
    """A JSON value of another type than ``schema`` asks for."""
    return {"string": 12345, "integer": "abc", "number": "abc", "boolean": "yes", "array": {"not": "a list"}}.get(
        schema.get("type", "object"), "not an object"
    )


def bogus_query_values(schema: dict[str, Any]) -> list[str]:
    """Values a query parameter's schema refuses; none derivable means the sweep must be taught (fails)."""
    values = []
    if schema.get("type") == "integer":
        values += ["abc", "1.5", "0x10"]
    if "enum" in schema:
        values.append("no-such-value")
    if schema.get("format") == "date-time":
        values += ["yesterday", "2026-11-25T14:03:00"]  # the second has no offset
    if "pattern" in schema:
        values.append("!~")
    if "maxLength" in schema:
        values.append("9" * (schema["maxLength"] + 1))
    if schema.get("minLength", 0) >= 1:
        values.append("")
    if "maximum" in schema:
        values.append(str(schema["maximum"] + 1))
    if "minimum" in schema:
        values.append(str(schema["minimum"] - 1))
    return values


# --- cases ------------------------------------------------------------------------------------------------------


JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass
class Case:
    """One request of the sweep and the answer it must get (``status`` None: any 4xx; ``error_field`` must be
    named in ``errors`` when the answer is a 422)."""

    name: str
    path: str
    headers: dict[str, str]
    content: bytes | None = None
    params: dict[str, str] | None = None
    status: int | None = None
    code: str | None = None
    error_field: str | None = None


def dumps(value: Any) -> bytes:
    """JSON bytes; a lone surrogate goes out as the escape ``\\ud800``, which is what a client would send."""
    return json.dumps(value, ensure_ascii=True).encode()


def case(
    name: str, path: str, headers: dict[str, str], body: Any = None, *, raw: bytes | None = None, **expect: Any
) -> Case:
    """A request with a JSON ``body`` (None: no body) or ``raw`` bytes sent as JSON; ``expect``: the answer."""
    if body is not None:
        raw = dumps(body)
    if raw is not None:
        headers = {**headers, **JSON_HEADERS}
    return Case(name, path, headers, raw, **expect)


def refused(name: str, path: str, headers: dict[str, str], body: Any, error_field: str | None) -> Case:
    """A body that is JSON but fails the schema: 422 ``validation_failed`` naming ``error_field``."""
    return case(name, path, headers, body, status=422, code="validation_failed", error_field=error_field)


def malformed(name: str, path: str, headers: dict[str, str], raw: bytes) -> Case:
    """A body that is not JSON: 400 ``malformed_json``."""
    return case(name, path, headers, raw=raw, status=400, code="malformed_json")


def cases_for(
    key: tuple[str, str], route: Route, operation: dict[str, Any], doc: dict[str, Any], w: World
) -> list[Case]:
    method, template = key
    auth = w.headers(route.auth)
    ids = {name: make(w) for name, make in route.path_ids.items()}
    path = template.format(**ids)
    body = route.body(w) if route.body else None
    out: list[Case] = []

    if route.auth == "gateway":
        out.append(case("no signature", path, {}, body, status=401, code="signature_invalid"))
        forged = {"X-Gateway-Signature": "0" * 64}
        out.append(case("a forged signature", path, forged, body, status=401, code="signature_invalid"))
    elif route.auth == "sen":
        out.append(case("no signature", path, {}, body, status=401, code="signature_invalid"))
        forged = {"X-SEN-Timestamp": str(int(time.time())), "X-SEN-Signature": "0" * 64}
        out.append(case("a forged signature", path, forged, body, status=401, code="signature_invalid"))
        stale = {"X-SEN-Timestamp": "1000000000", "X-SEN-Signature": "0" * 64}
        out.append(case("a stale timestamp", path, stale, body, status=401, code="signature_invalid"))
    elif route.auth != "public":
        for name, headers in (("no token", {}), ("a garbage token", {"Authorization": "Bearer not.a.token"})):
            out.append(case(name, path, headers, body, status=401, code="token_invalid"))
    if template.startswith("/sync/"):
        for version in ("2", "abc"):
            headers = {**auth, "Jingsu-Protocol": version}
            out.append(
                case(f"Jingsu-Protocol: {version}", path, headers, body, status=426, code="protocol_unsupported")
            )

    for name, values in route.unknown_ids.items():
        for value in values:
            unknown = template.format(**{**ids, name: value})
            out.append(case(f"unknown {name} {value[:40]!r}", unknown, auth, body, status=404, code="not_found"))

    schema = body_schema(doc, operation)
    if schema is not None:
        out += body_cases(schema, doc, path, auth, body)

    declared = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
    for name, param in declared.items():
        values = bogus_query_values(param.get("schema", {})) + route.bogus_query.get(name, [])
        assert values, f"{method} {template}: no bogus value for query parameter {name!r}; teach the sweep one"
        for value in values:
            expect = {"status": 422, "code": "validation_failed", "error_field": name}
            out.append(case(f"query {name}={value[:40]!r}", path, auth, params={name: value}, **expect))
    if "limit" not in declared:
        # undeclared query parameters are ignored (webargs excludes unknown query fields): anything but a 500
        out.append(case("an undeclared ?limit=abc", path, auth, params={"limit": "abc", "zzz": "\x00"}))
    return out


def body_cases(schema: dict[str, Any], doc: dict[str, Any], path: str, auth: dict[str, str], body: Any) -> list[Case]:
    assert isinstance(body, dict), f"{path}: ROUTES must give a valid JSON object body"
    out = [
        malformed("truncated JSON", path, auth, b'{"a": 1'),
        malformed("trailing garbage", path, auth, b"{} x"),
        malformed("not UTF-8", path, auth, b'{"a": "\xff"}'),
        malformed("UTF-16 JSON (PROTOCOL.md: JSON is UTF-8)", path, auth, json.dumps(body).encode("utf-16")),
        malformed("JSON nested deeper than any parser goes", path, auth, b"[" * 100_000 + b"]" * 100_000),
        refused("no body at all", path, auth, None, None),
        case("body null", path, auth, raw=b"null", status=422, code="validation_failed"),
    ]
    out += [refused(f"body {json.dumps(other)}", path, auth, other, "body") for other in ([], "text", 5)]
    for name in schema.get("required", []):
        out.append(refused(f"{{}} misses {name}", path, auth, {}, name))
        out.append(refused(f"missing {name}", path, auth, {k: v for k, v in body.items() if k != name}, name))
    for name, prop in schema.get("properties", {}).items():
        prop = resolve(doc, prop)
        out.append(refused(f"{name} of the wrong type", path, auth, {**body, name: wrong_type(prop)}, name))
        if prop.get("type") == "string":
            # text PostgreSQL cannot store or UTF-8 cannot encode: any 4xx, naming the field if a 422
            for label, text in (("NUL", "a\x00b"), ("a lone surrogate", "\ud800")):
                out.append(case(f"{label} in {name}", path, auth, {**body, name: text}, error_field=name))
        items = resolve(doc, prop.get("items", {})) if prop.get("type") == "array" else {}
        if items.get("type") == "object" and body.get(name):
            # an array of objects (a push's events): its required members belong to the all-or-nothing envelope
            first = body[name][0]
            for member in items.get("required", []):
                at = f"{name}.0.{member}"
                mistyped = {**first, member: wrong_type(resolve(doc, items["properties"][member]))}
                missing = {k: v for k, v in first.items() if k != member}
                out.append(refused(f"{at} of the wrong type", path, auth, {**body, name: [mistyped]}, at))
                out.append(refused(f"{at} missing", path, auth, {**body, name: [missing]}, at))
    return out


def problems_of(response: httpx.Response, case: Case) -> list[str]:
    """What is wrong with ``response`` as an answer to ``case`` (empty: nothing)."""
    wrong = []
    status = response.status_code
    if case.status is not None and status != case.status:
        wrong.append(f"status {status}, expected {case.status}")
    if not 400 <= status < 500:
        if case.status is None and case.code is None and case.error_field is None and status < 400:
            return []  # an undeclared query parameter was ignored: fine
        return wrong or [f"status {status}, expected a 4xx"]
    if response.headers.get("content-type", "").split(";")[0] != PROBLEM_JSON:
        wrong.append(f"content-type {response.headers.get('content-type')!r}")
        return wrong
    body = response.json()
    for key, kind in (("type", str), ("title", str), ("code", str), ("detail", str), ("status", int)):
        if not isinstance(body.get(key), kind):
            wrong.append(f"no {key} in {body}")
    if body.get("status") != status:
        wrong.append(f"body status {body.get('status')} != {status}")
    code = body.get("code", "")
    if not (isinstance(code, str) and code.replace("_", "").isalpha() and code == code.lower()):
        wrong.append(f"code {code!r} is not stable_snake_case")
    if case.code is not None and code != case.code:
        wrong.append(f"code {code!r}, expected {case.code!r}")
    if "errors" in body and status != 422:
        wrong.append(f"`errors` on a {status} (only validation carries them): {body['errors']}")
    if case.error_field is not None and status == 422 and case.error_field not in body.get("errors", {}):
        wrong.append(f"errors do not name {case.error_field!r}: {body.get('errors')}")
    if "Traceback" in response.text:
        wrong.append("a stack trace in the answer")
    return wrong


def send(client: httpx.Client, method: str, case: Case) -> httpx.Response:
    headers = dict(case.headers)
    key = headers.pop(SIGN_AS_GATEWAY, None)
    if key is not None:
        # the payment gateway signs the exact bytes it sends: a wrong body must get past the signature
        headers["X-Gateway-Signature"] = hmac.new(bytes.fromhex(key), case.content or b"", hashlib.sha256).hexdigest()
    sen_key = headers.pop(SIGN_AS_SEN, None)
    if sen_key is not None:
        # the bank signs "<timestamp>." + the exact bytes it sends (models/treasury/sen.py)
        stamp = str(int(time.time()))
        message = stamp.encode() + b"." + (case.content or b"")
        headers["X-SEN-Timestamp"] = stamp
        headers["X-SEN-Signature"] = hmac.new(sen_key.encode(), message, hashlib.sha256).hexdigest()
    return client.request(method, case.path, content=case.content, headers=headers, params=case.params)


# --- tests ------------------------------------------------------------------------------------------------------


@pytest.fixture
def openapi(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def test_every_api_and_sync_route_in_the_openapi_document_is_in_the_sweep(openapi):
    documented = set(swept_operations(openapi))
    unknown = sorted(documented - set(ROUTES))
    assert not unknown, f"routes the error sweep does not know; add them to ROUTES: {unknown}"
    stale = sorted(set(ROUTES) - documented)
    assert not stale, f"ROUTES entries the OpenAPI document no longer lists: {stale}"


@pytest.mark.parametrize("key", sorted(ROUTES), ids=lambda key: f"{key[0]} {key[1]}")
def test_every_bad_request_gets_a_problem_with_a_stable_code_and_never_a_500(client, openapi, key, test_config):
    operation = swept_operations(openapi).get(key)
    assert operation is not None, f"{key} is not in the OpenAPI document"
    world = World(client, test_config.gateway_key, test_config.sen_key)
    failures = []
    cases = cases_for(key, ROUTES[key], operation, openapi, world)
    for each in cases:
        response = send(client, key[0], each)
        failures += [f"{each.name}: {wrong} — {response.text[:200]}" for wrong in problems_of(response, each)]
    if failures:
        pytest.fail(
            f"{key[0]} {key[1]}: {len(failures)} of {len(cases)} cases answered wrongly:\n" + "\n".join(failures)
        )


def test_a_wrong_method_on_any_api_or_sync_route_is_a_405_problem(client, openapi):
    methods_by_path: dict[str, set[str]] = {}
    for method, path in swept_operations(openapi):
        methods_by_path.setdefault(path, set()).add(method)
    failures = []
    for path, allowed in methods_by_path.items():
        concrete = path.replace("{device_id}", UNKNOWN_DEVICE_IDS[0]).replace("{notice_no}", UNKNOWN_NOTICE_NOS[0])
        for method in sorted(set(HTTP_METHODS) - allowed):
            response = client.request(method, concrete)
            expected = Case(f"{method} {path}", concrete, {}, status=405, code="method_not_allowed")
            failures += [f"{expected.name}: {wrong}" for wrong in problems_of(response, expected)]
    if failures:
        pytest.fail("\n".join(failures))


@pytest.mark.parametrize(
    "path",
    ["/api/v1/no-such-thing", "/api/v2/notices", "/api", "/api/v1/notices/111102600000012/extra", "/sync/v1/nope"],
)
def test_an_unknown_api_or_sync_path_is_a_404_problem(client, path):
    response = client.get(path)
    assert problems_of(response, Case(path, path, {}, status=404, code="not_found")) == []


def set_at(event: dict[str, Any], path: str, value: Any) -> None:
    """``event[a][b]… = value`` for a dotted ``path``."""
    *parents, last = path.split(".")
    for name in parents:
        event = event[name]
    event[last] = value


# Values JSON carries and PostgreSQL or UTF-8 cannot store. In an event's data or notice number they are that
# event's problem (PROTOCOL.md §2: anything wrong inside an event's data → that event rejected, the others go on).
UNSTORABLE_DATA = {
    "NUL in the plate": ("data.vehicle.plate", "12가\x003456"),
    "NUL in the memo": ("data.memo", "memo\x00"),
    "a lone surrogate in the place": ("data.place.address", "\ud800"),
    "an amount beyond bigint": ("data.amount", 2**70),
    "a notice number with NUL": ("notice_no", "\x00"),
}


@pytest.mark.parametrize("what", sorted(UNSTORABLE_DATA))
def test_a_pushed_event_with_unstorable_values_is_rejected_alone_and_the_batch_goes_on(client, what):
    field_path, value = UNSTORABLE_DATA[what]
    device = Device.enrolled(client, "11110")
    bad, good = device.issue_parking(), device.issue_parking(plate="34나5678")
    set_at(bad, field_path, value)
    response = send(client, "POST", case(what, "/sync/v1/push", device.headers, device.batch([bad, good])))
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first["status"] == "rejected"
    assert any(p["field"] == field_path for p in first["problems"]), first["problems"]
    assert second["status"] == "accepted"


# Envelope members of the right JSON type whose value still cannot be stored. A seq must be a bigint, so the batch
# is refused; a type the server cannot store is at best one it does not know (§2: that event rejected) — either
# way the answer names the member, and is never a 500.
UNSTORABLE_ENVELOPE = {
    "a seq beyond bigint": ("seq", 2**70, False),
    "a type with NUL": ("type", "notice.issued\x00", True),
}


@pytest.mark.parametrize("what", sorted(UNSTORABLE_ENVELOPE))
def test_a_push_whose_envelope_cannot_be_stored_is_refused_naming_the_member(client, what):
    member, value, may_reject_the_event = UNSTORABLE_ENVELOPE[what]
    device = Device.enrolled(client, "11110")
    event = device.issue_parking()
    event[member] = value
    response = send(client, "POST", case(what, "/sync/v1/push", device.headers, device.batch([event])))
    if may_reject_the_event and response.status_code == 200:
        (result,) = response.json()["results"]
        assert result["status"] == "rejected"
        assert [p["field"] for p in result["problems"]] == [member]
    else:
        expected = Case(
            what, "/sync/v1/push", {}, status=422, code="validation_failed", error_field=f"events.0.{member}"
        )
        assert problems_of(response, expected) == []
