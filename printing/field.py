"""The field documents on the belt printer: a ``PersonNotice`` (the 현장 사전통지) or a ``Receipt`` as ESC/POS for
58/80 mm paper, its PNG preview and its 80 mm PDF page: the parking slip's own layout and machinery
(``escpos``, ``png``, ``pdf``), fed with ``documents.slip_content_of``.

The device's print path needs only ``render_document_escpos``; this module imports Pillow and reportlab through
``png`` and ``pdf``, so a process that must stay light calls
``escpos.render_escpos_content(documents.slip_content_of(doc), width_mm)`` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from printing.documents import PersonNotice, Receipt, slip_content_of
from printing.escpos import render_escpos_content
from printing.pdf import render_content_pdf
from printing.png import render_content_png

FieldDocument = PersonNotice | Receipt


def render_document_escpos(document: FieldDocument, width_mm: int = 80) -> bytes:
    """``document`` as one ESC/POS job for a ``width_mm`` (80 or 58) mm printer, ending with a partial cut.

    Same document, same bytes. Raises ``ValueError`` for another width, ``TypeError`` for a document with no
    belt-printer form.
    """
    return render_escpos_content(slip_content_of(document), width_mm)


def render_document_slip_png(
    document: FieldDocument, width_px: int = 576, *, font_path: str | Path | None = None
) -> bytes:
    """The belt-printer preview of ``document``: a PNG ``width_px`` dots wide (576 = 80 mm, 384 = 58 mm)."""
    return render_content_png(slip_content_of(document), width_px, font_path=font_path)


def render_document_slip_pdf(
    documents: Iterable[FieldDocument],
    *,
    progress: Callable[[int], None] | None = None,
    font_path: str | Path | None = None,
) -> bytes:
    """Field documents as one PDF of 80 mm pages, each as long as its slip (fonts embedded, vector QR)."""
    return render_content_pdf(
        (slip_content_of(document) for document in documents),
        layout="receipt",
        progress=progress,
        font_path=font_path,
        title="현장 고지",
    )
