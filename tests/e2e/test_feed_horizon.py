"""The change feed waits only for what can change it (issue 12 §1).

A write transaction on another table of the same database, and one in another database of the same server, are held
open — until the assertions are done, no sleep — while a device pushes and pulls over HTTP to a real server: the pull
returns the new changes at once. A transaction registered as a writer of changes and still open does hold the feed
back (a change it may still commit must not be skipped), and lets it go the moment it ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg

from tests.conftest import DbAdmin, LiveServer, libpq_url
from tests.support.device import Device


@contextmanager
def open_write_transaction(url: str, statement: str) -> Iterator[psycopg.Connection[Any]]:
    """A transaction that has written (it holds a transaction id) and stays open until the block ends."""
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute(statement)
        assert conn.execute("SELECT pg_current_xact_id_if_assigned()").fetchone() != (None,)
        try:
            yield conn
        finally:
            conn.rollback()


def statuses(changes: list[dict[str, Any]]) -> dict[str, str]:
    return {c["key"]: c["data"]["status"] for c in changes if c["entity"] == "notice_status"}


def test_open_write_transactions_on_other_tables_and_databases_do_not_hold_the_feed_back(
    module_live_server: LiveServer, db_admin: DbAdmin, _template_name: str
) -> None:
    other_name = db_admin.create("jingsu_o_", template=_template_name)
    other_db = db_admin.url_for(other_name)
    bump = "UPDATE revenue_items SET name = name || '' WHERE code = '41'"
    try:
        with httpx.Client(base_url=module_live_server.url, timeout=15) as client:
            device = Device.enrolled(client)
            with (
                open_write_transaction(module_live_server.db_url, bump),
                open_write_transaction(other_db, bump),
            ):
                issued = [device.issue_parking(), device.issue_parking()]
                device.push_ok(issued)
                seen = statuses(device.pull_all())  # one pass: no waiting, no retrying
                assert seen == {event["notice_no"]: "issued" for event in issued}

                device.push_ok([device.void(issued[0]["notice_no"], reason_code="wrong_vehicle")])
                assert statuses(device.pull_all()) == {issued[0]["notice_no"]: "voided"}
    finally:
        db_admin.drop(other_name)


def test_an_open_writer_of_changes_holds_the_feed_back_until_it_ends(module_live_server: LiveServer) -> None:
    with httpx.Client(base_url=module_live_server.url, timeout=15) as client:
        device = Device.enrolled(client)
        with psycopg.connect(libpq_url(module_live_server.db_url)) as writer:
            writer.execute("SELECT feed_register()")  # a change writer that has not committed yet
            event = device.issue_parking()
            device.push_ok([event])
            assert statuses(device.pull_all()) == {}  # committed after the open writer began: held back
            writer.rollback()
        assert statuses(device.pull_all()) == {event["notice_no"]: "issued"}
