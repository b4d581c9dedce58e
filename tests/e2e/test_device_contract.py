"""The wire contract of sync protocol v1 (PROTOCOL.md §0 errors and headers, §1 enrollment and sign-in, §3 pull),
checked against a real gunicorn server over HTTP, the way a device other than ``pda_client`` would see it.

Two servers are shared by the module: ``server`` with the default settings and ``configured_server`` with small number
blocks, a pay base URL written with a trailing slash and a database session in Asia/Seoul time. Tests make their own
devices, except that ``reader`` is shared by tests that only read with it. Server-wide state: the lockout test locks
``officer.11680.2``, the epoch test bumps the epoch of ``server`` and the floor test raises and restores its feed
floor; no other test relies on any of these.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jwt
import psycopg
import pytest

import protocol
from server.config import ROOT
from tests.conftest import TEST_JWT_SECRET, DbAdmin, LiveServer, libpq_url
from tests.support.device import DEMO_PASSWORD, Device, register_device, staff_token

T = TypeVar("T")

PROBLEM_JSON = "application/problem+json"
MIB = 1024 * 1024
SYNC_ROUTES = [("GET", "/sync/v1/changes"), ("POST", "/sync/v1/push")]
CONFIGURED_ENV = {
    "JINGSU_BLOCK_SIZE": "5",
    "JINGSU_PAY_BASE_URL": "https://pay.example.test/",
    "PGTZ": "Asia/Seoul",  # libpq: the server's database sessions are not in UTC
}


# --- fixtures and helpers ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(module_live_server: LiveServer) -> LiveServer:
    return module_live_server


@pytest.fixture(scope="module")
def configured_server(
    db_admin: DbAdmin, _template_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """Like ``module_live_server``, with ``CONFIGURED_ENV``."""
    name = db_admin.create("jingsu_m_", template=_template_name)
    live = LiveServer(db_admin.url_for(name), tmp_path_factory.mktemp("live"), env=CONFIGURED_ENV)
    try:
        yield live.start()
    finally:
        live.stop()
        db_admin.drop(name)


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


@pytest.fixture
def configured_client(configured_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=configured_server.url, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def admin_token(server: LiveServer) -> str:
    """A staff token of ``admin`` (valid an hour: longer than the module runs)."""
    with httpx.Client(base_url=server.url, timeout=10) as c:
        return staff_token(c, "admin")


@pytest.fixture
def admin(admin_token: str) -> dict[str, str]:
    return bearer(admin_token)


@pytest.fixture(scope="module")
def reader(server: LiveServer, admin_token: str) -> Iterator[Device]:
    """An enrolled, signed-in 11110 device that has pulled once; tests may pull and push empty batches with it."""
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield Device.enrolled(c, admin_token=admin_token)


@pytest.fixture
def new_device(client: httpx.Client, admin_token: str) -> Callable[..., Device]:
    """``new_device(jurisdiction="11110", officer=None)``: enrolled, signed in, pulled once."""

    def make(jurisdiction: str = "11110", officer: str | None = None) -> Device:
        return Device.enrolled(client, jurisdiction, officer, admin_token=admin_token)

    return make


@pytest.fixture
def new_code(client: httpx.Client, admin_token: str) -> Callable[..., tuple[str, str]]:
    """``new_code(jurisdiction="11110")`` -> (device_id, enrollment_code) of a freshly registered device."""

    def make(jurisdiction: str = "11110") -> tuple[str, str]:
        return register_device(client, jurisdiction, admin_token=admin_token)

    return make


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The answer is the §0 problem+json with this status and code; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, f"{text} has no UTC offset"
    return moment


def enrolled_without_pull(client: httpx.Client, jurisdiction: str = "11110", admin_token: str | None = None) -> Device:
    _, code = register_device(client, jurisdiction, admin_token=admin_token)
    device = Device(client)
    assert device.enroll(code).status_code == 201
    return device


def forge_token(
    device: Device,
    *,
    secret: str = TEST_JWT_SECRET,
    expires_in: timedelta = timedelta(hours=1),
    jurisdiction: str | None = None,
) -> str:
    """A device token made outside the server (the server signs HS256 with ``JINGSU_JWT_SECRET``)."""
    now = datetime.now(UTC)
    claims = {
        "sub": str(device.officer_id),
        "login": "officer.11110.1",
        "role": "officer",
        "jur": jurisdiction or device.jurisdiction,
        "typ": "device",
        "iat": int((now + expires_in - timedelta(hours=12)).timestamp()),
        "exp": int((now + expires_in).timestamp()),
        "jti": uuid.uuid4().hex,
        "dev": device.device_id,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def empty_batch() -> dict[str, Any]:
    return {"batch_id": str(uuid.uuid4()), "device_time": datetime.now(UTC).isoformat(), "events": []}


def batch_of(count: int) -> bytes:
    """A well-formed batch of ``count`` events (their data need not be valid: size is refused before it is read)."""
    events: list[dict[str, Any]] = [
        {"event_id": str(uuid.uuid4()), "seq": n, "type": "notice.issued", "notice_no": None, "data": {}}
        for n in range(1, count + 1)
    ]
    return json.dumps({**empty_batch(), "events": events}).encode()


def padded_batch(size: int) -> bytes:
    """An empty, valid batch padded with JSON whitespace to exactly ``size`` bytes."""
    body = json.dumps(empty_batch()).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def sync_call(
    client: httpx.Client, method: str, path: str, headers: dict[str, str], content: bytes | None = None
) -> httpx.Response:
    if method == "POST":
        content = json.dumps(empty_batch()).encode() if content is None else content
        return client.post(path, content=content, headers={"Content-Type": "application/json", **headers})
    return client.get(path, headers=headers)


def sql(server: LiveServer, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the server's own database, autocommitted (an open transaction would hold the feed)."""
    with psycopg.connect(libpq_url(server.db_url), autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def eventually(fetch: Callable[[], T], ready: Callable[[T], bool], timeout: float = 30.0) -> T:
    """``fetch()`` until ``ready``: the feed serves a commit once every older transaction of the cluster has ended
    (``pg_snapshot_xmin``), and other test runs may share the PostgreSQL cluster."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ready(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def page(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"epoch", "next_cursor", "has_more", "changes"}
    return body


def of(changes: list[dict[str, Any]], entity: str) -> dict[str, dict[str, Any]]:
    """The changes of one entity by key."""
    return {c["key"]: c for c in changes if c["entity"] == entity}


def has_status(notice_no: str, status: str = "issued") -> Callable[[dict[str, Any]], bool]:
    def ready(body: dict[str, Any]) -> bool:
        change = of(body["changes"], "notice_status").get(notice_no)
        return change is not None and change["data"]["status"] == status

    return ready


def canonical(change: dict[str, Any]) -> str:
    return json.dumps(change, sort_keys=True, ensure_ascii=False)


# --- §1 enrollment -----------------------------------------------------------------------------------------------


def test_an_admin_registers_a_device_and_gets_a_one_use_code_of_eight_characters_for_24_hours(client, admin, server):
    response = client.post("/api/v1/devices", json={"jurisdiction": "11110", "label": "주차단속 3호기"}, headers=admin)

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"device_id", "enrollment_code"}
    uuid.UUID(body["device_id"])
    assert re.fullmatch(r"[A-Z0-9]{8}", body["enrollment_code"])
    [(ttl,)] = sql(server, "SELECT enrollment_expires_at - now() FROM devices WHERE id = %s", (body["device_id"],))
    assert timedelta(hours=23, minutes=59) < ttl <= timedelta(hours=24)


def test_enrollment_returns_the_secret_qr_key_pay_base_url_jurisdiction_server_time_and_epoch(client, server, new_code):
    device_id, code = new_code()

    response = client.post(
        "/sync/v1/enroll", json={"enrollment_code": code, "model": "SM-T575", "app_version": "1.0.0"}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"device_id", "device_secret", "qr_key", "pay_base_url", "jurisdiction", "server_time", "epoch"}
    assert body["device_id"] == device_id
    assert isinstance(body["device_secret"], str) and len(body["device_secret"]) >= 32
    assert re.fullmatch(r"[0-9a-fA-F]{64}", body["qr_key"])
    assert body["pay_base_url"] == server.url
    assert body["jurisdiction"] == "11110"
    assert abs(aware(body["server_time"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert isinstance(body["epoch"], str) and body["epoch"]


def test_the_pay_base_url_is_given_without_its_trailing_slash(configured_client):
    device = enrolled_without_pull(configured_client)
    device.login("officer.11110.1")

    settings = of(page(device.pull())["changes"], "device_settings")["settings"]["data"]

    assert device.pay_base_url == "https://pay.example.test"
    assert settings["pay_base_url"] == "https://pay.example.test"


def test_a_used_an_expired_and_an_unknown_code_get_one_identical_answer(client, server, new_code):
    _, used = new_code()
    assert Device(client).enroll(used).status_code == 201
    expiring_id, expired = new_code()
    sql(
        server,
        "UPDATE devices SET enrollment_expires_at = now() - interval '1 second' WHERE id = %s",
        (expiring_id,),
    )

    answers = [Device(client).enroll(code) for code in (used, expired, "ZZZZ9999")]

    for response in answers:
        assert_problem(response, 409, "enrollment_code_invalid")
    assert answers[0].content == answers[1].content == answers[2].content
    assert (
        answers[0].headers["content-type"] == answers[1].headers["content-type"] == answers[2].headers["content-type"]
    )


def test_re_enrolling_gives_a_new_secret_and_qr_key_and_the_old_secret_stops_working(client, admin, new_device):
    old = new_device()

    response = client.post(f"/api/v1/devices/{old.device_id}/enrollment-code", headers=admin)
    assert response.status_code == 201, response.text
    new = Device(client)
    assert new.enroll(response.json()["enrollment_code"]).status_code == 201

    assert new.device_id == old.device_id
    assert new.device_secret != old.device_secret
    assert new.qr_key != old.qr_key and re.fullmatch(r"[0-9a-fA-F]{64}", new.qr_key)
    assert_problem(old.sign_in("officer.11110.1"), 401, "invalid_credentials")
    assert new.sign_in("officer.11110.1").status_code == 200


def test_qrs_signed_with_an_earlier_qr_key_stay_verifiable_after_re_enrolling(client, admin, new_device):
    old = new_device()
    synced = old.issue_parking()
    assert old.push_ok([synced])["results"][0]["status"] == "accepted"
    unsynced_no = old.next_number()
    am = old.amounts("P01", "car", datetime.now(protocol.SEOUL))
    unsynced_qr = protocol.qr_url(
        old.pay_base_url, old.qr_key, unsynced_no, am.amount, am.reduced_amount, am.opinion_deadline
    )
    code = client.post(f"/api/v1/devices/{old.device_id}/enrollment-code", headers=admin).json()["enrollment_code"]
    new = Device(client)
    assert new.enroll(code).status_code == 201
    assert new.qr_key != old.qr_key

    for qr in (synced["data"]["qr"], unsynced_qr):
        response = client.get(qr)
        assert response.status_code == 200, (qr, response.text)
        assert response.headers["content-type"].startswith("text/html")
        assert f"{am.amount:,}원" in response.text
    forged = protocol.qr_url(new.pay_base_url, "ab" * 32, unsynced_no, am.amount, am.reduced_amount, date(2030, 1, 1))
    refused = client.get(forged)
    assert refused.status_code == 403
    assert f"{am.amount:,}원" not in refused.text


# --- §1 sign-in --------------------------------------------------------------------------------------------------


def test_an_officer_signs_in_for_one_shift_and_is_told_who_they_are(client, admin_token):
    device = enrolled_without_pull(client, admin_token=admin_token)

    response = device.sign_in("officer.11110.1")

    assert response.status_code == 200, response.text
    body = response.json()
    assert {"access_token", "expires_in", "officer", "server_time", "epoch"} <= set(body)
    assert isinstance(body["access_token"], str) and body["access_token"]
    assert body["expires_in"] == 43200
    assert set(body["officer"]) == {"id", "name", "jurisdiction"}
    assert isinstance(body["officer"]["id"], int)
    assert body["officer"]["name"] == "김단속"
    assert body["officer"]["jurisdiction"] == "11110"
    assert body["epoch"] == device.epoch
    assert abs(aware(body["server_time"]) - datetime.now(UTC)) < timedelta(minutes=1)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 43200


def test_a_wrong_password_an_unknown_officer_or_a_wrong_device_secret_is_invalid_credentials(client, admin_token):
    device = enrolled_without_pull(client, admin_token=admin_token)
    wrong_secret = Device(client, device_id=device.device_id, device_secret="not-the-secret")
    unknown_device = Device(client, device_id=str(uuid.uuid4()), device_secret=device.device_secret)

    answers = [
        device.sign_in("officer.11110.2", "wrong-password"),
        device.sign_in("officer.99999.9", DEMO_PASSWORD),
        wrong_secret.sign_in("officer.11110.2"),
        unknown_device.sign_in("officer.11110.2"),
    ]

    for response in answers:
        assert_problem(response, 401, "invalid_credentials")


def test_an_officer_of_another_jurisdiction_is_forbidden_on_the_device(client, admin_token):
    device = enrolled_without_pull(client, "11110", admin_token)

    assert_problem(device.sign_in("officer.11680.1"), 403, "forbidden_jurisdiction")


def test_five_failures_lock_the_officer_so_that_even_the_right_password_is_rate_limited(client, admin_token):
    device = enrolled_without_pull(client, "11680", admin_token)

    for _ in range(5):
        assert_problem(device.sign_in("officer.11680.2", "wrong-password"), 401, "invalid_credentials")

    assert_problem(device.sign_in("officer.11680.2", DEMO_PASSWORD), 429, "rate_limited")


# --- §1 revocation -----------------------------------------------------------------------------------------------


def test_revoking_a_device_cancels_its_unused_numbers_and_answers_the_same_revoked_at_twice(client, admin, new_device):
    device = new_device()
    assert len(device.numbers) == 1000
    body = device.push_ok([device.issue_parking(plate="12가1001"), device.issue_parking(plate="12가1002")])
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted"]

    first = client.post(f"/api/v1/devices/{device.device_id}/revoke", json={"reason": "분실"}, headers=admin)
    second = client.post(f"/api/v1/devices/{device.device_id}/revoke", json={"reason": "분실"}, headers=admin)

    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {"device_id", "revoked_at", "cancelled_numbers"}
    assert body["device_id"] == device.device_id
    assert abs(aware(body["revoked_at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert body["cancelled_numbers"] == 998
    assert second.status_code == 200, second.text
    assert second.json() == body


def test_a_second_revocation_answers_the_same_revoked_at_whatever_the_database_time_zone(configured_client):
    device = Device.enrolled(configured_client)
    admin = bearer(staff_token(configured_client, "admin"))
    path = f"/api/v1/devices/{device.device_id}/revoke"

    first = configured_client.post(path, json={"reason": "분실"}, headers=admin)
    second = configured_client.post(path, json={"reason": "분실"}, headers=admin)

    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["cancelled_numbers"] == 10
    assert second.json() == first.json()


def test_a_revoked_device_is_refused_everything_even_with_its_unexpired_token(client, admin, new_device):
    device = new_device()
    cursor = device.cursor
    response = client.post(f"/api/v1/devices/{device.device_id}/revoke", json={"reason": "도난"}, headers=admin)
    assert response.status_code == 200, response.text
    assert jwt.decode(device.token, options={"verify_signature": False})["exp"] > time.time()

    assert_problem(device.push([device.issue_parking()]), 403, "device_revoked")
    assert_problem(device.pull(cursor), 403, "device_revoked")
    assert_problem(device.pull(), 403, "device_revoked")
    assert_problem(device.sign_in("officer.11110.1"), 403, "device_revoked")


# --- §0 tokens ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), SYNC_ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-token", "Basic b2ZmaWNlcjpqaW5nc3U=", "Bearer a.b.c"],
    ids=["missing", "empty", "malformed", "not-bearer", "not-jwt"],
)
def test_a_missing_or_malformed_token_is_token_invalid(client, method, path, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}

    assert_problem(sync_call(client, method, path, headers), 401, "token_invalid")


@pytest.mark.parametrize(("method", "path"), SYNC_ROUTES)
def test_a_token_signed_with_another_secret_is_token_invalid(client, reader, method, path):
    token = forge_token(reader, secret="0" * 64)

    assert_problem(sync_call(client, method, path, bearer(token)), 401, "token_invalid")


@pytest.mark.parametrize(("method", "path"), SYNC_ROUTES)
def test_a_token_of_the_server_is_accepted_until_it_expires_then_token_invalid(client, reader, method, path):
    fresh = forge_token(reader, expires_in=timedelta(hours=1))
    expired = forge_token(reader, expires_in=timedelta(seconds=-5))

    assert sync_call(client, method, path, bearer(fresh)).status_code == 200
    assert_problem(sync_call(client, method, path, bearer(expired)), 401, "token_invalid")


@pytest.mark.parametrize(("method", "path"), SYNC_ROUTES)
def test_a_staff_token_is_not_a_device_token(client, admin_token, method, path):
    assert_problem(sync_call(client, method, path, bearer(admin_token)), 401, "token_invalid")


def test_a_token_whose_officer_is_of_another_jurisdiction_than_the_device_is_forbidden(client, reader):
    token = forge_token(reader, jurisdiction="11680")

    assert_problem(sync_call(client, "GET", "/sync/v1/changes", bearer(token)), 403, "forbidden_jurisdiction")


# --- §0 protocol version and size --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [*SYNC_ROUTES, ("POST", "/sync/v1/enroll"), ("POST", "/sync/v1/session")],
)
def test_an_unknown_protocol_major_version_is_refused_with_426_even_without_a_token(client, method, path):
    assert_problem(sync_call(client, method, path, {"Jingsu-Protocol": "2"}), 426, "protocol_unsupported")


def test_a_missing_protocol_header_means_version_1(client, reader):
    assert client.get("/sync/v1/changes", headers=bearer(reader.token)).status_code == 200
    assert client.get("/sync/v1/changes", headers=reader.headers).status_code == 200


def test_a_push_of_501_events_is_batch_too_large_even_without_a_token(client):
    response = sync_call(client, "POST", "/sync/v1/push", {}, batch_of(501))

    assert_problem(response, 413, "batch_too_large")


def test_a_push_body_over_2_mib_is_batch_too_large_even_without_a_token(client):
    response = sync_call(client, "POST", "/sync/v1/push", {}, padded_batch(2 * MIB + 1))

    assert_problem(response, 413, "batch_too_large")


def test_a_chunked_push_body_over_2_mib_is_batch_too_large(client):
    body = padded_batch(2 * MIB + 1)
    chunks = (body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024))

    response = client.post("/sync/v1/push", content=chunks, headers={"Content-Type": "application/json"})

    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "batch_too_large")


def test_a_push_of_exactly_2_mib_is_not_too_large(client, reader):
    response = sync_call(client, "POST", "/sync/v1/push", reader.headers, padded_batch(2 * MIB))

    assert response.status_code == 200, response.text
    assert response.json()["results"] == []


# --- §0 refusal order: 426 version, 413 size, 401 token, 403 revoked, 403 jurisdiction, 422/400 validation ------


def test_a_bad_version_wins_over_a_too_large_batch(client):
    response = sync_call(client, "POST", "/sync/v1/push", {"Jingsu-Protocol": "2"}, padded_batch(2 * MIB + 1))

    assert_problem(response, 426, "protocol_unsupported")


def test_a_too_large_batch_wins_over_a_missing_or_bad_token(client):
    assert_problem(sync_call(client, "POST", "/sync/v1/push", {}, batch_of(501)), 413, "batch_too_large")
    assert_problem(
        sync_call(client, "POST", "/sync/v1/push", bearer("not-a-token"), padded_batch(2 * MIB + 1)),
        413,
        "batch_too_large",
    )


def test_a_missing_token_wins_over_malformed_json(client):
    assert_problem(sync_call(client, "POST", "/sync/v1/push", {}, b'{"batch_id": '), 401, "token_invalid")


def test_a_revoked_device_wins_over_malformed_json_and_the_officers_jurisdiction(client, admin, new_device):
    device = new_device()
    client.post(f"/api/v1/devices/{device.device_id}/revoke", json={"reason": "분실"}, headers=admin)
    other_jurisdiction = forge_token(device, jurisdiction="11680")

    assert_problem(sync_call(client, "POST", "/sync/v1/push", device.headers, b'{"batch_id": '), 403, "device_revoked")
    assert_problem(sync_call(client, "GET", "/sync/v1/changes", bearer(other_jurisdiction)), 403, "device_revoked")


def test_a_valid_token_with_a_malformed_json_body_is_malformed_json(client, reader):
    for body in (b'{"batch_id": ', b"\xff\xfe not utf-8", b"not json at all"):
        response = sync_call(client, "POST", "/sync/v1/push", reader.headers, body)
        assert_problem(response, 400, "malformed_json")


def test_malformed_json_on_enrollment_and_sign_in_is_malformed_json(client):
    for path in ("/sync/v1/enroll", "/sync/v1/session"):
        response = client.post(path, content=b"{not json", headers={"Content-Type": "application/json"})
        assert_problem(response, 400, "malformed_json")


# --- §3 pull -----------------------------------------------------------------------------------------------------


def test_a_first_pull_without_cursor_delivers_the_devices_whole_scope(server, new_device):
    device = new_device()
    event = device.issue_parking()
    device.push_ok([event])

    body = eventually(lambda: page(device.pull()), has_status(event["notice_no"]))
    changes = body["changes"]

    assert body["has_more"] is False
    assert body["epoch"] == device.epoch
    assert {c["entity"] for c in changes} == {
        "violation_code",
        "fine_schedule",
        "zone",
        "officer",
        "device_settings",
        "number_block",
        "notice_status",
    }
    assert all(c["op"] in ("upsert", "delete") for c in changes)
    codes = of(changes, "violation_code")
    assert set(codes) >= {"P01", "P02", "P03", "P04", "P05", "S01"}
    assert set(codes["P01"]["data"]) >= {
        "code",
        "name",
        "kind",
        "revenue_item",
        "dedupe_window_min",
        "dedupe_distance_m",
    }
    assert codes["S01"]["data"]["kind"] == "person"
    settings = of(changes, "device_settings")["settings"]
    assert settings["op"] == "upsert"
    assert settings["data"]["pay_base_url"] == server.url
    assert settings["data"]["printer_width_mm"] == 80
    assert settings["data"]["retention_days"] == 30
    assert settings["data"]["tombstone_days"] == 90
    status = of(changes, "notice_status")[event["notice_no"]]
    assert status["data"] == {"notice_no": event["notice_no"], "status": "issued", "version": 1}


def test_the_fine_schedule_is_effective_dated_with_exact_decimal_rates(reader):
    schedule = of(page(reader.pull())["changes"], "fine_schedule")

    assert schedule["P03:car:-@2021-05-11"]["data"] == {
        "code": "P03",
        "vehicle_type": "car",
        "amount": 120000,
        "reduction_rate": "0.20",
        "rounding_unit": 10,
        "opinion_days": 14,
        "valid_from": "2021-05-11",
    }
    assert schedule["P03:car:-@2008-06-22"]["data"] == {
        "code": "P03",
        "vehicle_type": "car",
        "amount": 80000,
        "reduction_rate": "0.20",
        "rounding_unit": 10,
        "opinion_days": 14,
        "valid_from": "2008-06-22",
        "valid_to": "2021-05-11",
    }
    assert schedule["S01:-:-@2008-06-22"]["data"]["amount"] == 100000
    assert "vehicle_type" not in schedule["S01:-:-@2008-06-22"]["data"]
    for key, change in schedule.items():
        data = change["data"]
        assert key == protocol.schedule_key(
            data["code"], data.get("vehicle_type"), data.get("zone"), date.fromisoformat(data["valid_from"])
        )
        assert isinstance(data["reduction_rate"], str)


def test_zones_and_officers_are_only_those_of_the_devices_jurisdiction(reader, new_device):
    gangnam = new_device("11680")

    jongno_changes = page(reader.pull())["changes"]
    gangnam_changes = page(gangnam.pull())["changes"]

    assert set(of(jongno_changes, "zone")) == {"Z11110-001", "Z11110-002", "Z11110-003"}
    assert set(of(gangnam_changes, "zone")) == {"Z11680-001", "Z11680-002"}
    assert of(jongno_changes, "zone")["Z11110-001"]["data"] == {
        "id": "Z11110-001",
        "name": "종로초등학교 앞 어린이보호구역",
        "kind": "school",
    }
    assert {c["data"]["name"] for c in of(jongno_changes, "officer").values()} == {"김단속", "이단속"}
    assert {c["data"]["name"] for c in of(gangnam_changes, "officer").values()} == {"박단속", "최단속"}
    assert of(jongno_changes, "officer")[str(reader.officer_id)]["data"] == {"id": reader.officer_id, "name": "김단속"}


def test_a_first_pull_allocates_exactly_two_blocks_of_500_numbers(client, admin_token):
    device = enrolled_without_pull(client, admin_token=admin_token)
    device.login("officer.11110.1")

    blocks = of(page(device.pull())["changes"], "number_block")

    assert len(blocks) == 2
    serials = []
    for key, change in blocks.items():
        data = change["data"]
        assert change["op"] == "upsert"
        assert key.isdigit()
        assert set(data) >= {"first", "last", "count", "expires_at"}
        assert data["count"] == 500
        assert re.fullmatch(r"11110\d{10}", data["first"]) and re.fullmatch(r"11110\d{10}", data["last"])
        first, last = protocol.parse_notice_no(data["first"]), protocol.parse_notice_no(data["last"])
        assert first is not None and last is not None, data
        assert last.serial - first.serial + 1 == 500
        assert aware(data["expires_at"]) > datetime.now(UTC)
        serials.append((first.serial, last.serial))
    (_, a_last), (b_first, _) = sorted(serials)
    assert a_last < b_first


def test_paging_with_a_small_limit_walks_everything_once_and_matches_one_big_page(reader):
    whole = page(reader.pull())
    walked: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        body = page(reader.pull(cursor, limit=3))
        logged = [c for c in body["changes"] if c["entity"] not in ("device_settings", "number_block")]
        assert len(logged) <= 3
        walked.extend(body["changes"])
        cursor, pages = body["next_cursor"], pages + 1
        if not body["has_more"]:
            break
        assert len(logged) == 3

    assert whole["has_more"] is False
    assert pages >= 5
    assert len({canonical(c) for c in walked}) == len(walked)
    assert walked == whole["changes"]
    assert cursor == whole["next_cursor"]


def test_an_empty_last_page_returns_the_cursor_it_was_sent(reader):
    cursor = page(reader.pull())["next_cursor"]

    body = page(reader.pull(cursor))

    assert body["changes"] == []
    assert body["has_more"] is False
    assert body["next_cursor"] == cursor


def test_a_limit_above_1000_is_clamped_not_refused(reader):
    whole = page(reader.pull())
    clamped = page(reader.pull(limit=1001))
    huge = page(reader.pull(limit=10**30))

    assert clamped["changes"] == whole["changes"] == huge["changes"]
    assert clamped["has_more"] is huge["has_more"] is False


def test_using_up_a_block_tops_the_device_up_in_the_same_pull(configured_client):
    device = enrolled_without_pull(configured_client)
    device.login("officer.11110.1")
    blocks = {k: c["data"] for k, c in of(device.pull_all(), "number_block").items()}
    assert len(blocks) == 2 and all(b["count"] == 5 for b in blocks.values())
    first_block = min(blocks, key=int)
    events = [device.issue_parking(plate=f"12가{3000 + n}") for n in range(5)]
    assert {e["notice_no"] for e in events} == set(numbers_of(blocks[first_block]))
    assert [r["status"] for r in device.push_ok(events)["results"]] == ["accepted"] * 5

    body = page(device.pull(device.cursor))

    new_blocks = {k: c["data"] for k, c in of(body["changes"], "number_block").items()}
    assert len(new_blocks) == 1
    new_key, new_block = next(iter(new_blocks.items()))
    assert new_key not in blocks and new_block["count"] == 5
    assert not set(numbers_of(new_block)) & {n for b in blocks.values() for n in numbers_of(b)}
    used = {e["notice_no"] for e in events}
    now = datetime.now(UTC)
    live = {
        k for k, b in {**blocks, **new_blocks}.items() if set(numbers_of(b)) - used and aware(b["expires_at"]) > now
    }
    assert live == set(blocks) - {first_block} | {new_key}
    assert of(page(device.pull(body["next_cursor"]))["changes"], "number_block") == {}


def numbers_of(block: dict[str, Any]) -> list[str]:
    first = protocol.parse_notice_no(block["first"])
    assert first is not None
    serials = range(first.serial, first.serial + block["count"])
    return [protocol.format_notice_no(first.jurisdiction, first.year2, serial) for serial in serials]


def test_notice_status_is_delivered_for_the_devices_own_notices_only(new_device):
    mine = new_device()
    other = new_device()
    theirs = other.issue_parking(plate="34나5678")
    other.push_ok([theirs])
    own = mine.issue_parking(plate="56다7890")
    mine.push_ok([own])

    body = eventually(lambda: page(mine.pull()), has_status(own["notice_no"]))
    other_body = eventually(lambda: page(other.pull()), has_status(theirs["notice_no"]))

    assert set(of(body["changes"], "notice_status")) == {own["notice_no"]}
    assert set(of(other_body["changes"], "notice_status")) == {theirs["notice_no"]}


def test_notice_status_follows_every_change_of_the_devices_notice(new_device):
    device = new_device()
    event = device.issue_parking()
    device.push_ok([event])
    eventually(device.pull_all, lambda seen: has_status(event["notice_no"])({"changes": seen}))

    device.push_ok([device.void(event["notice_no"], "driver_returned")])
    changes = eventually(device.pull_all, bool)

    assert of(changes, "notice_status")[event["notice_no"]]["data"] == {
        "notice_no": event["notice_no"],
        "status": "voided",
        "version": 2,
    }


def test_a_cursor_from_another_epoch_requires_a_reset_then_a_pull_from_no_cursor_works(server, new_device):
    device = new_device()
    old_cursor, old_epoch = device.cursor, device.epoch

    bump = subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "bump-epoch"],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bump.returncode == 0, bump.stderr

    assert_problem(device.pull(old_cursor), 409, "reset_required")
    fresh = page(device.pull())
    assert fresh["epoch"] != old_epoch
    assert fresh["epoch"] in bump.stdout
    assert of(fresh["changes"], "fine_schedule")
    assert page(device.pull(fresh["next_cursor"]))["changes"] == []
    assert device.sign_in("officer.11110.1").json()["epoch"] == fresh["epoch"]


def test_a_cursor_older_than_the_feed_keeps_requires_a_reset(server, reader):
    cursor = page(reader.pull())["next_cursor"]
    sql(server, "UPDATE server_state SET feed_floor_id = (SELECT max(id) + 1 FROM change_log)")
    try:
        assert_problem(reader.pull(cursor), 409, "reset_required")
    finally:
        sql(server, "UPDATE server_state SET feed_floor_id = 0")


def encoded(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "make_cursor",
    [
        lambda epoch: "garbage",
        lambda epoch: encoded("not-a-cursor"),
        lambda epoch: encoded([1, 2]),
        lambda epoch: encoded({"epoch": epoch}),
        lambda epoch: encoded([epoch, 0, -1, 0, ""]),
        lambda epoch: encoded([epoch, 0, 0, 2**63, ""]),
        lambda epoch: encoded([epoch, 2**64, 0, 0, ""]),
    ],
    ids=["text", "string", "short-list", "object", "negative", "block-beyond-bigint", "txid-beyond-bigint"],
)
def test_a_garbage_cursor_is_validation_failed(reader, make_cursor):
    epoch = page(reader.pull())["epoch"]  # the current one: the value alone must be what is refused

    body = assert_problem(reader.pull(make_cursor(epoch)), 422, "validation_failed")

    assert "cursor" in body.get("errors", {})
