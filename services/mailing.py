"""Bulk print runs (issue 6): mailed documents from the database into one merged A4 PDF and an e-그린우편 manifest,
handed to the postal service — rendered by the worker (issue 12), a chunk at a time.

``start_run`` takes the documents (``models.print_runs.claim_documents``) and queues the one-off job ``print-run``
that prints them (``models.jobs``), in one transaction, so a concurrent run sees them taken and no run is left
without its job; the API answers at once. ``finish_run`` is that job: it builds each document from its
``fine_documents`` row (addressee decrypted only here, payment details from ``services.payment_links``) and renders
``chunk`` documents at a time into a PDF part and their manifest lines under ``<var_dir>/print-runs/<run id>/parts``,
each part committed with the run's cursor (``rendered``: the progress ``GET /api/v1/print-runs/<id>`` shows). A run
whose worker died is taken over by another worker when the job's lease runs out and resumed at its cursor. At the
end the parts are merged into ``notices.pdf`` (``printing.a4.merge_pdfs``) beside ``manifest.txt``, both are
submitted to the postal adapter (``_hand_over``) and every item's pages and ``printed_at`` recorded. A failure gives
the documents back (``release``) and removes the run's files. ``print_run`` does it all in this process (the
``flask --app wsgi print-run`` command, with its progress bar, and the tests), recorded as the worker records it.

What a run needs comes in a ``Mailroom`` (transactions, clock, cipher, payment links, the postal service, the
directory of the runs' files, the chunk size and the lease), built by the caller: the worker, the API handler, the
command, a test.

Memory: documents are built one at a time from slices of ids, and each part's PDF goes to a file (``printing.a4``
keeps a part's finished pages deflated, ~12 KB a page, until it writes the file); merging holds the whole PDF once
(``pypdf``), as one render did before.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.postal import MailPiece, ManifestHeader, ManifestWriter, PostalService
from models import jobs, outbox, print_runs, rules
from models.base import Actor, Clock, Scope
from models.crypto import PiiCipher
from models.fines.tables import ADVANCE_NOTICE, IMPOSITION_NOTICE, FineCase, FineDocument
from models.jurisdictions import Jurisdiction
from models.notices import Notice
from models.rules.rows import HARDSHIP_REDUCTION
from printing.a4 import merge_pdfs, write_documents_pdf
from printing.documents import Addressee, AdvanceNotice, Authority, Facts, ImpositionNotice
from protocol import seoul_date
from services.job_runs import run_claimed, worker_id
from services.payment_links import PaymentLinks
from services.uow import Transactions

log = logging.getLogger(__name__)

PDF_NAME = "notices.pdf"
MANIFEST_NAME = "manifest.txt"
CHUNK = 200  # documents rendered into one PDF part and committed with the cursor (JINGSU_PRINT_RUN_CHUNK)
QUERY_SLICE = 200  # documents loaded per query while rendering
PARTS, PART_PDF, PART_LINES = "parts", ".pdf", ".jsonl"  # parts/<first document, 6 digits>.pdf and .jsonl
JOB_NAME = "print-run"
MAX_ATTEMPTS = 5  # a run whose workers died this many times (e.g. out of memory) fails and gives its documents back
DOCUMENT_PREFIX = {ADVANCE_NOTICE: "사전통지", IMPOSITION_NOTICE: "부과"}

Progress = Callable[[int], None]
PrintDocument = AdvanceNotice | ImpositionNotice


@dataclass(frozen=True)
class Printable:
    """A document ready to render, and the envelope the manifest lists for it."""

    document: PrintDocument
    document_no: str
    addressee: Addressee


@dataclass(frozen=True)
class Mailroom:
    """What a print run needs: transactions to commit in, the clock, the cipher of the addressees, the payment
    details of each document, the post, the directory each run's files go under (``<var_dir>/print-runs``), the
    documents a chunk and the lease of the job printing it (renewed at each chunk)."""

    transaction: Transactions
    clock: Clock
    cipher: PiiCipher
    links: PaymentLinks
    postal: Callable[[], PostalService]  # built when a run is posted
    directory: Path
    chunk: int = CHUNK
    lease: timedelta = timedelta(minutes=5)

    def run_dir(self, run_id: int) -> Path:
        return self.directory / str(run_id)


# --- documents from the database ------------------------------------------------------------------------------------


def authority_of(session: Session, jurisdiction: str) -> Authority:
    """The issuing authority as printed: ``서울특별시 종로구청``, signed ``서울특별시 종로구청장``."""
    row = session.get(Jurisdiction, jurisdiction)
    if row is None:
        raise LookupError(f"no jurisdiction {jurisdiction}")
    parent = session.get(Jurisdiction, row.parent_code) if row.parent_code else None
    name = f"{parent.name} {row.name}" if parent is not None else row.name
    return Authority(name=f"{name}청", head=f"{name}청장", address=row.address or name)


def addressee_of(document: FineDocument, notice: Notice, cipher: PiiCipher) -> Addressee:
    """The addressee in clear (its ciphertext's context is the notice number): name, address, postal code."""
    if document.addressee_enc is None:
        raise LookupError(f"document {document.id} has no addressee")
    party: dict[str, Any] = cipher.decrypt_json(document.addressee_enc, context=notice.notice_no.encode())
    address = party.get("address")
    if isinstance(address, dict):  # the registry's: postal code, line 1, line 2
        line = " ".join(str(part) for part in (address.get("line1"), address.get("line2")) if part)
        postal_code = address.get("postal_code") or None
    else:  # a person notice's offender: the address as the officer wrote it
        line, postal_code = str(address or ""), None
    return Addressee(name=str(party.get("name") or ""), address=line, postal_code=postal_code)


def facts_of(data: dict[str, Any]) -> Facts:
    vehicle = data.get("vehicle") or {}
    return Facts(
        notice_no=data["notice_no"],
        violation_code=data["violation_code"],
        violation_name=data["violation"],
        observed_at=datetime.fromisoformat(data["observed_at"]),
        place=data["place"],
        legal_basis=data["law"],
        plate=vehicle.get("plate"),
        vehicle_type=vehicle.get("type"),
    )


def _percent(rate: str | Decimal) -> Decimal:
    """A stored rate (``"0.012"``) as the printed percent (``Decimal("1.2")``)."""
    value = Decimal(rate) * 100
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def hardship_percent(book: rules.RuleBook, on: date, keys: Sequence[str] = ()) -> int:
    """The largest 감경 rate (시행령 §2의2) in force on ``on``, as a whole percent (the notice says "up to")."""
    rows = [r for r in book.scoped(HARDSHIP_REDUCTION, on) if not keys or r.key in keys]
    return int(max((r.need_rate() for r in rows), default=Decimal("0.5")) * 100)


def build_printable(
    session: Session,
    links: PaymentLinks,
    document: FineDocument,
    notice: Notice,
    cipher: PiiCipher,
    book: rules.RuleBook,
    authorities: dict[str, Authority] | None = None,
) -> Printable:
    """The printing document of one ``fine_documents`` row (사전통지서 or 부과 고지서) with the notice's payment
    details (``PaymentLinks.info``: payment number, virtual account issued on first use, signed QR).

    Raises ``LookupError`` (no addressee, no receivable, no QR key) or ``printing``'s ``InvalidDocumentError``."""
    data = document.data
    cache = authorities if authorities is not None else {}
    if notice.jurisdiction not in cache:
        cache[notice.jurisdiction] = authority_of(session, notice.jurisdiction)
    authority = cache[notice.jurisdiction]
    addressee = addressee_of(document, notice, cipher)
    facts = facts_of(data["facts"])
    payment = links.info(session, notice)
    document_no = f"{DOCUMENT_PREFIX.get(document.kind, document.kind)}-{document.issued_on.year}-{document.id:08d}"
    printed: PrintDocument
    if document.kind == ADVANCE_NOTICE:
        opinion_deadline = document.deadline or date.fromisoformat(data["opinion"]["deadline"])
        printed = AdvanceNotice(
            document_no=document_no,
            issued_on=document.issued_on,
            authority=authority,
            addressee=addressee,
            facts=facts,
            amount=int(data["amount"]),
            reduced_amount=int(data["self_payment"]["reduced_amount"]),
            opinion_deadline=opinion_deadline,
            reduced_until=date.fromisoformat(data["self_payment"]["until"]),
            hardship_reduction_percent=hardship_percent(
                book, document.issued_on, data.get("hardship", {}).get("rules", ())
            ),
            payment=payment,
        )
    elif document.kind == IMPOSITION_NOTICE:
        non_payment = data["non_payment"]
        printed = ImpositionNotice(
            document_no=document_no,
            issued_on=document.issued_on,
            authority=authority,
            addressee=addressee,
            facts=facts,
            amount=int(data["amount"]),
            due_date=date.fromisoformat(data["payment"]["due_date"]),
            payment=payment,
            payment_methods=tuple(data["payment"]["methods"]),
            collector=data["payment"]["collector"],
            surcharge_percent=_percent(non_payment["surcharge"]["rate"]),
            monthly_surcharge_percent=_percent(non_payment["monthly_surcharge"]["rate"]),
            monthly_surcharge_max_months=int(non_payment["monthly_surcharge"]["months"]),
            measures=tuple(non_payment["measures"]),
            objection_days=int(data["objection"]["period_days"]),
        )
    else:
        raise LookupError(f"document {document.id} is a {document.kind}: no printed form")
    return Printable(printed, document_no, addressee)


def printable_of(session: Session, links: PaymentLinks, document_id: int, cipher: PiiCipher) -> Printable:
    """One document by id (a preview, a test)."""
    row = session.execute(
        select(FineDocument, Notice)
        .join(Notice, Notice.id == FineDocument.notice_id)
        .where(FineDocument.id == document_id)
    ).one()
    return build_printable(session, links, row[0], row[1], cipher, rules.load_rulebook(session))


# --- running a run --------------------------------------------------------------------------------------------------


def job_key(run_id: int) -> str:
    """The key of the one-off job that prints run ``run_id`` (``models.jobs``)."""
    return f"{JOB_NAME}:{run_id}"


def start_run(
    room: Mailroom, selection: print_runs.PrintSelection, scope: Scope, actor: Actor, *, worker: str | None = None
) -> print_runs.PrintRun:
    """Take the selection's unprinted documents in a run of their own and queue the job that prints it, in one
    transaction (status ``claimed``, or ``empty``). ``worker``: the job is leased to it at once (it prints the run
    itself, as ``print_run`` does); otherwise any worker takes it.

    Raises ``models.errors.InvalidInput`` / ``NotFound`` for a bad selection."""
    with room.transaction() as session:
        run = print_runs.claim_documents(session, selection, scope, actor, room.clock())
        if run.status == print_runs.CLAIMED:
            jobs.enqueue(session, JOB_NAME, job_key(run.id), {"run_id": run.id}, leased_to=worker, lease=room.lease)
        return run


def take_run(room: Mailroom, run_id: int, worker: str) -> jobs.Claim:
    """Claim the job of run ``run_id`` for ``worker`` now (raises like ``models.jobs.take``)."""
    with room.transaction() as session:
        return jobs.take(session, job_key(run_id), worker, room.lease)


def finish_run(room: Mailroom, claim: jobs.Claim, *, progress: Progress | None = None) -> print_runs.PrintRun:
    """The job of a claimed run: render its documents a chunk at a time, each chunk's PDF part and manifest lines
    committed with the run's cursor (``rendered``), then merge the parts, submit the PDF and the manifest to the
    post and record each item printed. Resumes at the cursor a run an earlier worker left; a run already printed
    (or failed) is returned as it is.

    ``progress(n)`` after the n-th document. Every step holds the job's lease (``models.jobs.hold``): when another
    worker has taken the job over, ``LeaseLost`` is raised and the run left to it. On any other error the run is
    ``failed``, its documents are given back and its files removed; the error is raised again."""
    run_id = int(claim.payload["run_id"])
    try:
        if claim.attempt > MAX_ATTEMPTS:
            raise RuntimeError(f"its workers stopped {claim.attempt - 1} times before it was printed")
        while (run := _render_chunk(room, claim, run_id, progress)).status == print_runs.PRINTING:
            if run.rendered == run.documents:
                return _post(room, claim, run_id)
        return run
    except jobs.LeaseLost:
        raise
    except Exception as exc:
        # the type and the message only: printing's and the adapter's messages name fields, never values
        with room.transaction() as session:
            jobs.hold(session, claim)
            print_runs.release(session, run_id, f"{type(exc).__name__}: {exc}", room.clock())
        shutil.rmtree(room.run_dir(run_id), ignore_errors=True)
        log.warning("print run %s failed and gave its documents back: %s", run_id, type(exc).__name__)
        raise


def render_job(room: Mailroom, claim: jobs.Claim, *, progress: Progress | None = None) -> jobs.Report:
    """``finish_run`` as the worker's job ``print-run``: the run's counts and one line."""
    with room.transaction() as session:
        before = session.get(print_runs.PrintRun, int(claim.payload["run_id"]))
        resumed = before.rendered if before is not None else 0
    run = finish_run(room, claim, progress=progress)
    counts = {"documents": run.documents, "pages": run.pages, "resumed_at": resumed}
    line = f"print run {run.id} {run.status}: {run.documents} documents, {run.pages} pages"
    if resumed and run.status == print_runs.PRINTED:
        line += f" (resumed after document {resumed})"
    return jobs.Report(line + (f", postal receipt {run.postal_receipt}" if run.postal_receipt else ""), counts)


def _render_chunk(room: Mailroom, claim: jobs.Claim, run_id: int, progress: Progress | None) -> print_runs.PrintRun:
    """Render the next chunk of the run into a PDF part and its manifest lines, and move the cursor past it, in one
    transaction holding the run's row; the run as it is then (nothing done when it has nothing left to render)."""
    with room.transaction() as session:
        run = session.get(print_runs.PrintRun, run_id, with_for_update=True)
        if run is None:
            raise LookupError(f"no print run {run_id}")
        jobs.hold(session, claim)
        if run.status not in (print_runs.CLAIMED, print_runs.PRINTING) or run.rendered >= run.documents:
            return run
        first = run.rendered + 1
        ids = print_runs.claimed_document_ids(session, run_id, after=run.rendered, limit=room.chunk)
        parts = room.run_dir(run_id) / PARTS
        parts.mkdir(parents=True, exist_ok=True)
        pdf, lines = _part(parts, first, PART_PDF), _part(parts, first, PART_LINES)
        tmp = f".{os.getpid()}.tmp"  # never another worker's half-written file; the rename makes it whole at once
        with open(f"{pdf}{tmp}", "wb") as out, open(f"{lines}{tmp}", "w", encoding="utf-8") as pieces:
            documents = _documents(session, room, ids, first, pieces)
            pages = write_documents_pdf(documents, out, progress=_shifted(progress, run.rendered))
        if pages != len(ids):
            raise RuntimeError(f"rendered {pages} pages for {len(ids)} documents")
        os.replace(f"{pdf}{tmp}", pdf)
        os.replace(f"{lines}{tmp}", lines)
        run.rendered, run.status = run.rendered + len(ids), print_runs.PRINTING
        return run


def _shifted(progress: Progress | None, done: int) -> Progress | None:
    """``progress`` of the whole run from a chunk's count (``done`` documents were rendered before it)."""
    return None if progress is None else lambda n: progress(done + n)


def _part(parts: Path, first: int, suffix: str) -> Path:
    return parts / f"{first:06d}{suffix}"


def _post(room: Mailroom, claim: jobs.Claim, run_id: int) -> print_runs.PrintRun:
    """Merge the parts into the run's PDF, write its manifest, hand both to the post and record the run printed, in
    one transaction holding the run's row; the parts are removed once that committed."""
    directory = room.run_dir(run_id)
    with room.transaction() as session:
        run = session.get(print_runs.PrintRun, run_id, with_for_update=True)
        assert run is not None
        jobs.hold(session, claim)
        if run.status != print_runs.PRINTING:
            return run
        pdf_path, manifest_path = directory / PDF_NAME, directory / MANIFEST_NAME
        starts = _part_starts(directory / PARTS, run.documents)
        header = ManifestHeader(
            sender_code=run.jurisdiction,
            sender_name=authority_of(session, run.jurisdiction).name,
            run_id=run.id,
            mailed_on=seoul_date(room.clock()),
            pieces=run.documents,
            pdf_name=PDF_NAME,
        )
        with ManifestWriter(manifest_path, header) as manifest:
            for first in starts:
                for line in _part(directory / PARTS, first, PART_LINES).read_text(encoding="utf-8").splitlines():
                    manifest.add(MailPiece(**json.loads(line)))
        with open(pdf_path, "wb") as out:
            pages = merge_pdfs((_part(directory / PARTS, first, PART_PDF) for first in starts), out)
        if pages != run.documents:
            raise RuntimeError(f"merged {pages} pages for {run.documents} documents")
        ids = print_runs.claimed_document_ids(session, run_id)
        print_runs.record_printed(
            session,
            run,
            [print_runs.Placement(document_id, seq, seq, seq) for seq, document_id in enumerate(ids, 1)],
            room.clock(),
            pdf_path=str(pdf_path),
            manifest_path=str(manifest_path),
            postal_name=room.postal().name,
            postal_receipt=None,
        )
        hand_over(session, run, manifest_path, pdf_path, room.clock())
    shutil.rmtree(directory / PARTS, ignore_errors=True)
    log.info("print run %s: %s documents, handed over to the post through the outbox", run_id, run.documents)
    return run


# --- the hand-over to the post, through the outbox ------------------------------------------------------------------


def hand_over(session: Session, run: print_runs.PrintRun, manifest_path: Path, pdf_path: Path, now: datetime) -> None:
    """Queue the run's manifest and PDF for the post, in the transaction that records the run printed (the worker
    delivers it: ``services.outbox``; the receipt is recorded when the post answers)."""
    outbox.enqueue(
        session,
        outbox.POSTAL_SUBMIT,
        f"postal:print-run:{run.id}",
        {"run_id": run.id, "manifest": str(manifest_path), "pdf": str(pdf_path)},
        now,
        stream=f"print-run:{run.id}",
        jurisdiction=run.jurisdiction,
    )


def ask_post(postal: PostalService, delivery: outbox.Delivery) -> tuple[str, str]:
    """Submit a run's files to the post (no transaction open): the post's name and its receipt."""
    payload = delivery.payload
    receipt = postal.submit(Path(payload["manifest"]), Path(payload["pdf"]), idempotency_key=delivery.key)
    return postal.name, receipt


def withdrawn(session: Session, row: outbox.OutboxRow, now: datetime) -> None:
    """A person gave the hand-over up (the post refused it for good, say): the run gives its documents back, so a
    later run prints them, and its files go."""
    run_id = int(row.payload["run_id"])
    if print_runs.withdraw(session, run_id, "the hand-over to the post was cancelled; a later run prints these", now):
        shutil.rmtree(Path(row.payload["manifest"]).parent, ignore_errors=True)


def record_receipt(session: Session, delivery: outbox.Delivery, answer: tuple[str, str]) -> dict[str, Any]:
    """Apply the post's answer: the run's receipt."""
    postal_name, receipt = answer
    run_id = int(delivery.payload["run_id"])
    result = print_runs.record_postal_receipt(session, run_id, postal_name, receipt)
    return {"result": result, "run_id": run_id, "receipt": receipt}


def _part_starts(parts: Path, documents: int) -> list[int]:
    """The first document of each part, walked from 1 by each part's line count (a part a resumed worker wrote
    again with other bounds is never taken twice)."""
    starts, first = [], 1
    while first <= documents:
        lines = _part(parts, first, PART_LINES)
        if not lines.is_file():
            raise LookupError(f"the part from document {first} is missing")
        starts.append(first)
        first += sum(1 for _ in lines.open(encoding="utf-8"))
    return starts


def _documents(session: Session, room: Mailroom, ids: list[int], first: int, pieces: TextIO) -> Iterator[PrintDocument]:
    """The chunk's documents in order, numbered from ``first``, built a slice at a time; each one's manifest line
    goes to ``pieces`` as it goes (one page per document: ``printing.a4`` renders each on one page or refuses it)."""
    book = rules.load_rulebook(session)
    authorities: dict[str, Authority] = {}
    seq = first
    for start in range(0, len(ids), QUERY_SLICE):
        chunk = ids[start : start + QUERY_SLICE]
        rows = session.execute(
            select(FineDocument, Notice)
            .join(FineCase, FineCase.notice_id == FineDocument.notice_id)
            .join(Notice, Notice.id == FineDocument.notice_id)
            .where(FineDocument.id.in_(chunk))
        ).all()
        by_id = {document.id: (document, notice) for document, notice in rows}
        for document_id in chunk:
            document, notice = by_id[document_id]
            printable = build_printable(session, room.links, document, notice, room.cipher, book, authorities)
            piece = MailPiece(
                seq=seq,
                document_no=printable.document_no,
                postal_code=printable.addressee.postal_code or "",
                name=printable.addressee.name,
                address=printable.addressee.address,
                first_page=seq,
                last_page=seq,
            )
            pieces.write(json.dumps(dataclasses.asdict(piece), ensure_ascii=False) + "\n")
            seq += 1
            yield printable.document
        for document, notice in rows:  # a run of thousands must not keep every row in the identity map
            session.expunge(document)
            session.expunge(notice)


def print_run(
    room: Mailroom,
    selection: print_runs.PrintSelection,
    scope: Scope,
    actor: Actor,
    *,
    progress: Progress | None = None,
) -> print_runs.PrintRun:
    """Take and print in this process (the tests; the command shows its progress between ``start_run`` and
    ``print_started``). The run as it ended, see ``print_started``; ``empty`` when nothing was left to print."""
    worker = worker_id("print-run")
    run = start_run(room, selection, scope, actor, worker=worker)
    if run.status != print_runs.CLAIMED:
        return run
    return print_started(room, run.id, worker, progress=progress)


def print_started(room: Mailroom, run_id: int, worker: str, *, progress: Progress | None = None) -> print_runs.PrintRun:
    """Print in this process a run whose job ``start_run(worker=…)`` leased to ``worker``, recording the run as the
    worker records its jobs. The run as it ended: ``printed``, ``failed`` (its ``error`` says why) — or still
    ``printing`` when this process lost the job to a worker (then that worker finishes it)."""
    claim = take_run(room, run_id, worker)
    run_claimed(room.transaction, claim, lambda: render_job(room, claim, progress=progress))
    with room.transaction() as session:
        done = session.get(print_runs.PrintRun, run_id)
        assert done is not None
        return done


def _receipt(run: print_runs.PrintRun) -> str:
    if run.postal_receipt:
        return f"{run.postal_name} {run.postal_receipt}"
    if run.status == print_runs.PRINTED:
        return f"waiting for {run.postal_name} (the worker hands the run over through the outbox)"
    return "-"


def run_table(run: print_runs.PrintRun) -> list[str]:
    """The run as the command prints it: one labelled line per fact."""
    rows = [
        ("run", str(run.id)),
        ("status", run.status),
        ("jurisdiction", run.jurisdiction),
        ("kind", run.kind),
        ("documents", f"{run.documents:,}"),
        ("pages", f"{run.pages:,}"),
        ("pdf", run.pdf_path or "-"),
        ("manifest", run.manifest_path or "-"),
        ("postal receipt", _receipt(run)),
    ]
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value}" for label, value in rows]
