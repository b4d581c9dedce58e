"""The 전자납부번호 and the 가상계좌 of a notice: derived from it, read back to it, one account per receivable; and the
server-signed QR of a mailed document verifies as the slip's does."""

from __future__ import annotations

import pytest

import protocol
from models import notices, payment_refs
from protocol import payment_number

BANK = payment_refs.Bank(code="088", name="신한은행", prefix="5620")


@pytest.mark.parametrize("notice_no", ["111102600000012", "116802512345679", "111102699999991"])
def test_the_payment_number_reads_back_to_its_notice(notice_no: str) -> None:
    number = payment_refs.payment_no_of(notice_no, "41")
    assert len(number) == 19 and payment_number.check(number)
    assert number[:5] == notice_no[:5] and number[5] == "2" and number[8:10] == "41"
    assert payment_refs.notice_no_of_payment_no(number) == notice_no
    assert payment_refs.notice_no_of_payment_no(payment_number.format(number)) == notice_no  # as printed


def test_a_mistyped_payment_number_names_no_notice() -> None:
    number = payment_refs.payment_no_of("111102600000012", "41")
    typo = number[:-2] + number[-1] + number[-2]
    assert payment_refs.notice_no_of_payment_no(typo) is None or typo == number
    assert payment_refs.notice_no_of_payment_no(number[:-1] + str((int(number[-1]) + 1) % 10)) is None
    assert payment_refs.notice_no_of_payment_no("12345") is None
    tax = payment_number.build(agency="11110", kind=1, year=26, item=41, serial=12)  # 지방세: not ours
    assert payment_refs.notice_no_of_payment_no(tax) is None


def test_one_virtual_account_per_receivable_found_by_its_number(db_session, issue) -> None:  # noqa: F811
    notice = issue("111102600000012")
    receivable = notices.receivable_of(db_session, notice.id)
    assert receivable is not None
    account = payment_refs.account_for(db_session, receivable, BANK)
    assert payment_refs.account_for(db_session, receivable, BANK).id == account.id
    assert len(account.account_no) == 14 and account.account_no.startswith("5620")
    assert protocol.luhn_check_digit(account.account_no[:-1]) == account.account_no[-1]
    spaced = f"{account.account_no[:4]}-{account.account_no[4:9]} {account.account_no[9:]}"
    found = payment_refs.find_account(db_session, spaced)
    assert found is not None and found.receivable_id == receivable.id
    assert payment_refs.find_account(db_session, "5620999999999x") is None
    assert payment_refs.find_account(db_session, "56209999999990") is None
