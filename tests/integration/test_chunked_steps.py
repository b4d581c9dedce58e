"""Long jobs commit in bounded chunks (issue 12 §1): the business date's steps and the hotlist, and feed compaction.

A chunked advance decides exactly what one big transaction decides; between its chunks a device already pulls what
the earlier chunks told it (the job holds no change-writing transaction for long); a run cut short after a chunk
resumes when started again and decides nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

import protocol
from models import arrears, ledger, notices, payment_refs
from models.base import Actor
from models.devices import RegisterDevice, register_device
from models.feed import ChangeLog
from models.rules import full_month_elapses_on
from models.treasury import daily_file
from models.treasury.message import BankReport
from models.treasury.tables import TreasuryFile
from models.users import User
from services import steps
from services.compaction import compact_feed
from services.treasury import import_daily_file
from services.uow import transactions
from sync.changes import PullSettings, pull
from tests.factories import CIPHER, parking_command

SYSTEM = Actor.system()
ISSUED = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
DUE = date(2030, 1, 31)
DAY = full_month_elapses_on(DUE, 3)  # overdue three months: 가산금, 중가산금 and the hotlist
PLATES = ["11가1111", "11가1111", "22나2222", "33다3333", "33다3333", "44라4444", "55마5555"]
AMOUNTS = [200_000, 150_000, 400_000, 90_000, 320_000, 40_000, 500_000]
PULL = PullSettings(block_size=10, min_live_blocks=1, block_expiry=timedelta(days=30), device_settings={})


class Fines:
    """Seven imposed parking fines of one device on a database of their own."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.transaction = transactions(sessionmaker(engine))
        with self.transaction() as session:
            device, _ = register_device(
                session, RegisterDevice("11110", "분할 시험 단말"), SYSTEM, ISSUED, timedelta(hours=1)
            )
            self.device_id = device.id
            officer = session.scalar(select(User).where(User.login == "officer.11110.1"))
            assert officer is not None
            self.notice_nos: list[str] = []
            self.receivables = [
                self._impose(session, officer.id, n, plate, amount)
                for n, (plate, amount) in enumerate(zip(PLATES, AMOUNTS, strict=True))
            ]
        self.cursor: str | None = None

    def _impose(self, session: Session, officer_id: int, n: int, plate: str, amount: int) -> int:
        number = protocol.format_notice_no("11110", "26", 8_000_000 + n)
        cmd = replace(parking_command(number, self.device_id, officer_id, plate), amount=amount,
                      reduced_amount=amount * 4 // 5)  # fmt: skip
        notice = notices.issue_notice(session, cmd, Actor(device_id=self.device_id), ISSUED, CIPHER)
        assert notice is not None
        self.notice_nos.append(number)
        receivable = notices.receivable_of(session, notice.id)
        assert receivable is not None
        arrears.start_collection(session, receivable.id, DUE)
        return receivable.id

    def heads(self) -> list[dict[str, int]]:
        with Session(self.engine) as session:
            return [
                {kind: amount for kind, amount in arrears.heads_of(session, rid).items() if amount}
                for rid in self.receivables
            ]

    def listed(self) -> list[tuple[str, int]]:
        with Session(self.engine) as session:
            return [(e.plate, e.amount_due) for e in arrears.listed(session, "11110")]

    def pulled(self) -> list[dict]:
        """Pull everything new for the device (as a device would, committing each page)."""
        seen: list[dict] = []
        while True:
            with Session(self.engine) as session:
                page = pull(session, self.device_id, self.cursor, 1000, ISSUED, PULL)
                session.commit()
            seen += page["changes"]
            self.cursor = page["next_cursor"]
            if not page["has_more"]:
                return seen


@pytest.fixture
def engines(clone_db) -> Iterator[list[Engine]]:
    made = [create_engine(clone_db()) for _ in range(2)]
    try:
        yield made
    finally:
        for engine in made:
            engine.dispose()


def test_a_chunked_advance_decides_exactly_what_one_transaction_does(engines: list[Engine]) -> None:
    chunked, whole = Fines(engines[0]), Fines(engines[1])

    report = steps.advance(chunked.transaction, DAY, SYSTEM, lambda: ISSUED, chunk=2)
    with whole.transaction() as session:
        expected = arrears.advance_business_date(session, DAY, SYSTEM, lambda: ISSUED)

    assert chunked.heads() == whole.heads()
    assert chunked.listed() == whole.listed() != []
    assert (report.receivables, report.posted, report.amount) == (
        expected.receivables,
        expected.posted,
        expected.amount,
    )
    assert report.posted > 0
    assert report.chunks >= 1 + 4 + 4  # the move, then ⌈7 / 2⌉ chunks of each step


def test_between_chunks_a_device_already_pulls_what_the_earlier_chunks_told_it(engines: list[Engine]) -> None:
    fines = Fines(engines[0])
    fines.pulled()
    overdue: set[str] = set()
    done_so_far: list[tuple[int, int]] = []

    def after_each_chunk(what: str, done: int) -> None:
        if what != "daily":
            return
        overdue.update(c["key"] for c in fines.pulled() if c["entity"] == "notice_status"
                       and c["data"]["status"] == "overdue")  # fmt: skip
        done_so_far.append((done, len(overdue)))

    steps.advance(fines.transaction, DAY, SYSTEM, lambda: ISSUED, chunk=2, progress=after_each_chunk)
    # after every chunk, every receivable it marked overdue had already reached the device
    assert done_so_far == [(2, 2), (4, 4), (6, 6), (7, 7)]


def test_a_run_cut_short_after_a_chunk_resumes_and_decides_nothing_twice(engines: list[Engine]) -> None:
    fines, whole = Fines(engines[0]), Fines(engines[1])

    def crash(_what: str, _done: int) -> None:
        raise Crash

    with pytest.raises(Crash):
        steps.advance(fines.transaction, DAY, SYSTEM, lambda: ISSUED, chunk=3, progress=crash)
    with Session(fines.engine) as session:
        assert arrears.business_date(session) == DAY  # moved, with its first chunk done
        surcharged = session.scalar(select(func.count()).select_from(ledger.LedgerEntry).where(
            ledger.LedgerEntry.kind == "surcharge"))  # fmt: skip
        assert surcharged == 3

    steps.advance(fines.transaction, DAY, SYSTEM, lambda: ISSUED, chunk=3)  # the same day again: resumes
    with whole.transaction() as session:
        arrears.advance_business_date(session, DAY, SYSTEM, lambda: ISSUED)
    assert fines.heads() == whole.heads()
    assert fines.listed() == whole.listed()


def test_feed_compaction_in_chunks_removes_what_one_pass_removes(engines: list[Engine]) -> None:
    counts = []
    for engine, chunk in zip(engines, (3, 10_000), strict=True):
        fines = Fines(engine)
        steps.advance(fines.transaction, DAY, SYSTEM, lambda: ISSUED)
        steps.advance(fines.transaction, full_month_elapses_on(DUE, 4), SYSTEM, lambda: ISSUED)
        later = datetime.now(UTC) + timedelta(days=400)
        done = compact_feed(
            fines.transaction, later, tombstone_age=timedelta(days=1), superseded_age=timedelta(days=1), chunk=chunk
        )
        with Session(engine) as session:
            left = session.scalars(select(ChangeLog.key).order_by(ChangeLog.id)).all()
        counts.append((done.superseded, done.tombstones, left))
        if chunk == 3:
            assert done.chunks > 1
    assert counts[0] == counts[1]
    assert counts[0][0] > 0


class Crash(Exception):
    pass


def test_a_daily_file_imports_a_chunk_at_a_time_and_an_import_cut_short_resumes(engines: list[Engine]) -> None:
    paid_at = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    results = []
    for engine, chunk in zip(engines, (2, 10_000), strict=True):
        fines = Fines(engine)
        records = [
            BankReport("088", f"R{n}", "deposit", "bank", payment_refs.payment_no_of(no, "41"), 10_000, paid_at)
            for n, no in enumerate(fines.notice_nos)
        ]
        data = daily_file.write_daily_file("088", paid_at.date(), records).encode()

        def crash_on_line_3(line: int, _total: int) -> None:
            if line == 3:
                raise Crash

        if chunk == 2:
            with pytest.raises(Crash):
                import_daily_file(fines.transaction, data, "088.txt", SYSTEM, ISSUED, chunk=2, progress=crash_on_line_3)
            with Session(engine) as session:
                cut = session.scalars(select(TreasuryFile)).one()
                assert (cut.lines_done, cut.lines) == (2, 7)  # the first chunk committed, the second rolled back
        done = import_daily_file(fines.transaction, data, "088.txt", SYSTEM, ISSUED, chunk=chunk)
        with Session(engine) as session:
            files = [(f.lines_done, f.lines, f.summary) for f in session.scalars(select(TreasuryFile))]
        results.append((dict(done.outcomes), files))
    assert results[0] == results[1]
    assert sum(results[0][0].values()) == 7 and "repeated" not in results[0][0]
