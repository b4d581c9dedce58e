"""Citizen pages (PROTOCOL.md §5): the QR landing page ``/p/<notice_no>``, in Korean, phone-sized.

The signature is checked before anything is shown; a bad or missing one gets an HTML 4xx page with no amounts.
Before the notice has synced, the page shows the signed amounts; the citizen page shows no personal data beyond a
masked plate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask import Blueprint, Response, render_template, request
from sqlalchemy.orm import Session

from models import devices as device_ops
from models import ledger
from models import notices as notice_ops
from models.catalog import ViolationCode
from models.crypto import mask_plate
from models.jurisdictions import Jurisdiction
from server.runtime import runtime, unit_of_work
from sync import protocol

bp = Blueprint("pages", __name__)

_ERRORS = {
    400: ("잘못된 납부 링크입니다", "QR 코드의 내용이 올바르지 않습니다. 고지서의 QR 코드를 다시 스캔해 주세요."),
    403: (
        "확인할 수 없는 고지서입니다",
        "고지서의 서명이 맞지 않습니다. 고지서의 QR 코드를 다시 스캔하시거나 발급 기관에 문의해 주세요.",
    ),
    404: ("고지서를 찾을 수 없습니다", "고지번호를 확인해 주세요."),
    405: ("허용되지 않는 요청입니다", "페이지를 다시 열어 주세요."),
    500: ("일시적인 오류입니다", "잠시 후 다시 시도해 주세요."),
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


def _keys_for(session: Session, notice: notice_ops.Notice | None, notice_no: str) -> list[str]:
    if notice is not None:
        device_id = notice.device_id
    else:
        block = device_ops.block_of(session, notice_no)
        if block is None:
            return []
        device_id = block.device_id
    return device_ops.qr_keys(session, device_id, runtime().cipher)


@bp.get("/p/<notice_no>")
def landing(notice_no: str) -> Response:
    payload = protocol.parse_qr_fields(
        notice_no, request.args.get("a"), request.args.get("r"), request.args.get("d"), request.args.get("s")
    )
    if protocol.parse_notice_no(notice_no) is None:
        return error_page(404)
    if payload is None:
        return error_page(400)
    rt = runtime()
    today = protocol.seoul_date(rt.clock())
    with unit_of_work() as session:
        notice = notice_ops.find_notice(session, notice_no)
        keys = _keys_for(session, notice, notice_no)
        if not keys:
            return error_page(404)
        if not any(protocol.verify_qr(key, payload) for key in keys):
            return error_page(403)
        reduced_applies = today <= payload.deadline
        if notice is None:
            view = PageView(
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
                due_today=payload.reduced_amount if reduced_applies else payload.amount,
                reduced_applies=reduced_applies,
                paid=False,
                status=None,
            )
        else:
            if (notice.amount, notice.reduced_amount, notice.opinion_deadline) != (
                payload.amount,
                payload.reduced_amount,
                payload.deadline,
            ):
                return error_page(403)
            receivable = notice_ops.receivable_of(session, notice.id)
            balance = ledger.balance(session, receivable.id) if receivable else 0
            charged = notice.amount
            due = balance
            if reduced_applies and balance == charged:
                due = notice.reduced_amount
            code = session.get(ViolationCode, notice.violation_code)
            office = session.get(Jurisdiction, notice.jurisdiction)
            view = PageView(
                notice_no=notice_no,
                synced=True,
                violation=code.name if code else notice.violation_code,
                observed_at=notice.observed_at.astimezone(protocol.SEOUL).strftime("%Y년 %m월 %d일 %H:%M"),
                place=notice.place_address,
                plate=mask_plate(notice.vehicle_plate) if notice.vehicle_plate else None,
                office=office.name if office else None,
                amount=notice.amount,
                reduced_amount=notice.reduced_amount,
                deadline=notice.opinion_deadline,
                due_today=max(due, 0),
                reduced_applies=reduced_applies and balance == charged,
                paid=notice.status == notice_ops.PAID
                or (balance <= 0 and notice.status not in ("voided", "cancelled")),
                status=notice.status,
            )
        html = render_template("notice.html", v=view)
    return Response(html, status=200, mimetype="text/html")


@bp.get("/healthz")
def healthz() -> Response:
    return Response('{"status":"ok"}', mimetype="application/json")


@bp.get("/readyz")
def readyz() -> Response:
    from sqlalchemy import text

    with runtime().sessions() as session:
        session.execute(text("SELECT 1"))
    return Response('{"status":"ready"}', mimetype="application/json")
