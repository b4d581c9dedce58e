"""The background worker (``flask --app wsgi worker``): its jobs, its one-line report per job, and one leader."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import Connection, create_engine, text

from models import payments
from models.base import Actor
from models.notices import Notice
from server import create_app
from server.config import Config
from server.runtime import Runtime
from server.worker import JOBS
from tests.factories import paid

ON = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def test_a_payment_that_raced_the_push_of_its_notice_is_matched_by_the_sweep(db_session, issue):  # noqa: F811
    # the payment commits first and finds no notice; the push then commits without seeing the payment
    payments.post_payment(db_session, paid("111102600000012", 32000, ON), Actor.system(), ON)
    notice = issue("111102600000012")
    assert notice.status == "issued"

    assert payments.sweep_suspense(db_session, ON) == 1
    assert db_session.get(Notice, notice.id).status == "paid"
    assert payments.sweep_suspense(db_session, ON) == 0  # matched once


def test_a_suspense_payment_whose_notice_never_came_stays_open(db_session):
    payments.post_payment(db_session, paid("111102600000020", 40000, ON, txn="t9"), Actor.system(), ON)
    assert payments.sweep_suspense(db_session, ON) == 0
    assert payments.suspense_total(db_session, "111102600000020") == 40000


def test_worker_once_runs_every_job_and_prints_a_table(connection: Connection, test_config: Config) -> None:
    app: Flask = create_app(test_config, bind=connection)
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["job", "result", "seconds"]
    for job in JOBS:
        assert any(line.startswith(job.name) and " ok " in line for line in lines), result.output


def test_worker_refuses_an_unknown_job(connection: Connection, test_config: Config) -> None:
    app: Flask = create_app(test_config, bind=connection)
    result = app.test_cli_runner().invoke(args=["worker", "--once", "--job", "no-such-job"])
    assert result.exit_code != 0 and "no such job: no-such-job" in result.output
