"""Jurisdiction isolation on every notice route (DESIGN.md §7): a district clerk sees only that district — another
district's notice is ``not_found``, exactly like a number that was never issued — while the district's own clerk and
city roles see it. Every notice route in ``/openapi.json`` must be tried here. The outbox (``/api/v1/outbox``) is
held to the same rule: a district's calls to outside systems are seen and acted on by its own clerks and city staff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

import protocol
from tests.support.device import Device, staff_token

PLATE = "98마7654"

NEVER_ISSUED = protocol.format_notice_no("11110", "26", 9_999_999)


@dataclass
class Issued:
    """What an 11110 device issued and pushed."""

    parking: str
    person: str


@pytest.fixture
def issued(client: httpx.Client) -> Issued:
    device = Device.enrolled(client, "11110")
    parking, person = device.issue_parking(plate=PLATE), device.issue_person(name="김종로")
    body = device.push_ok([parking, person])
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted"]
    return Issued(parking=parking["notice_no"], person=person["notice_no"])


def bearer(client: httpx.Client, login: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(client, login)}"}


def list_numbers(client: httpx.Client, headers: dict[str, str], **params: Any) -> list[str]:
    """Every notice number the list shows for ``params``, following ``next`` to the end."""
    numbers: list[str] = []
    query = {**params, "limit": 500}
    while True:
        response = client.get("/api/v1/notices", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        numbers += [item["notice_no"] for item in page["items"]]
        if page["next"] is None:
            return numbers
        query["after"] = page["next"]


# --- what each notice route shows a caller: the numbers of ``issued`` it reveals --------------------------------


def seen_in_the_list(client: httpx.Client, headers: dict[str, str], issued: Issued) -> set[str]:
    mine = {issued.parking, issued.person}
    seen = set(list_numbers(client, headers)) & mine
    for number in mine:
        seen |= set(list_numbers(client, headers, notice_no=number))
    seen |= set(list_numbers(client, headers, plate=PLATE))
    seen |= set(list_numbers(client, headers, status="issued")) & mine
    return seen


def seen_one_by_one(client: httpx.Client, headers: dict[str, str], issued: Issued) -> set[str]:
    unknown = client.get(f"/api/v1/notices/{NEVER_ISSUED}", headers=headers)
    assert unknown.status_code == 404
    seen = set()
    for number in (issued.parking, issued.person):
        response = client.get(f"/api/v1/notices/{number}", headers=headers)
        if response.status_code == 200:
            assert response.json()["notice_no"] == number
            seen.add(number)
        else:
            # outside the caller's scope: the very answer a never-issued number gets, no oracle
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json() == unknown.json()
            assert response.json()["code"] == "not_found"
    return seen


def seen_in_the_timeline(client: httpx.Client, headers: dict[str, str], issued: Issued) -> set[str]:
    unknown = client.get(f"/api/v1/notices/{NEVER_ISSUED}/timeline", headers=headers)
    assert unknown.status_code == 404
    seen = set()
    for number in (issued.parking, issued.person):
        response = client.get(f"/api/v1/notices/{number}/timeline", headers=headers)
        if response.status_code == 200:
            assert response.json()["notice_no"] == number
            seen.add(number)
        else:
            assert response.json() == unknown.json()
    return seen


NOTICE_ROUTES: dict[tuple[str, str], Callable[[httpx.Client, dict[str, str], Issued], set[str]]] = {
    ("GET", "/api/v1/notices"): seen_in_the_list,
    ("GET", "/api/v1/notices/{notice_no}"): seen_one_by_one,
    ("GET", "/api/v1/notices/{notice_no}/timeline"): seen_in_the_timeline,
}


def test_every_notice_route_in_the_openapi_document_is_tried_across_jurisdictions(client):
    doc = client.get("/openapi.json").json()
    documented = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        if path == "/api/v1/notices" or path.startswith("/api/v1/notices/")  # not a print run's notices.pdf
        for method in item
        if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE")
    }
    assert documented == set(NOTICE_ROUTES), (
        f"notice routes this test does not try: {sorted(documented - set(NOTICE_ROUTES))}; "
        f"routes it tries that are gone: {sorted(set(NOTICE_ROUTES) - documented)}"
    )


@pytest.mark.parametrize("route", sorted(NOTICE_ROUTES), ids=lambda route: f"{route[0]} {route[1]}")
def test_a_clerk_of_another_district_sees_none_of_its_notices(client, issued, route):
    assert NOTICE_ROUTES[route](client, bearer(client, "clerk.11680"), issued) == set()


@pytest.mark.parametrize("login", ["clerk.11110", "admin"])
@pytest.mark.parametrize("route", sorted(NOTICE_ROUTES), ids=lambda route: f"{route[0]} {route[1]}")
def test_the_district_clerk_and_city_roles_see_its_notices(client, issued, route, login):
    assert NOTICE_ROUTES[route](client, bearer(client, login), issued) == {issued.parking, issued.person}


def test_a_clerk_sees_the_notices_of_their_own_district_and_no_other(client, issued):
    gangnam = Device.enrolled(client, "11680")
    own = gangnam.issue_parking(plate=PLATE)
    gangnam.push_ok([own])
    clerk = bearer(client, "clerk.11680")
    assert list_numbers(client, clerk, plate=PLATE) == [own["notice_no"]]
    items = client.get("/api/v1/notices", params={"limit": 500}, headers=clerk).json()["items"]
    assert {item["jurisdiction"] for item in items} == {"11680"}


# --- the outbox (/api/v1/outbox): a district's calls to outside systems are its own ---------------------------------


def outbox_rows(client: httpx.Client, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every row the outbox list shows for ``params``, following ``next`` to the end."""
    rows: list[dict[str, Any]] = []
    query = {**params, "limit": 500}
    while True:
        response = client.get("/api/v1/outbox", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        rows += page["items"]
        if page["next"] is None:
            return rows
        query["after"] = page["next"]


def test_the_outbox_shows_a_district_its_own_calls_and_city_staff_every_one(client, issued):
    clerk = bearer(client, "clerk.11110")
    queued = client.post("/api/v1/owner-lookups", json={"channel": "mail"}, headers=clerk)
    assert queued.status_code == 202 and issued.parking in queued.json()["notices"]
    listed = outbox_rows(client, clerk, target="registry")
    [mine] = [row for row in listed if row["payload"]["notice_no"] == issued.parking]
    assert (mine["jurisdiction"], mine["status"], mine["operation"]) == ("11110", "pending", "lookup")
    one = client.get(f"/api/v1/outbox/{mine['id']}", headers=clerk)
    assert one.status_code == 200 and one.json()["idempotency_key"] == mine["idempotency_key"]
    assert mine["id"] in {row["id"] for row in outbox_rows(client, bearer(client, "admin"))}

    other = bearer(client, "clerk.11680")
    assert mine["id"] not in {row["id"] for row in outbox_rows(client, other)}
    unknown = client.get("/api/v1/outbox/999999999999", headers=other)
    for method, path, body in (
        ("GET", f"/api/v1/outbox/{mine['id']}", None),
        ("POST", f"/api/v1/outbox/{mine['id']}/retry", {"reason": "재전송"}),
        ("POST", f"/api/v1/outbox/{mine['id']}/cancel", {"reason": "취소"}),
    ):
        response = client.request(method, path, json=body, headers=other)
        # outside the caller's district: the very answer a row that never was gets, no oracle
        assert response.status_code == 404 and response.json() == unknown.json(), (method, path, response.text)
    # the clerk of the district may act on it, but only once it is dead
    refused = client.post(f"/api/v1/outbox/{mine['id']}/retry", json={"reason": "재전송"}, headers=clerk)
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_transition"


def test_an_officer_sees_no_outbox(client):
    response = client.get("/api/v1/outbox", headers=bearer(client, "officer.11110.1"))
    assert response.status_code == 403 and response.json()["code"] == "forbidden_role"
