"""The arrears API through the real app (server/api/arrears.py): business date and steps, the arrears view, relief
holds, the hotlist refresh, and who may do what."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from models import arrears, ledger, notices
from models.base import Actor
from models.feed import ChangeLog, jurisdiction_scope
from models.ledger import PRINCIPAL, Post
from models.rules import full_month_elapses_on
from tests.support.device import Device, fresh_plate, staff_token

DUE = date(2030, 1, 31)


def bearer(client: httpx.Client, login: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(client, login)}"}


@pytest.fixture
def admin(client: httpx.Client) -> dict[str, str]:
    return bearer(client, "admin")


@pytest.fixture
def clerk(client: httpx.Client) -> dict[str, str]:
    return bearer(client, "clerk.11110")


@pytest.fixture
def imposed(connection: Connection) -> int:
    """A 40,000 won fine of 11110 imposed with due date ``DUE``."""
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        receivable = ledger.open_receivable(
            session,
            jurisdiction="11110",
            revenue_item="41",
            notice_id=None,
            actor=Actor.system(),
            principal=Post(PRINCIPAL, "charge", 40_000, DUE - timedelta(days=60), "test"),
        )
        arrears.start_collection(session, receivable.id, DUE, on=DUE - timedelta(days=60))
        session.commit()
        return receivable.id


def advance(client: httpx.Client, admin: dict[str, str], day: date) -> dict[str, Any]:
    response = client.post("/api/v1/business-date", json={"business_date": day.isoformat()}, headers=admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_business_date_is_read_by_staff_and_advanced_only_by_admin(client, admin, clerk):
    response = client.get("/api/v1/business-date", headers=clerk)
    assert response.status_code == 200
    assert date.fromisoformat(response.json()["business_date"])
    refused = client.post("/api/v1/business-date", json={"business_date": DUE.isoformat()}, headers=clerk)
    assert refused.status_code == 403
    assert advance(client, admin, DUE)["business_date"] == DUE.isoformat()
    assert client.get("/api/v1/business-date", headers=clerk).json() == {"business_date": DUE.isoformat()}
    back = client.post("/api/v1/business-date", json={"business_date": "2029-01-01"}, headers=admin)
    assert back.status_code == 409
    assert back.json()["code"] == "business_date_backwards"


def test_advancing_posts_the_surcharges_and_the_view_shows_heads_entries_and_rule_keys(client, admin, clerk, imposed):
    report = advance(client, admin, full_month_elapses_on(DUE, 2))
    assert report["posted"] == 3 and report["amount"] == 1_200 + 2 * 480
    response = client.get(f"/api/v1/receivables/{imposed}/arrears", headers=clerk)
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["balance"] == 42_160
    assert view["heads"] == [
        {"head": "monthly_surcharge", "balance": 960},
        {"head": "principal", "balance": 40_000},
        {"head": "surcharge", "balance": 1_200},
    ]
    assert view["terms"]["state"] == "overdue"
    assert view["terms"]["surcharge_rule_key"] == "surcharge:*@2017-06-03"
    surcharges = [(e["head"], e["amount"], e["rule_key"]) for e in view["entries"] if e["kind"] == "surcharge"]
    assert surcharges == [
        ("surcharge", 1_200, "surcharge:*@2017-06-03"),
        ("monthly_surcharge", 480, "monthly_surcharge:*@2008-06-22"),
        ("monthly_surcharge", 480, "monthly_surcharge:*@2008-06-22"),
    ]
    assert [(p["head"], p["month_no"]) for p in view["postings"]] == [
        ("monthly_surcharge", 1),
        ("monthly_surcharge", 2),
        ("surcharge", 0),
    ]


def test_another_districts_clerk_does_not_see_the_receivable(client, imposed):
    other = bearer(client, "clerk.11680")
    assert client.get(f"/api/v1/receivables/{imposed}/arrears", headers=other).status_code == 404
    assert client.get(f"/api/v1/receivables/{imposed}/holds", headers=other).status_code == 404
    body = {"kind": "deferral", "ends_on": "2030-06-30", "basis": "재난"}
    assert client.post(f"/api/v1/receivables/{imposed}/holds", json=body, headers=other).status_code == 404
    refresh = client.post("/api/v1/arrears/hotlist/refresh", json={"jurisdiction": "11110"}, headers=other)
    assert refresh.status_code == 404


def test_an_installment_plan_pauses_surcharges_and_a_default_reinstates_them(client, admin, clerk, imposed):
    advance(client, admin, DUE - timedelta(days=3))
    plan = {
        "kind": "installment",
        "starts_on": (DUE - timedelta(days=3)).isoformat(),
        "installments": [
            {"due_on": "2030-02-28", "amount": 20_000},
            {"due_on": "2030-03-31", "amount": 20_000},
        ],
        "basis": "시행령 §7의2② 일시납부 곤란",
    }
    created = client.post(f"/api/v1/receivables/{imposed}/holds", json=plan, headers=clerk)
    assert created.status_code == 201, created.text
    hold = created.json()
    assert hold["ends_on"] == "2030-03-31" and [i["seq"] for i in hold["installments"]] == [1, 2]
    again = client.post(f"/api/v1/receivables/{imposed}/holds", json=plan, headers=clerk)
    assert again.status_code == 409
    advance(client, admin, date(2030, 2, 20))
    assert client.get(f"/api/v1/receivables/{imposed}/arrears", headers=clerk).json()["balance"] == 40_000
    ended = client.post(f"/api/v1/holds/{hold['id']}/end", json={"reason": "default"}, headers=clerk)
    assert ended.status_code == 200, ended.text
    assert (ended.json()["end_reason"], ended.json()["ended_on"]) == ("default", "2030-02-20")
    assert client.get(f"/api/v1/receivables/{imposed}/arrears", headers=clerk).json()["balance"] == 41_200
    twice = client.post(f"/api/v1/holds/{hold['id']}/end", json={"reason": "default"}, headers=clerk)
    assert twice.status_code == 409
    holds = client.get(f"/api/v1/receivables/{imposed}/holds", headers=clerk).json()["items"]
    assert [(h["kind"], h["end_reason"]) for h in holds] == [("installment", "default")]


def test_the_steps_run_for_the_business_date_and_never_ahead_of_it(client, admin, clerk, imposed):
    advance(client, admin, DUE + timedelta(days=1))
    daily = client.post("/api/v1/arrears/steps/daily", json={"business_date": "2030-02-01"}, headers=admin)
    assert daily.status_code == 200 and daily.json()["posted"] == 0  # the advance ran it
    ahead = client.post("/api/v1/arrears/steps/month", json={"business_date": "2030-06-01"}, headers=admin)
    assert ahead.status_code == 422
    assert ahead.json()["code"] == "after_business_date"
    assert (
        client.post("/api/v1/arrears/steps/month", json={"business_date": "2030-02-01"}, headers=clerk).status_code
        == 403
    )


def test_a_clerk_refreshes_the_hotlist_of_their_district(client, admin, clerk):
    advance(client, admin, DUE)
    response = client.post("/api/v1/arrears/hotlist/refresh", json={"jurisdiction": "11110"}, headers=clerk)
    assert response.status_code == 200, response.text
    assert response.json()["jurisdiction"] == "11110"
    unknown = client.post("/api/v1/arrears/hotlist/refresh", json={"jurisdiction": "99999"}, headers=admin)
    assert unknown.status_code == 404


def hotlist_feed(connection: Connection, jurisdiction: str) -> list[dict[str, Any]]:
    """The ``hotlist`` changes of a district's pull feed. (In process every request shares one rolled-back
    transaction, which the feed does not serve before it ends, so they are read from the change log.)"""
    rows = connection.execute(
        select(ChangeLog.entity, ChangeLog.op, ChangeLog.key, ChangeLog.data)
        .where(ChangeLog.scope == jurisdiction_scope(jurisdiction), ChangeLog.entity == "hotlist")
        .order_by(ChangeLog.id)
    )
    return [{"entity": r.entity, "op": r.op, "key": r.key, "data": r.data} for r in rows]


def test_a_hotlisted_plate_goes_to_the_districts_pdas_and_leaves_once_paid(client, admin, connection):
    device = Device.enrolled(client, "11110")
    plate = fresh_plate()
    event = device.issue_parking(plate=plate, amount=400_000)
    device.push_ok([event])
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        notice = notices.find_notice(session, event["notice_no"])
        assert notice is not None
        receivable = notices.receivable_of(session, notice.id)
        assert receivable is not None
        arrears.start_collection(session, receivable.id, DUE)
        session.commit()
        rid = receivable.id
    day = DUE + timedelta(days=61)
    advance(client, admin, day)
    [listed] = hotlist_feed(connection, "11110")
    # the shape pda_client reads (``pda hotlist PLATE``): reason and amount_due, no personal data
    assert (listed["op"], listed["key"], set(listed["data"])) == ("upsert", plate, {"plate", "reason", "amount_due"})
    assert listed["data"]["amount_due"] == 400_000 + 12_000 + 2 * 4_800  # 3% and two full months of 1.2%
    assert hotlist_feed(connection, "11680") == []
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        arrears.record_payment(session, rid, listed["data"]["amount_due"], day, "bank:1", Actor.system())
        session.commit()
    removed = hotlist_feed(connection, "11110")[-1]
    assert (removed["op"], removed["key"], removed["data"]) == ("delete", plate, None)
