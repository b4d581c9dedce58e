"""Citizen pages behind the signed QR link (DESIGN.md §3 step 2, §7): the receipt of a payment (HTML and A4 PDF) and
the opinion form (의견제출). Korean, phone-sized, no JavaScript.

Every route takes the same signed link fields as the landing page (``a``, ``r``, ``d``, ``s``) and checks them with
``server.pages.verified_view`` before showing anything: the signed link is the citizen's capability for one notice.

- ``GET /p/<no>/receipt?…&txn_id=`` — the receipt of one posted payment of this notice (``txn_id`` from the
  gateway's return, linked from the done page); without ``txn_id``, the latest posted payment. What was paid,
  when, how, the allocation per charge head (the payment's own ledger entries) and the balance right after it.
- ``GET /p/<no>/receipt.pdf?…`` — the same as an A4 PDF (``printing.documents.Receipt`` through
  ``printing.a4.render_documents_pdf``), the payer's name masked, ``filename*`` in UTF-8 (RFC 6266/5987).
- ``GET /p/<no>/opinion?…`` / ``POST`` — the opinion form while the period is open; recorded through
  ``models.fines.submit_opinion`` as ``submitted_by="citizen"``, in one unit of work. After the deadline, once the
  case has left ``advance_noticed`` (paid, imposed, cancelled, an opinion already waiting) the page says so (409).

CSRF without cookies: the form carries ``t``, an HMAC (a key derived from the JWT secret, domain-separated) over
the notice number, the link's signature and the time it was rendered; a POST needs a token at most
``FORM_TOKEN_TTL`` old for the same notice and link. A cross-site page cannot read our form to copy a token, and a
browser's ``Origin`` header, when present, must be our own host (or, as our pages send no referrer, ``null`` with
``Sec-Fetch-Site: same-origin``). The signed link itself stays the capability:
whoever holds it may submit, as whoever holds the paper slip may.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import quote, urlencode, urlsplit

from flask import Blueprint, Response, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

import protocol
from models import fines, ledger, payments
from models import notices as notice_ops
from models.base import Actor
from models.catalog import ViolationCode
from models.errors import InvalidTransition
from models.fines.tables import ADVANCE_NOTICED, ENDED, OPINION_SUBMITTED, SYNCED, FineCase
from models.jurisdictions import Jurisdiction
from printing.a4 import render_documents_pdf
from printing.documents import Allocation, Authority, PaymentInfo, Receipt
from protocol.masking import mask_name
from server import wiring
from server.pages import PageView, verified_view
from server.runtime import runtime, unit_of_work

bp = Blueprint("citizen", __name__)

FORM_TOKEN_TTL = 60 * 60  # seconds a rendered opinion form stays valid
SUMMARY_MAX = 2000  # as the back office's opinion schema
_PHONE = re.compile(r"0[0-9]{1,2}-?[0-9]{3,4}-?[0-9]{4}")
_TOKEN = re.compile(r"([0-9]{1,12})\.([0-9a-f]{64})")

HEAD_LABELS = {
    ledger.PRINCIPAL: "과태료",
    ledger.SURCHARGE: "가산금",
    ledger.MONTHLY_SURCHARGE: "중가산금",
    ledger.ENFORCEMENT_COST: "체납처분비",
}
CHANNEL_LABELS = {
    "qr": "QR 전자납부",
    "card": "신용카드 (QR 전자납부)",
    "transfer": "계좌이체 (QR 전자납부)",
    "virtual_account": "가상계좌 입금",
    "bank": "은행 납부",
    "counter": "창구 수납",
}


def _page(status: int, title: str, message: str) -> Response:
    html = render_template("error.html", title=title, message=message, status=status)
    return Response(html, status=status, mimetype="text/html")


# --- the receipt ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptView:
    """What the receipt page and PDF show of one posted payment (amounts from its ledger entries)."""

    receipt_no: str
    paid_at: datetime
    method: str
    amount: int
    allocations: list[tuple[str, int]]  # (head label, won) — the payment's entries, adding up to ``amount``
    self_payment_reduction: int  # the 자진납부 reduction this payment posted (0: none)
    balance_after: int  # the receivable's balance right after this payment's entries
    balance_now: int
    payer: str  # masked
    office: str
    office_address: str
    revenue_item: str


def _receipt(session: Session, view: PageView, txn_id: str | None) -> ReceiptView | Response:
    notice = notice_ops.find_notice(session, view.notice_no)
    receivable = notice_ops.receivable_of(session, notice.id) if notice is not None else None
    if notice is None or receivable is None:
        return _page(
            404, "영수증이 없습니다", "고지서가 아직 부과 기관에 전송되지 않았습니다. 잠시 후 다시 확인해 주세요."
        )
    posted = [p for p in payments.payments_of(session, receivable.id) if p.status == payments.PAID]
    chosen = next((p for p in posted if p.txn_id == txn_id), None) if txn_id else (posted[-1] if posted else None)
    if chosen is None or chosen.approved_at is None:
        return _page(404, "영수증이 없습니다", "이 고지서로 확인된 납부 내역이 없습니다.")
    mine = ledger.entries_from(session, receivable.id, f"payment:{chosen.gateway}:{chosen.txn_id}")
    heads = {
        h.id: h.kind
        for h in session.scalars(select(ledger.ChargeHead).where(ledger.ChargeHead.receivable_id == receivable.id))
    }
    allocations = [
        (HEAD_LABELS.get(heads[e.charge_head_id], heads[e.charge_head_id]), -e.amount)
        for e in mine
        if e.kind == "payment"
    ]
    reduction = -sum(e.amount for e in mine if e.kind == "reduction")
    last = max((e.id for e in mine), default=None)
    every = ledger.entries(session, receivable.id)
    balance_after = sum(e.amount for e in every if last is None or e.id <= last)
    case = session.get(FineCase, notice.id)
    payer = (case.party_name_masked if case is not None else None) or notice.offender_name_masked or "미상"
    code = session.get(ViolationCode, notice.violation_code)
    office = session.get(Jurisdiction, notice.jurisdiction)
    return ReceiptView(
        receipt_no=f"R-{chosen.id:010d}",
        paid_at=chosen.approved_at,
        method=CHANNEL_LABELS.get(chosen.channel, chosen.channel),
        amount=chosen.amount,
        allocations=allocations,
        self_payment_reduction=reduction,
        balance_after=balance_after,
        balance_now=sum(e.amount for e in every),
        payer=mask_name(payer),
        office=office.name if office else notice.jurisdiction,
        office_address=(office.address if office else None) or "-",
        revenue_item=f"과태료 ({code.name if code else notice.violation_code})",
    )


def _txn_id() -> str | None:
    values = request.args.getlist("txn_id")
    if len(values) == 1 and 0 < len(values[0]) <= 80 and values[0].isprintable():
        return str(values[0])
    return None


def _verified_receipt(session: Session, notice_no: str) -> tuple[PageView, ReceiptView] | Response:
    """The signed link checked, then the receipt it asks for (``txn_id``, else the latest); or an error page."""
    view = verified_view(session, notice_no, request.args)
    if isinstance(view, Response):
        return view
    shown = _receipt(session, view, _txn_id())
    return shown if isinstance(shown, Response) else (view, shown)


@bp.get("/p/<notice_no>/receipt")
def receipt(notice_no: str) -> Response:
    """영수증: one posted payment of this notice, its allocation per head and the balance it left."""
    with unit_of_work() as session:
        found = _verified_receipt(session, notice_no)
        if isinstance(found, Response):
            return found
        view, shown = found
        query = dict(view.signed) | ({"txn_id": _txn_id() or ""} if _txn_id() else {})
        html = render_template(
            "receipt.html",
            v=view,
            rc=shown,
            paid_at=shown.paid_at.astimezone(protocol.SEOUL).strftime("%Y년 %m월 %d일 %H:%M"),
            pdf=f"/p/{notice_no}/receipt.pdf?{urlencode(query)}",
            back=f"/p/{notice_no}?{urlencode(view.signed)}",
        )
    return Response(html, mimetype="text/html")


def _payment_info(session: Session, view: PageView, notice: notice_ops.Notice) -> PaymentInfo:
    # the receipt names how the notice is paid: its payment number, virtual account and the link the citizen used
    links = wiring.payment_links(runtime())
    return links.info(session, notice, qr_text=links.page_url(view.notice_no, urlencode(view.signed)))


def _receipt_document(session: Session, view: PageView, shown: ReceiptView) -> Receipt:
    """The receipt as printing's ``Receipt`` (the payer's name already masked)."""
    notice = notice_ops.find_notice(session, view.notice_no)
    assert notice is not None
    return Receipt(
        receipt_no=shown.receipt_no,
        authority=Authority(name=shown.office, address=shown.office_address),
        payer_name=shown.payer,
        notice_no=view.notice_no,
        revenue_item=shown.revenue_item,
        paid_at=shown.paid_at,
        method=shown.method,
        amount_paid=shown.amount,
        allocations=tuple(Allocation(head=head, amount=amount) for head, amount in shown.allocations),
        balance=max(shown.balance_after, 0),
        payment=_payment_info(session, view, notice),
    )


def _pdf_download(data: bytes, notice_no: str) -> Response:
    ascii_name = f"receipt-{notice_no}.pdf"
    korean_name = quote(f"영수증-{notice_no}.pdf")
    return Response(
        data,
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{korean_name}",
            "Cache-Control": "no-store",
        },
    )


@bp.get("/p/<notice_no>/receipt.pdf")
def receipt_pdf(notice_no: str) -> Response:
    """The receipt as an A4 PDF (printing's ``Receipt``), the payer's name masked."""
    with unit_of_work() as session:
        found = _verified_receipt(session, notice_no)
        if isinstance(found, Response):
            return found
        document = _receipt_document(session, *found)
    return _pdf_download(render_documents_pdf([document]), notice_no)


# --- the opinion form -------------------------------------------------------------------------------------------


def _token_key() -> bytes:
    secret = runtime().config.jwt_secret.encode()
    return hmac.new(secret, b"jingsu citizen form token v1", hashlib.sha256).digest()


def form_token(notice_no: str, signature: str, issued: int) -> str:
    """The opinion form's CSRF token: ``<unix seconds>.<hmac>`` over the notice, its link signature and the time."""
    message = f"{notice_no}|{signature.upper()}|{issued}".encode()
    return f"{issued}.{hmac.new(_token_key(), message, hashlib.sha256).hexdigest()}"


def token_ok(token: str, notice_no: str, signature: str, now: int) -> bool:
    match = _TOKEN.fullmatch(token)
    if match is None:
        return False
    issued = int(match.group(1))
    if not (now - FORM_TOKEN_TTL <= issued <= now + 60):
        return False
    return hmac.compare_digest(form_token(notice_no, signature, issued), token)


def _same_origin() -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin == "null":
        # our pages send no referrer (Referrer-Policy: no-referrer), so a browser posts their forms with an opaque
        # Origin; its fetch metadata still says whether the form was ours. A sandboxed frame or a data: page is not.
        return request.headers.get("Sec-Fetch-Site") == "same-origin"
    return urlsplit(origin).netloc == request.host


@dataclass(frozen=True)
class OpinionState:
    open: bool
    reason: str | None  # why it is closed, in Korean
    deadline: date | None


def _opinion_state(session: Session, view: PageView) -> OpinionState:
    """Whether this notice takes an opinion today (read only; the case may not be opened yet)."""
    notice = notice_ops.find_notice(session, view.notice_no)
    if not view.synced or notice is None:
        return OpinionState(False, "고지서가 아직 부과 기관에 전송되지 않았습니다. 잠시 후 다시 시도해 주세요.", None)
    case = session.get(FineCase, notice.id)
    deadline = (case.opinion_deadline if case is not None else None) or notice.opinion_deadline
    today = protocol.seoul_date(runtime().clock())
    if view.paid or notice.status == notice_ops.PAID:
        return OpinionState(
            False, "감경된 금액 또는 과태료가 납부되어 부과 절차가 끝났습니다. 의견을 제출할 수 없습니다.", deadline
        )
    if view.ended or (case is not None and case.stage in ENDED):
        return OpinionState(False, "취소되었거나 종결된 고지서입니다.", deadline)
    stage = case.stage if case is not None else (ADVANCE_NOTICED if notice.kind == "person" else SYNCED)
    if stage == OPINION_SUBMITTED:
        return OpinionState(False, "이미 제출하신 의견을 검토하고 있습니다.", deadline)
    if stage == SYNCED:
        return OpinionState(False, "사전통지서를 받으신 후에 의견을 제출하실 수 있습니다.", deadline)
    if stage != ADVANCE_NOTICED or today > deadline:
        return OpinionState(False, f"의견제출기한({deadline.strftime('%Y년 %m월 %d일')})이 지났습니다.", deadline)
    return OpinionState(True, None, deadline)


def _opinion_form(view: PageView, state: OpinionState, status: int = 200, **extra: object) -> Response:
    issued = int(runtime().clock().timestamp())
    html = render_template(
        "opinion.html",
        v=view,
        state=state,
        token=form_token(view.notice_no, view.signed["s"], issued),
        back=f"/p/{view.notice_no}?{urlencode(view.signed)}",
        summary_max=SUMMARY_MAX,
        **extra,
    )
    return Response(html, status=status, mimetype="text/html")


@bp.get("/p/<notice_no>/opinion")
def opinion_form(notice_no: str) -> Response:
    """의견제출 form, while the opinion period is open; otherwise a page saying why not (409)."""
    with unit_of_work() as session:
        view = verified_view(session, notice_no, request.args)
        if isinstance(view, Response):
            return view
        state = _opinion_state(session, view)
        return _opinion_form(view, state, 200 if state.open else 409)


@bp.post("/p/<notice_no>/opinion")
def submit_opinion(notice_no: str) -> Response:
    """Record the citizen's opinion (``submitted_by="citizen"``) in one unit of work; the case waits for a clerk."""
    try:
        return _submit_opinion(notice_no)
    except InvalidTransition:  # the case moved on between our check and the lock (a payment, a clerk): rolled back
        return _page(
            409, "의견을 제출할 수 없습니다", "고지서의 처리 단계가 바뀌었습니다. 고지서에서 다시 확인해 주세요."
        )


def _submit_opinion(notice_no: str) -> Response:
    now = runtime().clock()
    with unit_of_work() as session:
        view = verified_view(session, notice_no, request.form)
        if isinstance(view, Response):
            return view
        if not _form_ok(view, int(now.timestamp())):
            return _page(403, "요청을 확인할 수 없습니다",
                         "의견 제출 화면이 만료되었거나 올바르지 않습니다. 고지서에서 다시 열어 주세요.")  # fmt: skip
        state = _opinion_state(session, view)
        if not state.open:
            return _opinion_form(view, state, 409)
        summary, phone, problems = _opinion_fields()
        if problems:
            return _opinion_form(view, state, 422, problems=problems, summary=summary, phone=phone)
        _record_opinion(session, notice_no, summary, phone, now)
        html = render_template("opinion_done.html", v=view, back=f"/p/{notice_no}?{urlencode(view.signed)}")
    return Response(html, mimetype="text/html")


def _form_ok(view: PageView, now: int) -> bool:
    """Our own form, rendered lately for this notice and link: same origin and one fresh token."""
    tokens = request.form.getlist("t")
    return _same_origin() and len(tokens) == 1 and token_ok(tokens[0], view.notice_no, view.signed["s"], now)


def _opinion_fields() -> tuple[str, str, dict[str, str]]:
    """The form's summary and phone, and what is wrong with them (field → message, in Korean)."""
    summary = (request.form.get("summary") or "").replace("\r\n", "\n").strip()
    phone = (request.form.get("phone") or "").strip()
    problems = {}
    if not summary:
        problems["summary"] = "의견 내용을 입력해 주세요."
    elif len(summary) > SUMMARY_MAX:
        problems["summary"] = f"의견은 {SUMMARY_MAX:,}자 이내로 입력해 주세요."
    if phone and not _PHONE.fullmatch(phone):
        problems["phone"] = "전화번호 형식이 올바르지 않습니다 (예: 010-0000-0000)."
    return summary, phone, problems


def _record_opinion(session: Session, notice_no: str, summary: str, phone: str, now: datetime) -> None:
    notice = notice_ops.find_notice(session, notice_no, for_update=True)
    assert notice is not None
    case = fines.case_of(session, notice, now)
    # DESIGN §7: the contact phone is kept only sealed (AES-GCM, bound to the notice number), never in clear
    cipher = runtime().cipher
    sealed = cipher.seal_text({"phone": phone.replace("-", "")}, context=notice_no.encode()) if phone else None
    cmd = fines.SubmitOpinion(summary, "electronic", "citizen", None, sealed)
    fines.submit_opinion(session, case, notice, cmd, Actor(address=request.remote_addr, label="citizen:qr"), now)
