"""Treasury receipts through the real app: SEN authenticated by its signature alone, the daily file imported by a
clerk (refused whole on a bad line), the exception queue scoped by jurisdiction and resolved once, and the daily
reconciliation as JSON, CSV and from the CLI."""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from pathlib import Path

import httpx
import pytest
from flask import Flask
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from models import notices, payment_refs
from models.treasury import daily_file, sen
from models.treasury.message import BankReport
from protocol import SEOUL
from server import create_app
from server.config import Config
from tests.support.device import Device, fresh_plate, staff_token

DAY = date(2026, 11, 25)
AT = datetime(2026, 11, 25, 14, 0, tzinfo=SEOUL)
BANK = payment_refs.Bank(code="088", name="신한은행", prefix="5620")


@pytest.fixture
def app(connection: Connection, test_config: Config) -> Flask:
    """The app, its treasury routes and commands registered by ``create_app``."""
    app = create_app(test_config, bind=connection)
    assert "treasury" in app.blueprints and "treasury-import" in app.cli.commands
    return app


def bearer(client: httpx.Client, login: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(client, login)}"}


def signed(key: str, body: bytes, at: float | None = None) -> dict[str, str]:
    ts = str(int(time.time() if at is None else at))
    return {"X-SEN-Timestamp": ts, "X-SEN-Signature": sen.sign(key, ts, body), "Content-Type": "application/json"}


def send(client: httpx.Client, key: str, report: BankReport) -> httpx.Response:
    body = json.dumps(sen.message(report)).encode()
    return client.post("/api/v1/treasury/sen", content=body, headers=signed(key, body))


@pytest.fixture
def notice_no(client: httpx.Client) -> str:
    device = Device.enrolled(client)
    event = device.issue_parking(plate=fresh_plate())
    device.push_ok([event])
    return str(event["notice_no"])


def account_of(connection: Connection, notice_no: str) -> str:
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        notice = notices.find_notice(session, notice_no)
        assert notice is not None
        receivable = notices.receivable_of(session, notice.id)
        assert receivable is not None
        account = payment_refs.account_for(session, receivable, BANK).account_no
        session.commit()
    return account


def test_a_signed_sen_receipt_posts_once_and_an_unsigned_forged_or_stale_one_is_refused(
    client: httpx.Client, connection: Connection, test_config: Config, notice_no: str
) -> None:
    key = test_config.sen_key
    assert key
    deposit = BankReport("088", "API-R1", "deposit", "virtual_account", account_of(connection, notice_no), 32000, AT)
    body = json.dumps(sen.message(deposit)).encode()
    for headers in (
        {},
        {**signed(key, body), "X-SEN-Signature": "0" * 64},
        signed(key, body, time.time() - 3600),
        signed("not-the-key", body),
    ):
        refused = client.post("/api/v1/treasury/sen", content=body, headers=headers)
        assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "signature_invalid"
    first = send(client, key, deposit)
    assert first.status_code == 200, first.text
    assert first.json() == {"result": "posted", "receipt_id": "API-R1"}
    assert send(client, key, deposit).json()["result"] == "repeated"
    shown = client.get(f"/api/v1/notices/{notice_no}", headers=bearer(client, "clerk.11110")).json()
    assert shown["status"] == "paid"


def test_a_signed_but_malformed_sen_message_is_refused_naming_its_fields(
    client: httpx.Client, test_config: Config
) -> None:
    key = test_config.sen_key
    body = json.dumps({"bank_code": "088", "receipt_id": "x", "kind": "refund", "amount": "5"}).encode()
    response = client.post("/api/v1/treasury/sen", content=body, headers=signed(key, body))
    assert response.status_code == 422 and response.json()["code"] == "validation_failed"
    assert {"kind", "amount", "channel", "received_at"} <= set(response.json()["errors"])
    garbage = b'{"bank_code": '
    response = client.post("/api/v1/treasury/sen", content=garbage, headers=signed(key, garbage))
    assert response.status_code == 400 and response.json()["code"] == "malformed_json"


def test_a_clerk_imports_the_daily_file_and_works_the_exceptions_of_their_district(
    client: httpx.Client, connection: Connection, test_config: Config, notice_no: str
) -> None:
    clerk, admin = bearer(client, "clerk.11110"), bearer(client, "admin")
    account = account_of(connection, notice_no)
    short = BankReport("088", "API-S1", "deposit", "virtual_account", account, 10000, AT)
    assert send(client, test_config.sen_key, short).json()["result"] == "posted"
    unknown = BankReport(
        "088", "API-U1", "deposit", "virtual_account", payment_refs.account_no_of(BANK, 987654321), 5000, AT
    )
    text = daily_file.write_daily_file("088", DAY, [short, unknown])
    anonymous = client.post("/api/v1/treasury/files", json={"name": "f.txt", "content": text})
    assert anonymous.status_code == 401
    district = client.post("/api/v1/treasury/files", json={"name": "f.txt", "content": text}, headers=clerk)
    assert district.status_code == 403 and district.json()["code"] == "forbidden_scope"  # the city imports it
    response = client.post("/api/v1/treasury/files", json={"name": "088_20261125.txt", "content": text}, headers=admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["lines"], body["total"], body["outcomes"], body["exceptions"]) == (
        2,
        15000,
        {"confirmed": 1, "suspense": 1},
        {"unmatched": 1},
    )

    mine = client.get("/api/v1/treasury/exceptions", headers=clerk).json()["items"]
    assert [(i["reason"], i["amount"], i["receipt_id"], i["notice_no"]) for i in mine] == [
        ("short", 30000, "API-S1", notice_no)
    ]
    everything = client.get("/api/v1/treasury/exceptions", params={"date": "2026-11-25"}, headers=admin).json()
    assert {i["reason"] for i in everything["items"]} == {"short", "unmatched"}
    assert client.get("/api/v1/treasury/exceptions", headers=bearer(client, "clerk.11680")).json()["items"] == []
    bad = client.get("/api/v1/treasury/exceptions", params={"reason": "lost"}, headers=clerk)
    assert bad.status_code == 422 and "reason" in bad.json()["errors"]

    url = f"/api/v1/treasury/exceptions/{mine[0]['id']}/resolve"
    assert client.post(url, json={"note": "x"}, headers=bearer(client, "clerk.11680")).status_code == 404
    done = client.post(url, json={"note": "잔액 30,000원 재고지"}, headers=clerk)
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["resolved_by"], done.json()["resolution"]) == (
        "resolved",
        "clerk.11110",
        "잔액 30,000원 재고지",
    )
    again = client.post(url, json={"note": "again"}, headers=clerk)
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    assert client.post("/api/v1/treasury/exceptions/abc/resolve", json={"note": "x"}, headers=clerk).status_code == 404

    report = client.get("/api/v1/treasury/reconciliation", params={"date": "2026-11-25"}, headers=admin)
    assert report.status_code == 200, report.text
    total = report.json()["total"]
    assert (total["bank"], total["ledger"], total["suspense"], total["difference"]) == (15000, 10000, 5000, 0)
    own = client.get("/api/v1/treasury/reconciliation", params={"date": "2026-11-25"}, headers=clerk).json()
    assert [(r["jurisdiction"], r["revenue_item"], r["bank"]) for r in own["rows"]] == [("11110", "41", 10000)]
    as_csv = client.get(
        "/api/v1/treasury/reconciliation", params={"date": "2026-11-25", "format": "csv"}, headers=admin
    )
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    lines = as_csv.text.splitlines()
    assert lines[0].startswith("jurisdiction,revenue_item,receipts,bank,ledger") and lines[-1].startswith("total,")
    missing = client.get("/api/v1/treasury/reconciliation", headers=admin)
    assert missing.status_code == 422 and "date" in missing.json()["errors"]


def test_a_daily_file_with_a_bad_line_is_refused_whole_with_each_line_named(client: httpx.Client) -> None:
    good = BankReport("088", "API-F1", "deposit", "bank", "1111026410000001234", 1000, AT)
    other_good = BankReport("088", "API-F2", "deposit", "bank", "1111026410000001234", 2000, AT)
    lines = daily_file.write_daily_file("088", DAY, [good, other_good]).splitlines()
    lines[1] = lines[1][:72] + "20261199999999" + lines[1][86:]
    lines[2] = lines[2][:59] + "-000000002000" + lines[2][72:]
    response = client.post(
        "/api/v1/treasury/files",
        json={"name": "bad.txt", "content": "\n".join(lines)},
        headers=bearer(client, "admin"),
    )
    assert response.status_code == 422 and response.json()["code"] == "file_invalid"
    assert response.json()["errors"] == {
        "content": [
            "line 2: received_at: '20261199999999' is not YYYYMMDDHHMMSS",
            "line 3: amount: '-000000002000' is not 13 digits",
        ]
    }
    other = daily_file.write_daily_file("004", DAY, [good])
    response = client.post(
        "/api/v1/treasury/files", json={"name": "x.txt", "content": other}, headers=bearer(client, "admin")
    )
    assert response.status_code == 422 and "bank_code" in response.json()["errors"]  # not our treasury bank's


def test_the_cli_imports_a_file_and_prints_the_reconciliation(
    app: Flask, connection: Connection, notice_no: str, tmp_path: Path
) -> None:
    deposit = BankReport("088", "CLI-R1", "deposit", "virtual_account", account_of(connection, notice_no), 32000, AT)
    path = tmp_path / "088_20261125.txt"
    path.write_text(daily_file.write_daily_file("088", DAY, [deposit]))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["treasury-import", str(path)])
    assert result.exit_code == 0, result.output
    assert "posted" in result.output and "1 lines" in result.output
    again = runner.invoke(args=["treasury-import", str(path)])
    assert again.exit_code == 0 and "repeated" in again.output
    printed = runner.invoke(args=["reconciliation-report", "--date", "2026-11-25"])
    assert printed.exit_code == 0, printed.output
    total = next(line for line in printed.output.splitlines() if line.startswith("total"))
    assert total.split()[1:3] == ["1", "32,000"] and total.split()[-1] == "0"
    bad = tmp_path / "bad.txt"
    bad.write_text("H088")
    failed = runner.invoke(args=["treasury-import", str(bad)])
    assert failed.exit_code == 1 and "nothing was imported" in failed.output
