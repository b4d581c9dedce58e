"""Turn a notice stored on the device into a printed slip (ESC/POS for the belt printer, PDF, PNG preview)."""

from __future__ import annotations

from datetime import date, datetime

from pda_client.device import local_notice
from pda_client.store import Store
from printing.slip import Slip
from protocol import payment_number

FORMATS = ("escpos", "pdf", "png")


def slip_for(store: Store, notice_no: str) -> Slip:
    """The slip of a notice as issued here (amounts and QR exactly as signed at issue time)."""
    notice = local_notice(store, notice_no)
    data = notice.data
    code = store.reference_one("violation_code", data["violation_code"]) or {}
    settings = store.reference_one("device_settings", "settings") or {}
    officer = store.get("officer") or {}
    enrollment = store.get("enrollment") or {}
    vehicle = data.get("vehicle") or {}
    offender = data.get("offender") or {}
    return Slip(
        notice_no=notice.notice_no,
        kind="person" if notice.kind == "person" else "parking",
        violation_code=data["violation_code"],
        violation_name=code.get("name", data["violation_code"]),
        amount=int(data["amount"]),
        reduced_amount=int(data["reduced_amount"]),
        opinion_deadline=date.fromisoformat(data["opinion_deadline"]),
        observed_at=datetime.fromisoformat(data["observed_at"]),
        place=data["place"]["address"],
        plate=vehicle.get("plate"),
        vehicle_type=vehicle.get("type"),
        offender_name=offender.get("name"),
        offender_address=offender.get("address"),
        office_name=settings.get("office_name") or f"관할 {enrollment.get('jurisdiction', '')}",
        office_address=settings.get("office_address"),
        office_phone=settings.get("office_phone"),
        officer_name=officer.get("name"),
        legal_basis=None,
        payment_no=_payment_no(notice.notice_no, code.get("revenue_item")),
        qr_text=data["qr"],
        reprint=notice.reprints,
    )


def _payment_no(notice_no: str, revenue_item: object) -> str | None:
    """The 전자납부번호, derived from the notice number and the code's revenue item as the server derives it."""
    if not isinstance(revenue_item, str):
        return None
    try:
        return payment_number.for_notice(notice_no, revenue_item)
    except ValueError:
        return None


def render(store: Store, notice_no: str, fmt: str, *, width_mm: int | None = None) -> bytes:
    """The bytes of a notice in ``fmt`` (``escpos``, ``pdf`` or ``png``)."""
    slip = slip_for(store, notice_no)
    settings = store.reference_one("device_settings", "settings") or {}
    width = width_mm or int(settings.get("printer_width_mm", 80))
    if fmt == "escpos":
        from printing.escpos import render_escpos

        return render_escpos(slip, width_mm=width)
    if fmt == "png":
        from printing.png import render_png

        return render_png(slip)
    if fmt == "pdf":
        from printing.pdf import render_pdf

        return render_pdf([slip], layout="receipt")
    raise ValueError(f"unknown print format {fmt}")
