"""A database restored from a backup must never hand out a number twice, and devices must start a new epoch."""

from __future__ import annotations

import httpx

import protocol
from tests.conftest import LiveServer
from tests.support.device import Device


def test_after_a_restore_numbers_continue_above_the_high_water_mark_and_the_epoch_changes(
    db_admin, _template_name, tmp_path
):
    live = db_admin.create("jingsu_live_", template=_template_name)
    server = LiveServer(db_admin.url_for(live), tmp_path / "var")
    (tmp_path / "var").mkdir()
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=15) as client:
            before = Device.enrolled(client)  # enrolled, signed in, pulled: two blocks
        server.stop()
        # the nightly backup
        backup = db_admin.create("jingsu_backup_", template=live)
        server.start()
        with httpx.Client(base_url=server.url, timeout=15) as client:
            # the day goes on: the device uses its first block up, and its next pull is topped up again
            before.client = client
            before.numbers = before.numbers[500:]
            events = [before.issue_parking(plate=f"12가{n:04d}") for n in range(500)]
            for start in range(0, 500, 250):
                before.push_ok(events[start : start + 250])
            before.pull_all()
            epoch_before = before.epoch
            handed_out = set(before.numbers)
        server.stop()

        # the database is lost and restored from the backup; the server's var/ (the watermarks) survives
        restored = LiveServer(db_admin.url_for(backup), tmp_path / "var")
        restored.port, restored.url = server.port, server.url
        restored.env = {**server.env, "DATABASE_URL": db_admin.url_for(backup)}
        restored.start()
        try:
            with httpx.Client(base_url=restored.url, timeout=15) as client:
                after = Device.enrolled(client)
                assert not handed_out & set(after.numbers), "a number was handed out twice after the restore"
                highest = max(protocol.parse_notice_no(n).serial for n in handed_out)  # type: ignore[union-attr]
                assert min(protocol.parse_notice_no(n).serial for n in after.numbers) > highest  # type: ignore[union-attr]
                assert after.epoch != epoch_before
                # the device that synced after the backup holds a cursor the restored database never made: reset
                before.client = client
                reset = before.pull(before.cursor)
                assert reset.status_code == 409 and reset.json()["code"] == "reset_required"
        finally:
            restored.stop()
        db_admin.drop(backup)
    finally:
        server.stop()
        db_admin.drop(live)


def test_a_cursor_from_after_the_backup_is_refused_even_before_any_number_is_allocated(
    db_admin, _template_name, tmp_path
):
    live = db_admin.create("jingsu_live_", template=_template_name)
    server = LiveServer(db_admin.url_for(live), tmp_path / "var")
    (tmp_path / "var").mkdir()
    backup = None
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=15) as client:
            device = Device.enrolled(client)
        server.stop()
        backup = db_admin.create("jingsu_backup_", template=live)
        server.start()
        with httpx.Client(base_url=server.url, timeout=15) as client:
            device.client = client
            device.push_ok([device.issue_parking() for _ in range(3)])  # changes after the backup
            device.pull_all()
        server.stop()

        server.env = {**server.env, "DATABASE_URL": db_admin.url_for(backup)}
        server.start()
        with httpx.Client(base_url=server.url, timeout=15) as client:
            device.client = client
            reset = device.pull(device.cursor)
            assert reset.status_code == 409 and reset.json()["code"] == "reset_required"
            # the new epoch stays: the same cursor keeps getting reset_required, and no cursor starts over
            assert device.pull(device.cursor).status_code == 409
            fresh = device.pull()
            assert fresh.status_code == 200 and fresh.json()["epoch"] != device.epoch
    finally:
        server.stop()
        if backup:
            db_admin.drop(backup)
        db_admin.drop(live)
