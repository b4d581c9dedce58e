"""``/api/v1/print-runs`` through the real app (server/api/print_runs.py): a clerk queues a print run of their
district's mailed documents over HTTP (202 at once, ``claimed``), a worker prints it (``server.worker``, in process
here; ``tests/integration/test_worker.py`` runs real worker processes) and the clerk follows it to ``printed``, then
downloads the PDF and the manifest (each download logged); another district can neither print nor see them; bad
input is a 422 problem naming the field."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pypdfium2 as pdfium
import pytest
from flask import Flask
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from adapters.postal import parse_manifest
from models import print_runs
from models.users import User
from server import create_app
from server.config import Config
from server.worker import deliver, worker
from services import mailing
from tests.factories import advance_noticed
from tests.support.device import staff_token

PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def app(connection: Connection, test_config: Config, tmp_path: Path) -> Flask:
    return create_app(dataclasses.replace(test_config, var_dir=tmp_path), bind=connection)


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    with Session(bind=connection, join_transaction_mode="create_savepoint") as s:
        yield s


def auth(client: httpx.Client, login: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(client, login)}"}


def work(app: Flask) -> list[str]:
    """What a worker does with the print runs queued now: each one's key, once it ran it; then it delivers the
    outbox (the runs' hand-over to the post)."""
    rt = app.extensions["jingsu"]
    crew = worker(rt, "api-test")
    done = []
    while (outcome := crew.next([mailing.JOB_NAME])) is not None:
        assert outcome.ok, outcome
        done.append(outcome.job)
    delivered = deliver(rt, "api-test")
    assert delivered is not None and delivered.dead == 0, delivered
    return done


def test_a_clerk_prints_the_districts_notices_and_downloads_the_pdf_and_manifest_each_download_logged(
    app: Flask, client: httpx.Client, session: Session
) -> None:
    numbers = advance_noticed(session, 4)
    clerk = auth(client, "clerk.11110")

    created = client.post("/api/v1/print-runs", json={"kind": "advance_notice"}, headers=clerk)

    assert created.status_code == 202, created.text
    queued = created.json()
    assert created.headers["location"] == f"/api/v1/print-runs/{queued['id']}"
    assert (queued["status"], queued["documents"], queued["rendered"]) == ("claimed", 4, 0)
    assert (queued["pdf_url"], queued["postal_receipt"], queued["requested_by"]) == (None, None, "clerk.11110")
    assert work(app) == [f"print-run:{queued['id']}"]
    one = client.get(created.headers["location"], headers=clerk)
    assert one.status_code == 200, one.text
    body = one.json()
    assert (body["status"], body["documents"], body["rendered"], body["pages"]) == ("printed", 4, 4, 4)
    assert body["jurisdiction"] == "11110" and body["postal_receipt"].startswith("EGP-SBX-")
    listed = client.get("/api/v1/print-runs", headers=clerk).json()
    assert [r["id"] for r in listed["items"]][:1] == [body["id"]]

    pdf = client.get(body["pdf_url"], headers=clerk)
    manifest = client.get(body["manifest_url"], headers=clerk)

    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert manifest.status_code == 200 and manifest.headers["content-type"].startswith("text/plain")
    document = pdfium.PdfDocument(pdf.content)
    texts = [document[i].get_textpage().get_text_range() for i in range(len(document))]
    parsed = parse_manifest(manifest.content)
    assert len(texts) == parsed.total_pages == 4 and parsed.header.run_id == body["id"]
    assert all(piece.name in " ".join(texts[piece.first_page - 1].split()) for piece in parsed.pieces)
    assert sorted(no for no in numbers if any(no in text for text in texts)) == sorted(numbers)
    clerk_id = session.scalar(select(User.id).where(User.login == "clerk.11110"))
    logged = print_runs.exports(session, body["id"])
    assert [(e.what, e.user_id, e.actor_label) for e in logged] == [
        ("pdf", clerk_id, "clerk.11110"),
        ("manifest", clerk_id, "clerk.11110"),
    ]

    again = client.post("/api/v1/print-runs", json={"kind": "advance_notice"}, headers=clerk)

    assert again.status_code == 202 and (again.json()["status"], again.json()["documents"]) == ("empty", 0)
    assert work(app) == []  # nothing to print, no job
    nothing = client.get(f"/api/v1/print-runs/{again.json()['id']}/notices.pdf", headers=clerk)
    assert nothing.status_code == 409 and nothing.json()["code"] == "not_printed"


def test_another_district_can_neither_print_nor_see_the_districts_runs(
    app: Flask, client: httpx.Client, session: Session
) -> None:
    advance_noticed(session, 2)
    other = auth(client, "clerk.11680")

    refused = client.post("/api/v1/print-runs", json={"kind": "advance_notice", "jurisdiction": "11110"}, headers=other)
    own = client.post("/api/v1/print-runs", json={"kind": "advance_notice"}, headers=other)

    assert refused.status_code == 404 and refused.headers["content-type"] == PROBLEM_JSON
    assert refused.json()["code"] == "not_found"
    assert own.status_code == 202 and (own.json()["jurisdiction"], own.json()["documents"]) == ("11680", 0)
    clerk = auth(client, "clerk.11110")
    queued = client.post("/api/v1/print-runs", json={"kind": "advance_notice"}, headers=clerk).json()
    assert queued["documents"] == 2  # nothing of 11110 was taken by the other district
    work(app)
    mine = client.get(f"/api/v1/print-runs/{queued['id']}", headers=clerk).json()
    for path in (f"/api/v1/print-runs/{mine['id']}", mine["pdf_url"], mine["manifest_url"]):
        response = client.get(path, headers=other)
        assert response.status_code == 404 and response.json()["code"] == "not_found", path
    assert mine["id"] not in [r["id"] for r in client.get("/api/v1/print-runs", headers=other).json()["items"]]
    # city staff see every district's; an officer may not print
    assert client.get(f"/api/v1/print-runs/{mine['id']}", headers=auth(client, "admin")).status_code == 200
    officer = client.post(
        "/api/v1/print-runs", json={"kind": "advance_notice"}, headers=auth(client, "officer.11110.1")
    )
    assert officer.status_code == 403 and officer.json()["code"] == "forbidden_role"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "demand_notice"}, "kind"),
        ({}, "kind"),
        ({"kind": "advance_notice", "issued_from": "2025-13-01"}, "issued_from"),
        ({"kind": "advance_notice", "issued_to": "yesterday"}, "issued_to"),
        ({"kind": "advance_notice", "issued_from": "2025-12-02", "issued_to": "2025-12-01"}, "issued_to"),
        ({"kind": "advance_notice", "jurisdiction": "1111"}, "jurisdiction"),
        ({"kind": "advance_notice", "limit": 0}, "limit"),
    ],
)
def test_bad_input_is_a_422_problem_naming_the_field(client: httpx.Client, body: dict[str, object], field: str) -> None:
    response = client.post("/api/v1/print-runs", json=body, headers=auth(client, "clerk.11110"))

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["code"] == "validation_failed" and field in problem["errors"]


def test_unknown_runs_are_not_found(client: httpx.Client) -> None:
    clerk = auth(client, "clerk.11110")
    for path in ("/api/v1/print-runs/999999999", "/api/v1/print-runs/abc", "/api/v1/print-runs/0/manifest"):
        response = client.get(path, headers=clerk)
        assert response.status_code == 404 and response.json()["code"] == "not_found", path


def test_a_run_for_a_district_that_does_not_exist_is_not_found_not_a_server_error(client: httpx.Client) -> None:
    # city staff may name any district; one that is not a district answers 404 like one out of scope (issue 13 §1.8)
    response = client.post(
        "/api/v1/print-runs", json={"kind": "advance_notice", "jurisdiction": "99999"}, headers=auth(client, "admin")
    )

    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert (response.json()["code"], response.json()["field"]) == ("not_found", "jurisdiction")
