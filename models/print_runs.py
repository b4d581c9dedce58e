"""Bulk print runs (인쇄 차수, migration 0010): which mailed documents a run takes, and when and in which run each
one was printed.

A run selects the ``fine_documents`` of one kind (사전통지서 ``advance_notice``, 부과 고지서 ``imposition_notice``;
the arrears engine sends no 독촉장 document yet) of one jurisdiction, optionally issued within a date range, that
go by mail, have an addressee, belong to a case still open, and were never taken by a run. Taking is an
``INSERT … ON CONFLICT DO NOTHING`` into ``print_run_items``, whose primary key is the document: two runs racing
over the same selection each get a disjoint share (the second waits for the first's commit, then skips what it
took), and a rerun of a selection already printed takes nothing.

The life of a run: ``claim_documents`` (committed at once with the job that prints it, status ``claimed``;
``empty`` when it took nothing) → a worker (``services.mailing``) renders it a chunk at a time, each chunk's PDF
part committed with the cursor ``rendered`` (status ``printing``), so a run whose worker died is resumed where it
stopped → the parts merged, the PDF and the manifest handed to the post, ``record_printed`` (each item's pages and
``printed_at``; status ``printed``), or ``release`` on a failure (the items are deleted so a later run takes the
documents again; status ``failed``). Downloads of a run's files, which carry names and addresses, are logged by
``record_export`` (append-only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Select,
    String,
    Text,
    delete,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Actor, Base, Scope
from models.errors import InvalidInput, NotFound
from models.fines.tables import ADVANCE_NOTICE, ENDED, IMPOSITION_NOTICE, MAIL, FineCase, FineDocument
from models.jurisdictions import Jurisdiction

KINDS = (ADVANCE_NOTICE, IMPOSITION_NOTICE)
CLAIMED, PRINTING, PRINTED, EMPTY, FAILED = "claimed", "printing", "printed", "empty", "failed"
EXPORT_PDF, EXPORT_MANIFEST = "pdf", "manifest"
MAX_RUN = 20_000  # documents per run: one merged PDF of ~12 KB a page at its peak (printing/a4.py)


class PrintRun(Base):
    """One bulk print run: its selection, its outcome (counts, files, the post's receipt)."""

    __tablename__ = "print_runs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    kind: Mapped[str] = mapped_column(String(20))
    issued_from: Mapped[date | None] = mapped_column(Date)
    issued_to: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10))
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    documents: Mapped[int] = mapped_column(Integer, default=0)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    rendered: Mapped[int] = mapped_column(Integer, default=0)  # the cursor: documents 1..rendered are in PDF parts
    pdf_path: Mapped[str | None] = mapped_column(Text)
    manifest_path: Mapped[str | None] = mapped_column(Text)
    postal_name: Mapped[str | None] = mapped_column(String(30))
    postal_receipt: Mapped[str | None] = mapped_column(String(80))
    error: Mapped[str | None] = mapped_column(Text)


class PrintRunItem(Base):
    """A document taken by a run (at most one run ever: the primary key), its pages in the merged PDF, and when it
    was printed."""

    __tablename__ = "print_run_items"

    document_id: Mapped[int] = mapped_column(ForeignKey("fine_documents.id"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("print_runs.id"))
    seq: Mapped[int | None] = mapped_column(Integer)
    first_page: Mapped[int | None] = mapped_column(Integer)
    last_page: Mapped[int | None] = mapped_column(Integer)
    printed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PrintRunExport(Base):
    """A download of a run's PDF or manifest (names and addresses leave the system): who, what, when."""

    __tablename__ = "print_run_exports"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("print_runs.id"), index=True)
    what: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str | None] = mapped_column(String(80))
    actor_address: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class PrintSelection:
    """What a run prints: documents of ``kind`` of ``jurisdiction``, issued within [issued_from, issued_to]."""

    kind: str
    jurisdiction: str
    issued_from: date | None = None
    issued_to: date | None = None
    limit: int | None = None


@dataclass(frozen=True)
class Placement:
    """Where a printed document landed in the merged PDF (1-based pages)."""

    document_id: int
    seq: int
    first_page: int
    last_page: int


def check_selection(selection: PrintSelection, scope: Scope) -> None:
    """Raises ``InvalidInput`` (``kind``, ``issued_to``, ``limit``) or ``NotFound`` (a jurisdiction outside the
    caller's scope, answered as not found like every scoped row)."""
    if selection.kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if not scope.allows(selection.jurisdiction):
        raise NotFound("no such jurisdiction", field="jurisdiction")
    if selection.issued_from and selection.issued_to and selection.issued_from > selection.issued_to:
        raise InvalidInput("issued_to must not be before issued_from", field="issued_to")
    if selection.limit is not None and not 1 <= selection.limit <= MAX_RUN:
        raise InvalidInput(f"limit must be 1..{MAX_RUN}", field="limit")


def eligible(selection: PrintSelection) -> Select[Any]:
    """The SELECT of the document ids a run over ``selection`` would take now, in print order."""
    taken = select(PrintRunItem.document_id).where(PrintRunItem.document_id == FineDocument.id)
    stmt = (
        select(FineDocument.id)
        .join(FineCase, FineCase.notice_id == FineDocument.notice_id)
        .where(
            FineDocument.kind == selection.kind,
            FineDocument.channel == MAIL,
            FineDocument.addressee_enc.is_not(None),
            FineCase.jurisdiction == selection.jurisdiction,
            FineCase.stage.not_in(ENDED),  # a paid or cancelled case is not mailed a notice any more
            ~taken.exists(),
        )
        .order_by(FineDocument.id)
        .limit(min(selection.limit or MAX_RUN, MAX_RUN))
    )
    if selection.issued_from is not None:
        stmt = stmt.where(FineDocument.issued_on >= selection.issued_from)
    if selection.issued_to is not None:
        stmt = stmt.where(FineDocument.issued_on <= selection.issued_to)
    return stmt


def claim_documents(session: Session, selection: PrintSelection, scope: Scope, actor: Actor, now: datetime) -> PrintRun:
    """Open a run and take every eligible document no other run holds (the caller commits at once, so a concurrent
    run sees them taken). Items are numbered 1..n in document order. Status ``claimed``, or ``empty`` (finished)
    when nothing was left to take. Raises like ``check_selection``."""
    check_selection(selection, scope)
    if session.get(Jurisdiction, selection.jurisdiction) is None:  # a city user naming a district that is not one
        raise NotFound("no such jurisdiction", field="jurisdiction")
    run = PrintRun(
        jurisdiction=selection.jurisdiction,
        kind=selection.kind,
        issued_from=selection.issued_from,
        issued_to=selection.issued_to,
        status=CLAIMED,
        requested_by=actor.user_id,
        actor_label=actor.label,
        created_at=now,
        documents=0,
        pages=0,
        rendered=0,
    )
    session.add(run)
    session.flush()
    ids = eligible(selection).subquery()
    stmt = (
        insert(PrintRunItem)
        .from_select(["document_id", "run_id"], select(ids.c.id, literal(run.id, BigInteger)))
        .on_conflict_do_nothing(index_elements=["document_id"])
        .returning(PrintRunItem.document_id)
    )
    taken = len(session.execute(stmt).all())
    if taken:
        numbered = (
            select(
                PrintRunItem.document_id,
                func.row_number().over(order_by=PrintRunItem.document_id).label("n"),
            )
            .where(PrintRunItem.run_id == run.id)
            .subquery()
        )
        session.execute(
            update(PrintRunItem)
            .where(PrintRunItem.document_id == numbered.c.document_id)
            .values(seq=numbered.c.n)
            .execution_options(synchronize_session=False)
        )
    else:
        run.status, run.finished_at = EMPTY, now
    run.documents = taken
    session.flush()
    return run


def claimed_document_ids(session: Session, run_id: int, *, after: int = 0, limit: int | None = None) -> list[int]:
    """The documents a run took, in print order; ``after``, ``limit``: a chunk of them (``seq > after``)."""
    stmt = select(PrintRunItem.document_id).where(PrintRunItem.run_id == run_id, PrintRunItem.seq > after)
    return list(session.scalars(stmt.order_by(PrintRunItem.seq).limit(limit)))


def record_printed(
    session: Session,
    run: PrintRun,
    placements: Sequence[Placement],
    now: datetime,
    *,
    pdf_path: str,
    manifest_path: str,
    postal_name: str,
    postal_receipt: str | None,
) -> PrintRun:
    """Each item's pages and ``printed_at``; the run ``printed`` with its counts, files and the post's receipt."""
    if placements:
        session.execute(
            update(PrintRunItem),
            [
                {
                    "document_id": p.document_id,
                    "seq": p.seq,
                    "first_page": p.first_page,
                    "last_page": p.last_page,
                    "printed_at": now,
                }
                for p in placements
            ],
        )
    run.status, run.finished_at = PRINTED, now
    run.documents = len(placements)
    run.pages = max((p.last_page for p in placements), default=0)
    run.pdf_path, run.manifest_path = pdf_path, manifest_path
    run.postal_name, run.postal_receipt = postal_name, postal_receipt
    session.flush()
    return run


def record_postal_receipt(session: Session, run_id: int, postal_name: str, receipt: str) -> str:
    """The post's receipt of a printed run (its hand-over went through the outbox): ``recorded``, or ``already``
    when the run has it (a delivery applied twice changes nothing)."""
    run = session.get(PrintRun, run_id, with_for_update=True)
    if run is None:
        raise LookupError(f"no print run {run_id}")
    if run.postal_receipt is not None:
        return "already"
    run.postal_name, run.postal_receipt = postal_name, receipt
    session.flush()
    return "recorded"


def withdraw(session: Session, run_id: int, reason: str, now: datetime) -> bool:
    """A printed run whose hand-over to the post was given up (no receipt): it gives its documents back (a later
    run prints them) and is marked ``failed`` with ``reason``. False when it has a receipt or is not printed."""
    run = session.get(PrintRun, run_id, with_for_update=True)
    if run is None or run.status != PRINTED or run.postal_receipt is not None:
        return False
    session.execute(delete(PrintRunItem).where(PrintRunItem.run_id == run_id))
    run.status, run.finished_at, run.error, run.documents, run.pages = FAILED, now, reason[:2000], 0, 0
    run.pdf_path = run.manifest_path = None
    session.flush()
    return True


def release(session: Session, run_id: int, error: str, now: datetime) -> None:
    """A run that could not finish gives its documents back (a later run takes them) and is marked ``failed``; one
    already printed stays as it is."""
    run = session.get(PrintRun, run_id, with_for_update=True)
    if run is None or run.status == PRINTED:
        return
    session.execute(delete(PrintRunItem).where(PrintRunItem.run_id == run_id))
    run.status, run.finished_at, run.error, run.documents, run.rendered = FAILED, now, error[:2000], 0, 0
    session.flush()


def get_run(session: Session, scope: Scope, run_id: int) -> PrintRun:
    """Raises ``NotFound`` for a run that does not exist or is outside the caller's scope."""
    run = session.get(PrintRun, run_id)
    if run is None or not scope.allows(run.jurisdiction):
        raise NotFound("no such print run", field="run_id")
    return run


def list_runs(session: Session, scope: Scope, *, limit: int = 50, before: int | None = None) -> list[PrintRun]:
    """The caller's runs, newest first, keyset-paginated by id (``before``: the last id of the previous page)."""
    stmt = scope.apply(select(PrintRun), PrintRun.jurisdiction).order_by(PrintRun.id.desc()).limit(limit)
    if before is not None:
        stmt = stmt.where(PrintRun.id < before)
    return list(session.scalars(stmt))


def items(session: Session, run_id: int) -> list[PrintRunItem]:
    return list(session.scalars(select(PrintRunItem).where(PrintRunItem.run_id == run_id).order_by(PrintRunItem.seq)))


def printing_of(session: Session, document_id: int) -> PrintRunItem | None:
    """When and in which run a document was taken (``printed_at`` is set once the run printed it)."""
    return session.get(PrintRunItem, document_id)


def record_export(session: Session, run: PrintRun, what: str, actor: Actor, now: datetime) -> PrintRunExport:
    """Log a download of a run's personal data (the PDF or the manifest)."""
    row = PrintRunExport(
        run_id=run.id,
        what=what,
        user_id=actor.user_id,
        actor_label=actor.label,
        actor_address=actor.address,
        at=now,
    )
    session.add(row)
    session.flush()
    return row


def exports(session: Session, run_id: int) -> list[PrintRunExport]:
    return list(
        session.scalars(select(PrintRunExport).where(PrintRunExport.run_id == run_id).order_by(PrintRunExport.id))
    )
