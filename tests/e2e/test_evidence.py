"""Evidence photos (PROTOCOL.md §4) with the real server and the real ``pda`` CLI: sent before the push, stored once
as files under the server's evidence folder, ``photos_missing`` raised and cleared, resumable after a cut."""

from __future__ import annotations

import hashlib
import io
import re
import signal
from pathlib import Path

import httpx
from PIL import Image
from sqlalchemy import create_engine, text

from tests.support.device import Device, staff_token
from tests.support.pda import enrolled_pda

PLACE = "서울특별시 종로구 세종대로 175"


def photo(path: Path, fmt: str, color: tuple[int, int, int]) -> Path:
    """A small real image (what a PDA camera would hand over), written to ``path``."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, format=fmt)
    path.write_bytes(buffer.getvalue())
    return path


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def on_server(db_url: str, query: str, **params: object) -> list[tuple]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(query), params).all()]
    finally:
        engine.dispose()


def notice_of(db_url: str, notice_no: str) -> tuple[str, int, list[str]]:
    ((status, version, flags),) = on_server(
        db_url, "SELECT status, version, flags FROM notices WHERE notice_no = :n", n=notice_no
    )
    return status, version, list(flags)


def timeline(db_url: str, notice_no: str) -> list[str]:
    rows = on_server(
        db_url,
        "SELECT h.what FROM notice_history h JOIN notices n ON n.id = h.notice_id WHERE n.notice_no = :n ORDER BY h.id",
        n=notice_no,
    )
    return [what for (what,) in rows]


def attachment_calls(server) -> list[tuple[str, str]]:
    """(method, hash) of every attachment request the server answered, in order (gunicorn's access log)."""
    return re.findall(r'"(HEAD|PUT) /sync/v1/attachments/([0-9a-f]{64}) HTTP', server.stdout_path.read_text())


def uploads_in_access_log(server) -> list[str]:
    """The hashes of every PUT the server answered, in order."""
    return [digest for method, digest in attachment_calls(server) if method == "PUT"]


def evidence_server(live_server, tmp_path: Path, **env: str):
    evidence_dir = tmp_path / "evidence"
    server = live_server(env={"JINGSU_EVIDENCE_DIR": str(evidence_dir), **env})
    return server, evidence_dir


def test_pda_sync_sends_the_photos_before_the_notice_which_arrives_without_photos_missing(live_server, tmp_path):
    server, evidence_dir = evidence_server(live_server, tmp_path, GUNICORN_CMD_ARGS="--access-logfile -")
    pda, _ = enrolled_pda(server, tmp_path / "pda")
    front = photo(tmp_path / "front.jpg", "JPEG", (200, 30, 30))
    plate = photo(tmp_path / "plate.png", "PNG", (30, 30, 200))
    issued = pda.issue("--code", "P01", "--plate", "12가3456", "--place", PLACE, "--photo", str(front),
                       "--photo", str(plate))["고지번호"]  # fmt: skip

    out = pda.run("sync")
    assert re.search(r"접수\s+accepted\s+1", out.stdout), out.stdout
    assert "사진" in out.stderr  # the upload phase's progress bar
    for path, kind in ((front, "image/jpeg"), (plate, "image/png")):
        digest = sha(path.read_bytes())
        assert (evidence_dir / digest[:2] / digest).read_bytes() == path.read_bytes()
        rows = on_server(server.db_url, "SELECT size, content_type FROM attachments WHERE sha256 = :s", s=digest)
        assert rows == [(path.stat().st_size, kind)]
    assert notice_of(server.db_url, issued) == ("issued", 1, [])

    # nothing is asked for or sent again: the device wrote down what the server confirmed
    with pda.db() as conn:
        confirmed = {row[0] for row in conn.execute("SELECT sha256 FROM photo_uploads")}
    assert confirmed == {sha(front.read_bytes()), sha(plate.read_bytes())}
    pda.run("sync")
    assert sorted(attachment_calls(server)) == sorted(
        [("HEAD", h) for h in confirmed] + [("PUT", h) for h in confirmed]
    )


def test_a_notice_naming_a_photo_not_sent_is_flagged_and_sending_the_photo_clears_the_flag(live_server, tmp_path):
    server, evidence_dir = evidence_server(live_server, tmp_path)
    content = photo(tmp_path / "late.jpg", "JPEG", (10, 120, 10)).read_bytes()
    digest = sha(content)
    with httpx.Client(base_url=server.url, timeout=15) as client:
        device = Device.enrolled(client, "11110")
        event = device.issue_parking()
        event["data"]["photos"] = [digest]
        device.relink(event)
        (result,) = device.push_ok([event])["results"]
        assert result["status"] == "accepted" and "photos_missing" in result["flags"]
        notice_no = result["notice_no"]
        assert notice_of(server.db_url, notice_no) == ("under_review", 1, ["photos_missing"])
        url = f"/sync/v1/attachments/{digest}"
        assert client.head(url, headers=device.headers).status_code == 404

        put = client.put(url, content=content, headers={**device.headers, "Content-Type": "image/jpeg"})
        assert put.status_code == 201, put.text
        assert put.json() == {"sha256": digest, "size": len(content), "content_type": "image/jpeg"}
        # the flag is gone and the timeline says why; status and version wait for a clerk's review
        assert notice_of(server.db_url, notice_no) == ("under_review", 1, [])
        assert timeline(server.db_url, notice_no)[-1] == "photos_complete"
        clerk = {"Authorization": f"Bearer {staff_token(client, 'clerk.11110')}"}
        listed = client.get("/api/v1/notices", params={"notice_no": notice_no}, headers=clerk).json()["items"]
        assert listed[0]["flags"] == []

        again = client.put(url, content=content, headers={**device.headers, "Content-Type": "image/jpeg"})
        assert again.status_code == 200, again.text
        head = client.head(url, headers=device.headers)
        assert (head.status_code, head.content) == (200, b"")
        assert timeline(server.db_url, notice_no).count("photos_complete") == 1
    assert (evidence_dir / digest[:2] / digest).read_bytes() == content


def test_attachment_refusals_are_problems_in_the_protocol_order(live_server, tmp_path):
    server, evidence_dir = evidence_server(live_server, tmp_path, JINGSU_MAX_ATTACHMENT_BYTES="4096")
    content = photo(tmp_path / "small.png", "PNG", (1, 2, 3)).read_bytes()
    digest = sha(content)
    big = b"\xff\xd8\xff" + b"\0" * 5000
    with httpx.Client(base_url=server.url, timeout=15) as client:
        device = Device.enrolled(client, "11110")

        def put(path: str, body: bytes, kind: str = "image/png", headers: dict[str, str] | None = None):
            sent = {"Content-Type": kind, **(device.headers if headers is None else headers)}
            response = client.put(f"/sync/v1/attachments/{path}", content=body, headers=sent)
            assert response.headers["content-type"].startswith("application/problem+json"), response.text
            return response.status_code, response.json()["code"]

        assert put(sha(big), big, headers={}) == (413, "payload_too_large")  # size before the token (§0)
        assert put(digest, content, headers={}) == (401, "token_invalid")
        assert put(digest, content, headers={**device.headers, "Jingsu-Protocol": "2"}) == (426, "protocol_unsupported")
        assert put(digest.upper(), content) == (404, "not_found")
        assert put(digest, content, kind="text/plain") == (415, "unsupported_media_type")
        assert put(digest, content, kind="image/jpeg") == (415, "unsupported_media_type")  # PNG bytes
        assert put(sha(b"other"), content) == (422, "hash_mismatch")
        assert client.head(f"/sync/v1/attachments/{digest}").status_code == 401
        assert client.head(f"/sync/v1/attachments/{digest}", headers=device.headers).status_code == 404
    assert not evidence_dir.exists() or list(evidence_dir.rglob("*")) == []


def test_a_sync_killed_during_the_upload_goes_on_next_time_and_sends_no_photo_twice(live_server, tmp_path):
    server, evidence_dir = evidence_server(live_server, tmp_path, GUNICORN_CMD_ARGS="--access-logfile -")
    pda, _ = enrolled_pda(server, tmp_path / "pda")
    paths = [photo(tmp_path / f"p{i}.jpg", "JPEG", (40 * i, 90, 160)) for i in range(3)]
    args = [arg for path in paths for arg in ("--photo", str(path))]
    issued = pda.issue("--code", "P01", "--plate", "34나5678", "--place", PLACE, *args)["고지번호"]
    hashes = {sha(path.read_bytes()) for path in paths}

    # the server stores the first photo, then the device dies before it writes down the answer
    killed = pda.run("sync", env={"PDA_FAULT": "kill_after_upload"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    (first,) = uploads_in_access_log(server)
    assert (evidence_dir / first[:2] / first).exists()
    assert [row["state"] for row in pda.outbox()] == ["pending"]  # nothing was pushed
    assert on_server(server.db_url, "SELECT count(*) FROM notices WHERE notice_no = :n", n=issued) == [(0,)]

    out = pda.run("sync").stdout
    assert re.search(r"접수\s+accepted\s+1", out), out
    sent = uploads_in_access_log(server)
    assert sorted(sent) == sorted(hashes)  # each photo sent once: the first was found by HEAD, not sent again
    for digest in hashes:
        assert (evidence_dir / digest[:2] / digest).exists()
    assert notice_of(server.db_url, issued) == ("issued", 1, [])


def test_a_photo_that_cannot_be_read_is_reported_and_the_notice_still_goes_flagged(live_server, tmp_path):
    server, _ = evidence_server(live_server, tmp_path)
    pda, _ = enrolled_pda(server, tmp_path / "pda")
    kept, lost = photo(tmp_path / "kept.jpg", "JPEG", (1, 1, 1)), photo(tmp_path / "lost.jpg", "JPEG", (2, 2, 2))
    issued = pda.issue("--code", "P01", "--plate", "56다7890", "--place", PLACE, "--photo", str(kept),
                       "--photo", str(lost))["고지번호"]  # fmt: skip
    lost_hash = sha(lost.read_bytes())
    (pda.home / "photos" / lost_hash).unlink()  # the device's copy is gone (a bad sector, a wiped card)

    out = pda.run("sync").stdout  # exit 0: the photo is reported, the sync goes on
    assert re.search(rf"{issued}: photo_not_sent unreadable {lost_hash[:12]}", out), out
    assert re.search(r"접수\s+accepted\s+1", out), out
    assert notice_of(server.db_url, issued) == ("under_review", 1, ["photos_missing"])
    kept_hash = sha(kept.read_bytes())
    assert on_server(server.db_url, "SELECT sha256 FROM attachments") == [(kept_hash,)]
    # tried again on the next sync, and reported again while it cannot be read
    assert lost_hash[:12] in pda.run("sync").stdout
