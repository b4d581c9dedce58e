"""Bulk print runs (models.print_runs, services.mailing) on PostgreSQL: mailed documents into one PDF and an
e-그린우편 manifest, each printed once.

- a run over 40 사전통지서: one page per document, the manifest parses back and matches the PDF page for page, each
  page shows its addressee and facts, every QR on the sampled pages decodes to the notice's server-signed link;
- each document records its run and ``printed_at``; a rerun prints nothing; 부과 고지서 print the same way;
- a failed run gives its documents back and leaves no files; a run whose worker died is resumed at its cursor by
  the next worker once the lease ran out, its parts merged; the date range and bad selections;
- two runs on two connections never take the same document (the second waits, then skips what the first took);
- the ``print-run`` command: a progress bar, then the run as a table.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
import zxingcpp
from flask import Flask, has_app_context
from sqlalchemy import Connection, create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from adapters.postal import PostalRefused, SandboxPostal, parse_manifest
from models import fines, outbox, payment_refs, print_runs
from models import jobs as job_models
from models.base import Actor, Scope
from models.errors import InvalidInput, NotFound
from models.feed import register_writer
from models.fines.tables import ADVANCE_NOTICE, IMPOSITION_NOTICE, FineDocument
from models.jobs import JobBusy
from models.notices import Notice
from server import create_app, wiring
from server.config import Config
from server.runtime import unit_of_work
from services import jobs, mailing
from services import outbox as outbox_service
from services.outbox import Outside, deliver_due
from services.payment_links import LinkSettings, PaymentLinks
from services.uow import transactions
from tests.factories import CIPHER, CLERK, FakeRegistry, advance_noticed, kst, maker
from tests.factories import NOTICES_OBSERVED as OBSERVED
from tests.factories import OWNERS_LOOKED_UP as LOOKED_UP
from tests.support.outbox import deliver, outside

ACTOR = Actor(label="clerk-test")


# --- data: the 사전통지 sent come from tests.factories.advance_noticed; an approved decision ------------------------


@dataclasses.dataclass
class Decision:
    """An approved e-approval decision, as ``apply_decision`` takes it (the sandbox is tested in test_fines)."""

    submission_id: str
    reference_id: str
    document_type: str = fines.IMPOSITION_BATCH_DOCUMENT
    status: str = "approved"
    decided_by: str | None = "김결재"
    decided_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"submission_id": self.submission_id, "status": self.status, "decided_by": self.decided_by}


def impose_all(session: Session, now: datetime) -> fines.ImpositionBatch:
    batch = fines.propose_imposition(session, "11110", CLERK, now)
    fines.mark_submitted(session, batch, "fake", f"sub-{batch.id}", now)
    applied = fines.apply_decision(session, Decision(f"sub-{batch.id}", batch.reference_id, decided_at=now), CIPHER,
                                   now, approval_name="fake")  # fmt: skip
    assert applied is not None and applied.status == "applied"
    return applied


@pytest.fixture
def config(test_config: Config, tmp_path: Path) -> Config:
    # 16 documents a chunk: the run of 40 below is rendered in three parts, merged at the end
    return dataclasses.replace(test_config, var_dir=tmp_path, print_run_chunk=16)


@pytest.fixture
def app(connection: Connection, config: Config) -> Flask:
    return create_app(config, bind=connection)


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    with Session(bind=connection, join_transaction_mode="create_savepoint") as s:
        yield s


def mailroom(app: Flask) -> mailing.Mailroom:
    """What a print run needs, from the app's configuration (no app context: the service needs none)."""
    return wiring.mailroom(app.extensions["jingsu"])


def run(app: Flask, kind: str = ADVANCE_NOTICE, **kw: Any) -> print_runs.PrintRun:
    return mailing.print_run(mailroom(app), print_runs.PrintSelection(kind, "11110", **kw), Scope.everything(), ACTOR)


# --- PDF helpers ----------------------------------------------------------------------------------------------------


def pdf_pages(path: Path) -> list[str]:
    document = pdfium.PdfDocument(str(path))
    try:
        return [" ".join(document[i].get_textpage().get_text_range().split()) for i in range(len(document))]
    finally:
        document.close()


def page_qr_codes(path: Path, page: int) -> list[str]:
    document = pdfium.PdfDocument(str(path))
    try:
        image = document[page].render(scale=3).to_pil().convert("L")
    finally:
        document.close()
    return [barcode.text for barcode in zxingcpp.read_barcodes(image)]


def document_of(session: Session, document_no: str) -> tuple[FineDocument, Notice]:
    document_id = int(document_no.rsplit("-", 1)[1])
    row = session.execute(
        select(FineDocument, Notice)
        .join(Notice, Notice.id == FineDocument.notice_id)
        .where(FineDocument.id == document_id)
    ).one()
    return row[0], row[1]


# --- tests ----------------------------------------------------------------------------------------------------------


def test_a_run_prints_every_unprinted_advance_notice_into_one_pdf_that_matches_its_manifest_page_for_page(
    app: Flask, session: Session, config: Config
) -> None:
    numbers = advance_noticed(session, 40)

    done = run(app)

    assert (done.status, done.documents, done.pages) == ("printed", 40, 40)
    assert done.pdf_path == str(config.var_dir / "print-runs" / str(done.id) / "notices.pdf")
    pdf, manifest_path = Path(done.pdf_path), Path(done.manifest_path or "")
    manifest = parse_manifest(manifest_path.read_bytes())
    assert (manifest.header.run_id, manifest.header.sender_code, manifest.header.pieces) == (done.id, "11110", 40)
    assert manifest.header.sender_name == "서울특별시 종로구청"
    assert manifest.total_pages == 40
    pages = pdf_pages(pdf)
    assert len(pages) == 40
    seen = []
    for piece in manifest.pieces:
        document, notice = document_of(session, piece.document_no)
        seen.append(notice.notice_no)
        owner = CIPHER.decrypt_json(document.addressee_enc, context=notice.notice_no.encode())
        assert (piece.name, piece.postal_code) == (owner["name"], owner["address"]["postal_code"])
        assert piece.address == f"{owner['address']['line1']} {owner['address']['line2']}"
        assert (piece.first_page, piece.last_page) == (piece.seq, piece.seq)
        text = pages[piece.first_page - 1]
        for shown in ("사전통지서", piece.document_no, notice.notice_no, owner["name"], owner["address"]["line1"],
                      notice.vehicle_plate, "의견제출", "32,000원", "40,000원"):  # fmt: skip
            assert shown in text, f"{shown!r} missing on page {piece.first_page}"
        assert "1234567" not in text  # never a full RRN
    assert sorted(seen) == sorted(numbers)
    with app.app_context(), unit_of_work() as s:
        for page in (0, 19, 39):
            document, notice = document_of(s, manifest.pieces[page].document_no)
            assert page_qr_codes(pdf, page) == [mailroom(app).links.link(s, notice)]
    # each document records its run and when it was printed; the sandbox post kept the manifest
    for piece in manifest.pieces:
        item = print_runs.printing_of(session, int(piece.document_no.rsplit("-", 1)[1]))
        assert item is not None and item.run_id == done.id and item.printed_at is not None
        assert (item.seq, item.first_page) == (piece.seq, piece.seq)
    # the hand-over to the post went into the outbox with the run: the worker's delivery brings the receipt
    assert done.postal_name == "sandbox" and done.postal_receipt is None
    post = SandboxPostal(config.var_dir / "postal")
    for _ in range(2):  # a second round finds nothing left; the sandbox applied the key once
        deliver(session, datetime.now(UTC), outside(CIPHER, postal=post))
    mailed = session.get(print_runs.PrintRun, done.id, populate_existing=True)
    assert mailed is not None and mailed.postal_receipt and mailed.postal_receipt.startswith("EGP-SBX-")
    assert (config.var_dir / "postal" / f"{mailed.postal_receipt}.txt").read_bytes() == manifest_path.read_bytes()
    assert post.idempotency() == {f"postal:print-run:{done.id}": {"deliveries": 1, "effects": 1}}

    again = run(app)

    assert (again.status, again.documents, again.pdf_path) == ("empty", 0, None)


def test_imposition_notices_print_with_their_due_date_and_surcharges_and_only_the_kind_asked_for(
    app: Flask, session: Session
) -> None:
    advance_noticed(session, 3)
    impose_all(session, kst(date(2025, 12, 20)))

    done = run(app, IMPOSITION_NOTICE)

    assert (done.status, done.documents) == ("printed", 3)
    manifest = parse_manifest(Path(done.manifest_path or "").read_bytes())
    assert all(piece.document_no.startswith("부과-2025-") for piece in manifest.pieces)
    for text in pdf_pages(Path(done.pdf_path or "")):
        assert "과태료 부과 고지서" in text and "가산금" in text and "이의제기" in text
    # the 사전통지서 of the same cases are still unprinted: a run takes one kind
    assert run(app, ADVANCE_NOTICE).documents == 3


def test_a_hand_over_the_post_refuses_waits_as_a_dead_letter_and_when_cancelled_gives_its_documents_back(
    app: Flask, session: Session, config: Config
) -> None:
    advance_noticed(session, 5)

    class Refusing:
        name = "refusing"

        def submit(self, manifest_path: Path, pdf_path: Path, *, idempotency_key: str | None = None) -> str:
            raise PostalRefused("closed for the holiday")

    done = run(app)
    assert (done.status, done.documents, done.postal_receipt) == ("printed", 5, None)
    report = deliver(session, datetime.now(UTC), outside(CIPHER, postal=Refusing()))
    assert report.dead == 1
    [row] = outbox.list_rows(session, Scope.everything(), status=outbox.DEAD, target="postal", limit=10)
    assert "closed for the holiday" in (row.last_error or "")
    assert Path(done.pdf_path or "").is_file()  # kept for a retry once the post opens again

    outbox_service.cancel(session, Scope.everything(), row.id, ACTOR, "the post will not take it", datetime.now(UTC))

    failed = session.get(print_runs.PrintRun, done.id, populate_existing=True)
    assert failed is not None and (failed.status, failed.documents, failed.pdf_path) == ("failed", 0, None)
    assert "cancelled" in (failed.error or "")
    assert print_runs.items(session, done.id) == []
    assert not (config.var_dir / "print-runs" / str(done.id)).exists()
    assert run(app).documents == 5  # a later run prints them


class Died(BaseException):
    """The worker's process ending mid-chunk (nothing of ours catches a BaseException but to hand a job back)."""


def test_a_run_whose_worker_died_is_resumed_at_its_cursor_by_the_next_worker_once_the_lease_ran_out(
    app: Flask, session: Session, config: Config
) -> None:
    advance_noticed(session, 7)
    room = dataclasses.replace(mailroom(app), chunk=3, lease=timedelta(seconds=30))
    selection = print_runs.PrintSelection(ADVANCE_NOTICE, "11110")
    started = mailing.start_run(room, selection, Scope.everything(), ACTOR, worker="dies")
    claim = mailing.take_run(room, started.id, "dies")

    def die_at_the_fifth(n: int) -> None:
        if n == 5:
            raise Died

    with pytest.raises(Died):
        mailing.finish_run(room, claim, progress=die_at_the_fifth)

    # the first chunk is committed with the cursor; the second rolled back; the lease still holds the job
    half = session.get(print_runs.PrintRun, started.id, populate_existing=True)
    assert half is not None and (half.status, half.rendered, half.documents) == ("printing", 3, 7)
    inputs = dataclasses.replace(wiring.job_inputs(app.extensions["jingsu"]), mailroom=room)
    worker = jobs.Worker(room.transaction, room.clock, inputs, "next")
    assert worker.next([mailing.JOB_NAME]) is None  # not due: its lease has not run out
    with pytest.raises(JobBusy):
        worker.by_hand(mailing.job_key(started.id))
    row = job_models.job(session, mailing.job_key(started.id))
    assert row is not None
    row.leased_until = datetime.now(UTC) - timedelta(seconds=1)  # the lease ran out (its worker renews no more)
    session.flush()

    outcome = worker.next([mailing.JOB_NAME])

    assert outcome is not None and outcome.ok, outcome
    assert outcome.counts == {"documents": 7, "pages": 7, "resumed_at": 3}
    assert "resumed after document 3" in outcome.summary
    done = session.get(print_runs.PrintRun, started.id, populate_existing=True)
    assert done is not None and (done.status, done.rendered, done.pages) == ("printed", 7, 7)
    manifest = parse_manifest(Path(done.manifest_path or "").read_bytes())
    pages = pdf_pages(Path(done.pdf_path or ""))
    assert len(pages) == manifest.total_pages == 7
    for piece in manifest.pieces:  # page n is the document the manifest lists n-th, across the three parts
        assert piece.document_no in pages[piece.first_page - 1] and piece.name in pages[piece.first_page - 1]
    assert not (config.var_dir / "print-runs" / str(done.id) / "parts").exists()
    runs = job_models.runs(session, row.id)
    assert [(r.worker, r.ok) for r in runs] == [("dies", False), ("next", True)]
    assert "lost: worker dies stopped" in (runs[0].error or "")
    session.refresh(row)
    assert (row.status, row.attempts, row.leased_by) == ("done", 2, None)


def test_the_date_range_selects_by_issue_date_and_bad_selections_are_refused_naming_the_field(
    app: Flask, session: Session
) -> None:
    advance_noticed(session, 2, now=LOOKED_UP)
    advance_noticed(session, 3, observed=kst(date(2025, 11, 25)), now=kst(date(2025, 11, 27), 10))

    assert run(app, issued_from=date(2025, 11, 25), issued_to=date(2025, 11, 26)).documents == 0
    assert run(app, issued_to=date(2025, 11, 24)).documents == 2
    assert run(app, issued_from=date(2025, 11, 27), limit=2).documents == 2
    assert run(app).documents == 1

    scope = Scope.only("11140")
    for selection, error, field in [
        (print_runs.PrintSelection("demand_notice", "11110"), InvalidInput, "kind"),
        (print_runs.PrintSelection(ADVANCE_NOTICE, "11110", date(2025, 12, 2), date(2025, 12, 1)), InvalidInput,
         "issued_to"),
        (print_runs.PrintSelection(ADVANCE_NOTICE, "11110", limit=0), InvalidInput, "limit"),
        (print_runs.PrintSelection(ADVANCE_NOTICE, "11110"), NotFound, "jurisdiction"),
    ]:  # fmt: skip
        with pytest.raises(error) as refused:
            print_runs.check_selection(selection, scope if error is NotFound else Scope.everything())
        assert refused.value.field == field


def test_two_runs_on_two_connections_never_take_the_same_document(clone_db: Callable[[], str], config: Config) -> None:
    engine = create_engine(clone_db())
    try:
        with Session(engine) as s:
            register_writer(s)  # a test's setup transaction writes changes after other rows
            advance_noticed(s, 30)
            s.commit()
        selection = print_runs.PrintSelection(ADVANCE_NOTICE, "11110", limit=20)
        now = datetime.now(UTC)
        # the first run has taken its share but not committed; the second waits for it, then skips that share
        with Session(engine) as first, Session(engine) as second:
            a = print_runs.claim_documents(first, selection, Scope.everything(), ACTOR, now)
            taken_b: list[int] = []

            def claim_second() -> None:
                b = print_runs.claim_documents(second, selection, Scope.everything(), ACTOR, now)
                taken_b.extend(print_runs.claimed_document_ids(second, b.id))
                second.commit()

            thread = threading.Thread(target=claim_second)
            thread.start()
            thread.join(0.5)
            assert thread.is_alive(), "the second run should wait for the first's commit"
            taken_a = print_runs.claimed_document_ids(first, a.id)
            first.commit()
            thread.join(10)
        assert len(taken_a) == 20 and len(taken_b) <= 10 and not set(taken_a) & set(taken_b)

        # whole runs, concurrently, through two apps on the cloned database: each document printed exactly once
        with Session(engine) as s:
            s.execute(print_runs.PrintRunItem.__table__.delete())
            s.commit()
        apps = [create_app(dataclasses.replace(config, database_url=str(engine.url.render_as_string(
            hide_password=False)))) for _ in range(2)]  # fmt: skip
        results: list[print_runs.PrintRun] = []
        errors: list[BaseException] = []

        def whole_run(app: Flask) -> None:
            try:
                results.append(run(app))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=whole_run, args=(a,)) for a in apps]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        with Session(engine) as s:
            per_run = {r.id: print_runs.claimed_document_ids(s, r.id) for r in results}
            printed = [i for ids in per_run.values() for i in ids]
            assert len(printed) == len(set(printed)) == 30
            assert sum(r.documents for r in results) == 30
            for r in results:
                if r.documents:
                    assert parse_manifest(Path(r.manifest_path or "").read_bytes()).header.pieces == r.documents
        for a in apps:
            engine_of = a.extensions["jingsu"].engine
            if engine_of is not None:
                engine_of.dispose()
    finally:
        engine.dispose()


def test_the_print_run_command_shows_progress_then_the_run_as_a_table(app: Flask, session: Session) -> None:
    advance_noticed(session, 6)

    result = app.test_cli_runner().invoke(args=["print-run", "--kind", "advance_notice", "--jurisdiction", "11110"])

    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) if not line.startswith("postal") else ("postal", line[len("postal receipt"):])
                 for line in result.output.splitlines() if line and not line.startswith("print run"))  # fmt: skip
    assert lines["status"].strip() == "printed" and lines["documents"].strip() == "6"
    assert lines["pages"].strip() == "6" and lines["pdf"].strip().endswith("notices.pdf")
    assert lines["manifest"].strip().endswith("manifest.txt")
    assert "waiting for sandbox" in lines["postal"]  # the worker hands it over through the outbox
    again = app.test_cli_runner().invoke(args=["print-run", "--kind", "advance_notice", "--jurisdiction", "11110"])
    assert again.exit_code == 0 and "empty" in again.output
    bad = app.test_cli_runner().invoke(args=["print-run", "--kind", "advance_notice", "--jurisdiction", "11110",
                                             "--from", "2025-12-02", "--to", "2025-12-01"])  # fmt: skip
    assert bad.exit_code != 0 and "issued_to" in bad.output


def test_a_job_and_a_print_run_run_through_the_services_with_no_flask_app_at_all(
    connection: Connection, session: Session, config: Config
) -> None:
    # what the worker and the commands do: sessions, the clock, the cipher, the adapters and the settings passed in
    made = [maker(session).parking(OBSERVED, plate=f"77가{1000 + i:04d}") for i in range(2)]
    session.flush()
    sessions = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    bank = payment_refs.Bank(code=config.va_bank_code, name=config.va_bank_name, prefix=config.va_prefix)
    links = PaymentLinks(LinkSettings(config.pay_base_url, bank, config.va_account_holder), CIPHER)
    settings = jobs.JobSettings(timedelta(days=30), timedelta(days=7), timedelta(days=30), "sandbox",
                                timedelta(minutes=10), timedelta(hours=24))  # fmt: skip

    def no_gateway() -> Any:
        raise AssertionError("the owner lookups ask no gateway and no e-approval")

    inputs = jobs.JobInputs(settings, CIPHER)
    lookups = ["lookup-owners"]

    [outcome] = jobs.Worker(transactions(sessions), lambda: LOOKED_UP, inputs, "test").run_once(lookups)
    systems = Outside(CIPHER, registry=FakeRegistry, approval=no_gateway, gateway=no_gateway)
    delivered = deliver_due(transactions(sessions), lambda: LOOKED_UP, systems, "test-worker")

    assert outcome.ok and "2 plates queued" in outcome.summary, outcome.summary
    assert delivered.outcomes == {"registry.lookup:noticed": 2}, delivered.summary()
    post = SandboxPostal(config.var_dir / "postal")
    room = mailing.Mailroom(
        transactions(sessions), lambda: LOOKED_UP, CIPHER, links, lambda: post, config.var_dir / "print-runs"
    )
    done = mailing.print_run(room, print_runs.PrintSelection(ADVANCE_NOTICE, "11110"), Scope.everything(), ACTOR)

    assert (done.status, done.documents) == ("printed", 2)
    pages = pdf_pages(Path(done.pdf_path or ""))
    assert sorted(n.notice_no for n in made) == sorted(
        next(n.notice_no for n in made if n.notice_no in page) for page in pages
    )
    assert not has_app_context()
