"""How money finds its notice: the 19-digit 전자납부번호 and the 가상계좌 (virtual account) printed on every document.

Both are derived from the notice so that a bank's receipt names it without a lookup table we could lose:

- the payment number (``protocol.payment_number``, provisional layout) is the notice number's jurisdiction, year and
  serial with the receivable's revenue item: ``payment_no_of`` builds it, ``notice_no_of_payment_no`` reads it back;
- the virtual account is issued once per receivable (``virtual_accounts``, UNIQUE on both the account and the
  receivable): the configured 4-digit bank prefix, the receivable id in 9 digits and a Luhn digit — 14 digits, the
  length Korean banks use for virtual accounts. Deposits to it are matched by account and amount (treasury).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, String, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

import protocol
from models import ledger
from models.base import Base
from protocol import payment_number


class VirtualAccount(Base):
    __tablename__ = "virtual_accounts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    bank_code: Mapped[str] = mapped_column(String(3))
    account_no: Mapped[str] = mapped_column(String(20), unique=True)
    receivable_id: Mapped[int] = mapped_column(ForeignKey("receivables.id"), unique=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Bank:
    """The treasury bank (금고) that issues virtual accounts: its code, its name as printed, the account prefix."""

    code: str
    name: str
    prefix: str

    def __post_init__(self) -> None:
        if not (len(self.code) == 3 and self.code.isascii() and self.code.isdigit()):
            raise ValueError("the bank code is 3 digits")
        if not (len(self.prefix) == 4 and self.prefix.isascii() and self.prefix.isdigit()):
            raise ValueError("the virtual-account prefix is 4 digits")


def payment_no_of(notice_no: str, revenue_item: str) -> str:
    """The 19-digit payment number of a notice (``protocol.payment_number.for_notice``: the device prints the same)."""
    return payment_number.for_notice(notice_no, revenue_item)


def notice_no_of_payment_no(text: str) -> str | None:
    """The notice number a payment number was built from; ``None`` when the text is no valid payment number (wrong
    length, non-digit, failed check digit) or not of a notice."""
    return payment_number.notice_no_of(text)


def account_no_of(bank: Bank, receivable_id: int) -> str:
    payload = f"{bank.prefix}{receivable_id:09d}"
    return payload + protocol.luhn_check_digit(payload)


def account_for(session: Session, receivable: ledger.Receivable, bank: Bank) -> VirtualAccount:
    """The receivable's virtual account, issued on first use (concurrent callers get the same row)."""
    found = session.scalar(select(VirtualAccount).where(VirtualAccount.receivable_id == receivable.id))
    if found is not None:
        return found
    session.execute(
        pg_insert(VirtualAccount)
        .values(bank_code=bank.code, account_no=account_no_of(bank, receivable.id), receivable_id=receivable.id)
        .on_conflict_do_nothing()
    )
    account = session.scalar(select(VirtualAccount).where(VirtualAccount.receivable_id == receivable.id))
    assert account is not None
    return account


def find_account(session: Session, account_no: str) -> VirtualAccount | None:
    """The virtual account with this number (hyphens and spaces ignored), or None."""
    digits = "".join(account_no.replace("-", " ").split())
    if not (digits.isascii() and digits.isdigit()):
        return None
    return session.scalar(select(VirtualAccount).where(VirtualAccount.account_no == digits))
