"""Evidence photos on PostgreSQL and a real folder (``models.evidence``): stored once under their hash, refused when
the bytes are not what the hash says, safe when the same photo is sent by several at once."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from models import evidence
from models import notices as notice_ops
from models.base import Actor
from models.crypto import PiiCipher
from models.devices import Device
from tests.conftest import TEST_LOOKUP_KEY, TEST_PII_KEY

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
ACTOR = Actor(label="test")
NOTICE_NO = "111102699999990"


def jpeg(seed: str) -> bytes:
    """Bytes that start as a JPEG does; the domain only sniffs the signature."""
    return b"\xff\xd8\xff\xe0" + seed.encode() * 64


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def a_device(session: Session) -> str:
    device_id = session.scalar(select(Device.id).order_by(Device.id).limit(1))
    assert device_id is not None, "the demo data has devices"
    return device_id


def command(content: bytes, device_id: str, sha256: str | None = None) -> evidence.StoreAttachment:
    return evidence.StoreAttachment(sha256 or sha(content), content, evidence.JPEG, device_id)


def rows(session: Session, sha256: str) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(evidence.Attachment).where(evidence.Attachment.sha256 == sha256)
        )
        or 0
    )


def test_a_photo_is_stored_once_as_a_file_under_its_hash_and_a_row_records_it(db_session, tmp_path: Path):
    files = evidence.EvidenceDir(tmp_path)
    device_id = a_device(db_session)
    content = jpeg("first")
    digest = sha(content)

    first = evidence.store_attachment(db_session, files, command(content, device_id), NOW, ACTOR)
    assert first.created
    path = tmp_path / digest[:2] / digest
    assert path.read_bytes() == content
    stored = db_session.get(evidence.Attachment, digest)
    assert stored is not None
    assert (stored.size, stored.content_type, stored.first_device_id) == (len(content), "image/jpeg", device_id)

    again = evidence.store_attachment(db_session, files, command(content, device_id), NOW, ACTOR)
    assert not again.created
    assert rows(db_session, digest) == 1
    assert sorted(p.name for p in path.parent.iterdir()) == [digest]  # no temporary file left beside it
    assert evidence.is_stored(db_session, files, digest)


def test_bytes_whose_hash_differs_are_refused_and_nothing_is_kept(db_session, tmp_path: Path):
    files = evidence.EvidenceDir(tmp_path)
    claimed = sha(jpeg("what the device hashed"))
    with pytest.raises(evidence.HashMismatch) as refused:
        evidence.store_attachment(
            db_session, files, command(jpeg("other bytes"), a_device(db_session), claimed), NOW, ACTOR
        )
    assert refused.value.code == "hash_mismatch"
    assert rows(db_session, claimed) == 0
    assert list(tmp_path.iterdir()) == []
    assert not evidence.is_stored(db_session, files, claimed)


def test_a_row_whose_file_was_lost_is_not_stored_and_sending_the_photo_again_restores_the_file(db_session, tmp_path):
    files = evidence.EvidenceDir(tmp_path)
    device_id = a_device(db_session)
    content = jpeg("lost")
    digest = sha(content)
    evidence.store_attachment(db_session, files, command(content, device_id), NOW, ACTOR)
    files.path(digest).unlink()
    assert not evidence.is_stored(db_session, files, digest)  # HEAD says 404: the device sends it again
    again = evidence.store_attachment(db_session, files, command(content, device_id), NOW, ACTOR)
    assert not again.created
    assert files.path(digest).read_bytes() == content


def test_missing_photos_names_the_hashes_not_stored_in_order(db_session, tmp_path: Path):
    files = evidence.EvidenceDir(tmp_path)
    have, lack = jpeg("have"), jpeg("lack")
    evidence.store_attachment(db_session, files, command(have, a_device(db_session)), NOW, ACTOR)
    assert evidence.missing_photos(db_session, [sha(lack), sha(have), sha(lack)]) == [sha(lack)]
    assert evidence.missing_photos(db_session, []) == []


def test_concurrent_uploads_of_the_same_photo_store_it_once_and_every_one_succeeds(clone_db, tmp_path: Path):
    engine = create_engine(clone_db(), pool_size=8)
    files = evidence.EvidenceDir(tmp_path)
    content = jpeg("raced")
    digest = sha(content)
    with Session(engine) as session:
        device_id = a_device(session)
    senders = 6
    barrier = threading.Barrier(senders)
    outcomes: list[bool] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            with Session(engine) as session:
                barrier.wait()
                stored = evidence.store_attachment(session, files, command(content, device_id), NOW, ACTOR)
                session.commit()
                outcomes.append(stored.created)
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(senders)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert sorted(outcomes) == [False] * (senders - 1) + [True]
        with Session(engine) as session:
            assert rows(session, digest) == 1
        assert files.path(digest).read_bytes() == content
        assert sorted(p.name for p in files.path(digest).parent.iterdir()) == [digest]
    finally:
        engine.dispose()


def test_two_photos_of_one_notice_arriving_at_once_complete_it_once_and_leave_status_and_version(clone_db, tmp_path):
    engine = create_engine(clone_db(), pool_size=4)
    files = evidence.EvidenceDir(tmp_path)
    photos = [jpeg("front"), jpeg("rear")]
    try:
        with Session(engine) as session:
            device_id, _ = flagged_notice(session, NOTICE_NO, [sha(p) for p in photos])
            session.commit()

        barrier = threading.Barrier(2)
        completed: list[list[str]] = []
        errors: list[BaseException] = []

        def send(content: bytes) -> None:
            try:
                with Session(engine) as session:
                    barrier.wait()
                    stored = evidence.store_attachment(session, files, command(content, device_id), NOW, ACTOR)
                    session.commit()
                    completed.append(stored.completed)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(content,)) for content in photos]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert sorted(completed) == [[], [NOTICE_NO]]
        with Session(engine) as session:
            after = notice_ops.find_notice(session, NOTICE_NO)
            assert after is not None
            assert (after.flags, after.status, after.version) == ([], "under_review", 1)
            timeline = [h.what for h in notice_ops.history(session, after.id)]
            assert timeline.count("photos_complete") == 1
    finally:
        engine.dispose()


def flagged_notice(session: Session, notice_no: str, photos: list[str]) -> tuple[str, int]:
    """A parking notice accepted as the push accepts one naming ``photos``: flagged and waiting for those the server
    lacks (the caller commits); returns (device id, notice id)."""
    device = session.scalars(select(Device).order_by(Device.id).limit(1)).one()
    missing = evidence.missing_photos(session, photos)
    cmd = notice_ops.IssueNotice(
        notice_no=notice_no,
        event_id="00000000-0000-4000-8000-00000000e71d",
        device_id=device.id,
        jurisdiction=device.jurisdiction,
        kind="parking",
        violation_code="P01",
        schedule_key="P01:car:-@2021-05-11",
        amount=40000,
        reduced_amount=32000,
        opinion_deadline=NOW.date(),
        place_address="서울특별시 종로구 세종대로 175",
        observed_at=NOW,
        issued_at=NOW,
        qr="-",
        officer_id=None,
        vehicle_plate="12가3456",
        vehicle_type="car",
        photos=photos,
        flags=["photos_missing"] if missing else [],
    )
    notice = notice_ops.issue_notice(session, cmd, ACTOR, NOW, PiiCipher(TEST_PII_KEY, TEST_LOOKUP_KEY))
    assert notice is not None
    evidence.await_photos(session, notice.id, missing)
    return device.id, notice.id


def test_an_upload_during_a_push_that_names_its_photo_waits_for_the_push_then_clears_its_flag(clone_db, tmp_path):
    engine = create_engine(clone_db(), pool_size=4)
    files = evidence.EvidenceDir(tmp_path)
    content = jpeg("during the push")
    outcome: list[evidence.Stored] = []
    errors: list[BaseException] = []
    try:
        with Session(engine) as push:
            device_id, _ = flagged_notice(push, NOTICE_NO, [sha(content)])  # not committed yet

            def upload() -> None:
                try:
                    with Session(engine) as session:
                        outcome.append(
                            evidence.store_attachment(session, files, command(content, device_id), NOW, ACTOR)
                        )
                        session.commit()
                except BaseException as exc:  # reported below
                    errors.append(exc)

            uploader = threading.Thread(target=upload)
            uploader.start()
            uploader.join(1.0)
            assert uploader.is_alive(), "the upload must wait for the push that checked its photo"
            push.commit()
        uploader.join(30)
        assert errors == []
        (stored,) = outcome
        assert stored.created and stored.completed == [NOTICE_NO]
        with Session(engine) as session:
            notice = notice_ops.find_notice(session, NOTICE_NO)
            assert notice is not None and notice.flags == []
    finally:
        engine.dispose()
