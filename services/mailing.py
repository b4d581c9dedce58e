"""Bulk print runs (issue 6): mailed documents from the database into one merged A4 PDF and an e-그린우편 manifest,
handed to the postal service.

``start_run`` takes the documents (``models.print_runs.claim_documents``) and commits, so a concurrent run sees them
taken; ``finish_run`` builds each document from its ``fine_documents`` row (addressee decrypted only here, payment
details from ``services.payment_links``), streams the pages into ``<var_dir>/print-runs/<run id>/notices.pdf`` while
it writes ``manifest.txt`` line by line, submits both to the postal adapter and records every item's pages and
``printed_at``. Any failure gives the documents back (``release``) and removes the run's files. ``print_run``
does both; the ``flask --app wsgi print-run`` command shows a progress bar between them.

What a run needs comes in a ``Mailroom`` (transactions, clock, cipher, payment links, the postal service, the
directory of the runs' files), built by the caller: the API handler, the command, a test.

Memory: documents are built one at a time from chunks of ids, and the PDF goes to a file (``printing.a4`` keeps
each finished page deflated, ~12 KB a page, until it writes the file); the manifest is written as it goes.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.postal import MailPiece, ManifestHeader, ManifestWriter, PostalService
from models import print_runs, rules
from models.base import Actor, Clock, Scope
from models.crypto import PiiCipher
from models.fines.tables import ADVANCE_NOTICE, IMPOSITION_NOTICE, FineCase, FineDocument
from models.jurisdictions import Jurisdiction
from models.notices import Notice
from models.rules.rows import HARDSHIP_REDUCTION
from printing.a4 import write_documents_pdf
from printing.documents import Addressee, AdvanceNotice, Authority, Facts, ImpositionNotice
from protocol import seoul_date
from services.payment_links import PaymentLinks
from services.uow import Transactions

log = logging.getLogger(__name__)

PDF_NAME = "notices.pdf"
MANIFEST_NAME = "manifest.txt"
CHUNK = 200  # documents loaded per query while rendering
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
    details of each document, the post, and the directory each run's files go under (``<var_dir>/print-runs``)."""

    transaction: Transactions
    clock: Clock
    cipher: PiiCipher
    links: PaymentLinks
    postal: Callable[[], PostalService]  # built when a run is rendered
    directory: Path

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


def start_run(room: Mailroom, selection: print_runs.PrintSelection, scope: Scope, actor: Actor) -> print_runs.PrintRun:
    """Take the selection's unprinted documents in a run of their own and commit (status ``claimed``, or ``empty``).

    Raises ``models.errors.InvalidInput`` / ``NotFound`` for a bad selection."""
    with room.transaction() as session:
        return print_runs.claim_documents(session, selection, scope, actor, room.clock())


def finish_run(room: Mailroom, run_id: int, *, progress: Progress | None = None) -> print_runs.PrintRun:
    """Render a claimed run into its PDF and manifest, submit them to the post, record each item printed.

    ``progress(n)`` after the n-th document. On any error the run is ``failed``, its documents are given back and
    its files removed; the error is raised again."""
    service = room.postal()
    directory = room.run_dir(run_id)
    try:
        with room.transaction() as session:
            run = session.get(print_runs.PrintRun, run_id, with_for_update=True)
            if run is None or run.status != print_runs.CLAIMED:
                raise LookupError(f"print run {run_id} is not waiting to be printed")
            ids = print_runs.claimed_document_ids(session, run_id)
            directory.mkdir(parents=True, exist_ok=True)
            pdf_path, manifest_path = directory / PDF_NAME, directory / MANIFEST_NAME
            authority = authority_of(session, run.jurisdiction)
            header = ManifestHeader(
                sender_code=run.jurisdiction,
                sender_name=authority.name,
                run_id=run.id,
                mailed_on=seoul_date(room.clock()),
                pieces=len(ids),
                pdf_name=PDF_NAME,
            )
            placements: list[print_runs.Placement] = []
            with ManifestWriter(manifest_path, header) as manifest, open(pdf_path, "wb") as out:
                documents = _documents(session, room, ids, manifest, placements)
                pages = write_documents_pdf(documents, out, progress=progress)
            if pages != len(ids) or len(placements) != len(ids):
                raise RuntimeError(f"rendered {pages} pages for {len(ids)} documents")
            receipt = service.submit(manifest_path, pdf_path)
            print_runs.record_printed(
                session,
                run,
                placements,
                room.clock(),
                pdf_path=str(pdf_path),
                manifest_path=str(manifest_path),
                postal_name=service.name,
                postal_receipt=receipt,
            )
            log.info("print run %s: %s documents, postal receipt %s", run_id, len(placements), receipt)
            return run
    except BaseException as exc:
        shutil.rmtree(directory, ignore_errors=True)
        # the type and the message only: printing's and the adapter's messages name fields, never values
        with room.transaction() as session:
            print_runs.release(session, run_id, f"{type(exc).__name__}: {exc}", room.clock())
        log.warning("print run %s failed and gave its documents back: %s", run_id, type(exc).__name__)
        raise


def _documents(
    session: Session,
    room: Mailroom,
    ids: list[int],
    manifest: ManifestWriter,
    placements: list[print_runs.Placement],
) -> Iterator[PrintDocument]:
    """The run's documents in order, built a chunk at a time; each one's manifest line is written as it goes (one
    page per document: ``printing.a4`` renders each on one page or refuses it)."""
    book = rules.load_rulebook(session)
    authorities: dict[str, Authority] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
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
            seq = len(placements) + 1
            manifest.add(
                MailPiece(
                    seq=seq,
                    document_no=printable.document_no,
                    postal_code=printable.addressee.postal_code or "",
                    name=printable.addressee.name,
                    address=printable.addressee.address,
                    first_page=seq,
                    last_page=seq,
                )
            )
            placements.append(print_runs.Placement(document_id, seq, seq, seq))
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
    """Take and print in one call (the API): the finished run, ``empty`` when nothing was left to print."""
    run = start_run(room, selection, scope, actor)
    if run.status != print_runs.CLAIMED:
        return run
    return finish_run(room, run.id, progress=progress)


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
        ("postal receipt", f"{run.postal_name} {run.postal_receipt}" if run.postal_receipt else "-"),
    ]
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value}" for label, value in rows]
