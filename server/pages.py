"""Citizen pages (PROTOCOL.md §5): the QR landing page ``/p/<notice_no>``, in Korean, phone-sized, with the amount
due today broken down line by line from the ledger (``breakdown``); the receipt and opinion pages are in
``server.citizen``.

The signature is checked before anything is shown; a bad or missing one gets an HTML 4xx page with no amounts.
Before the notice has synced, the page shows the signed amounts; the citizen page shows no personal data beyond a
masked plate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, render_template, request
from sqlalchemy.orm import Session

import protocol
from models import devices as device_ops
from models import fines, ledger, payments, rules
from models import notices as notice_ops
from models.catalog import ViolationCode
from models.jurisdictions import Jurisdiction
from models.rules.rows import HARDSHIP_REDUCTION
from printing.documents import PaymentInfo
from protocol.masking import mask_plate
from server import wiring
from server.runtime import runtime, unit_of_work

bp = Blueprint("pages", __name__)

_ERRORS = {
    400: ("잘못된 납부 링크입니다", "QR 코드의 내용이 올바르지 않습니다. 고지서의 QR 코드를 다시 스캔해 주세요."),
    403: (
        "확인할 수 없는 고지서입니다",
        "고지서의 서명이 맞지 않습니다. 고지서의 QR 코드를 다시 스캔하시거나 발급 기관에 문의해 주세요.",
    ),
    404: ("고지서를 찾을 수 없습니다", "고지번호를 확인해 주세요."),
    405: ("허용되지 않는 요청입니다", "페이지를 다시 열어 주세요."),
    409: ("납부할 금액이 없습니다", "이미 납부되었거나 취소된 고지서입니다."),
    500: ("일시적인 오류입니다", "잠시 후 다시 시도해 주세요."),
    503: ("결제 서비스에 연결할 수 없습니다", "잠시 후 다시 시도해 주세요. 납부는 되지 않았습니다."),
}


def error_page(status: int) -> Response:
    title, message = _ERRORS.get(status, _ERRORS[400] if status < 500 else _ERRORS[500])
    html = render_template("error.html", title=title, message=message, status=status)
    return Response(html, status=status, mimetype="text/html")


@dataclass
class PageView:
    notice_no: str
    synced: bool
    violation: str | None
    observed_at: str | None
    place: str | None
    plate: str | None
    office: str | None
    amount: int
    reduced_amount: int
    deadline: date
    due_today: int
    reduced_applies: bool
    paid: bool
    status: str | None
    ended: bool = False
    corrected: bool = False  # the printed slip shows amounts since corrected: the page shows the notice as it is now
    signed: dict[str, str] = field(default_factory=dict)

    @property
    def payable(self) -> bool:
        return not self.paid and not self.ended and self.due_today > 0


def _keys_for(session: Session, notice: notice_ops.Notice | None, notice_no: str) -> list[str]:
    if notice is not None:
        device_id = notice.device_id
    else:
        block = device_ops.block_of(session, notice_no)
        if block is None:
            return []
        device_id = block.device_id
    return device_ops.qr_keys(session, device_id, runtime().cipher)


_NOTICE_NO = re.compile(r"[0-9]{15}")  # fullmatch: a trailing newline is not part of a number
# What a printed link can hold: ASCII digits only (str.isdigit would let "²" or "４" through, and an
# endless number past int()'s limit), an upper- or lower-case base32 signature; each field exactly once.
_LINK_FIELDS = {
    "a": re.compile(r"[0-9]{1,12}"),
    "r": re.compile(r"[0-9]{1,12}"),
    "d": re.compile(r"[0-9]{8}"),
    "s": re.compile(r"[A-Za-z2-7]{1,64}"),
}


def _link_field(source: Any, name: str) -> str | None:
    values = source.getlist(name)
    if len(values) != 1 or not _LINK_FIELDS[name].fullmatch(values[0]):
        return None
    return str(values[0])


def verified_view(session: Session, notice_no: str, source: Any) -> PageView | Response:
    """Check a signed payment link (its fields from ``source``, a multidict) and build what the page shows;
    an error page (``Response``) when the link is malformed, unknown or its signature does not verify."""
    if not _NOTICE_NO.fullmatch(notice_no) or protocol.parse_notice_no(notice_no) is None:
        return error_page(404)
    a, r, d, s = (_link_field(source, name) for name in ("a", "r", "d", "s"))
    payload = protocol.parse_qr_fields(notice_no, a, r, d, s)
    if payload is None:
        return error_page(400)
    today = protocol.seoul_date(runtime().clock())
    notice = notice_ops.find_notice(session, notice_no)
    keys = _keys_for(session, notice, notice_no)
    if not keys:
        return error_page(404)
    if not any(protocol.verify_qr(key, payload) for key in keys):
        return error_page(403)
    reduced_applies = today <= payload.deadline
    if notice is None:
        paid_in_suspense = payments.suspense_total(session, notice_no)
        due = payload.reduced_amount if reduced_applies else payload.amount
        return PageView(
            notice_no=notice_no,
            synced=False,
            violation=None,
            observed_at=None,
            place=None,
            plate=None,
            office=None,
            amount=payload.amount,
            reduced_amount=payload.reduced_amount,
            deadline=payload.deadline,
            due_today=max(due - paid_in_suspense, 0),
            reduced_applies=reduced_applies,
            paid=paid_in_suspense >= due,
            status=None,
            signed={"a": a or "", "r": r or "", "d": d or "", "s": s or ""},
        )
    corrected = (notice.amount, notice.reduced_amount, notice.opinion_deadline) != (
        payload.amount,
        payload.reduced_amount,
        payload.deadline,
    )
    if corrected and not notice_ops.was_corrected(session, notice.id):
        # a valid signature over amounts the server never had for this number: a misprint or a forged print
        return error_page(403)
    receivable = notice_ops.receivable_of(session, notice.id)
    balance = ledger.balance(session, receivable.id) if receivable else 0
    # the case's 자진납부 terms, as the ledger will apply them: the later of the slip's and the 사전통지's deadline,
    # after a hardship reduction the combined price (models.fines.self_payment_terms)
    terms = fines.self_payment_terms(session, notice, today)
    reduced_applies = terms is not None and balance == terms.owed
    due = terms.reduced if terms is not None and reduced_applies else balance
    code = session.get(ViolationCode, notice.violation_code)
    office = session.get(Jurisdiction, notice.jurisdiction)
    ended = notice.status in ("voided", "cancelled", "closed")
    return PageView(
        notice_no=notice_no,
        synced=True,
        violation=code.name if code else notice.violation_code,
        observed_at=notice.observed_at.astimezone(protocol.SEOUL).strftime("%Y년 %m월 %d일 %H:%M"),
        place=notice.place_address,
        plate=mask_plate(notice.vehicle_plate) if notice.vehicle_plate else None,
        office=office.name if office else None,
        amount=notice.amount,
        reduced_amount=terms.reduced if terms is not None else notice.reduced_amount,
        deadline=terms.last_day if terms is not None else notice.opinion_deadline,
        due_today=0 if ended else max(due, 0),
        reduced_applies=reduced_applies,
        paid=notice.status == notice_ops.PAID or (balance <= 0 and not ended),
        status=notice.status,
        ended=ended,
        signed={"a": a or "", "r": r or "", "d": d or "", "s": s or ""},
        corrected=corrected,
    )


@dataclass(frozen=True)
class Line:
    """One line of the amount breakdown: a label, a signed amount in won, an element id, an optional note."""

    label: str
    amount: int
    key: str
    note: str | None = None


# entry kinds that put money on a head (charges, surcharges, corrections) and the ones that adjust it otherwise
_POSTED_KINDS = ("charge", "surcharge", "correction")
_ADJUSTING_KINDS = ("reversal", "refund", "write_off", "write_off_reversal")


def breakdown(session: Session, view: PageView) -> list[Line]:
    """The amount due today, line by line, as the ledger holds it (``ledger.totals_by_head``): the principal,
    reductions already posted, 가산금 and 중가산금 posted so far, payments made, other adjustments, and — when it
    applies today — the 자진납부 reduction the payment will post (``view``'s terms). The lines add up to
    ``view.due_today``; empty before the notice has synced or once it ended."""
    if not view.synced or view.ended:
        return []
    notice = notice_ops.find_notice(session, view.notice_no)
    receivable = notice_ops.receivable_of(session, notice.id) if notice is not None else None
    if receivable is None:
        return []
    totals = ledger.totals_by_head(session, receivable.id)

    def total(heads: tuple[str, ...], kinds: tuple[str, ...]) -> int:
        return sum(amount for (head, kind), amount in totals.items() if head in heads and kind in kinds)

    every_head = tuple({head for head, _kind in totals})
    lines = [Line("과태료", total((ledger.PRINCIPAL,), _POSTED_KINDS), "line-principal")]
    optional = [
        Line("감경(결정된 금액)", total(every_head, ("reduction",)), "line-reduction"),
        Line("가산금", total((ledger.SURCHARGE,), _POSTED_KINDS), "line-surcharge", "납부기한 경과 시 3%"),
        Line("중가산금", total((ledger.MONTHLY_SURCHARGE,), _POSTED_KINDS), "line-monthly-surcharge", "매 1개월 1.2%"),
        Line("체납처분비", total((ledger.ENFORCEMENT_COST,), _POSTED_KINDS), "line-enforcement-cost"),
        Line("이미 납부하신 금액", total(every_head, ("payment",)), "line-paid"),
        Line("기타 조정", total(every_head, _ADJUSTING_KINDS), "line-adjusted"),
    ]
    lines += [line for line in optional if line.amount]
    if view.reduced_applies:
        balance = ledger.balance(session, receivable.id)
        until = view.deadline.strftime("%Y년 %m월 %d일")
        lines.append(Line("자진납부 감경", view.due_today - balance, "line-self-payment", f"{until}까지 납부 시"))
    return lines


def hardship_percent(session: Session, on: date) -> str | None:
    """The largest 감경 rate of 시행령 §2의2 in force on ``on``, as a percentage for the page (``"50"``), from the
    statutory rule rows; None when no row is in force (the page then names no number)."""
    rates = [row.rate for row in rules.rules_in_force(session, on).scoped(HARDSHIP_REDUCTION, on) if row.rate]
    if not rates:
        return None
    return f"{(max(rates) * 100).normalize():f}"


def _transfer(session: Session, view: PageView) -> PaymentInfo | None:
    """가상계좌 and 전자납부번호 (pay by bank transfer or at any bank) of a synced, payable notice; None when it has no
    receivable or no device key (the page still offers the QR payment)."""
    if not (view.synced and view.payable):
        return None
    notice = notice_ops.find_notice(session, view.notice_no)
    assert notice is not None
    links = wiring.payment_links(runtime())
    try:  # the link was just verified: the device's keys are not opened again
        return links.info(session, notice, qr_text=links.page_url(view.notice_no, urlencode(view.signed)))
    except LookupError:
        return None


@bp.get("/p/<notice_no>")
def landing(notice_no: str) -> Response:
    """The page a notice's QR opens: what the violation is and what is due today, line by line from the ledger,
    with a pay button."""
    today = protocol.seoul_date(runtime().clock())
    with unit_of_work() as session:
        view = verified_view(session, notice_no, request.args)
        if isinstance(view, Response):
            return view
        html = render_template(
            "notice.html",
            v=view,
            transfer=_transfer(session, view),
            hardship_percent=hardship_percent(session, today),
            lines=breakdown(session, view),
            query=urlencode(view.signed),
            today=today,
        )
    return Response(html, status=200, mimetype="text/html")


# a citizen page's URL is its capability (the signed link): it must not leak through a Referer, a cache or a frame
CITIZEN_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"
    ),
}


def protect_citizen_pages(response: Response) -> Response:
    """``after_request``: the protective headers on every answer under ``/p/`` (pages, receipts, error pages)."""
    if request.path.startswith("/p/"):
        response.headers.update(CITIZEN_HEADERS)
    return response


@bp.get("/healthz")
def healthz() -> Response:
    return Response('{"status":"ok"}', mimetype="application/json")


@bp.get("/readyz")
def readyz() -> Response:
    from sqlalchemy import text

    with runtime().sessions() as session:
        session.execute(text("SELECT 1"))
    return Response('{"status":"ready"}', mimetype="application/json")
