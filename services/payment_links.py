"""How a document the server prints tells the citizen to pay: the signed payment link (the QR), the 전자납부번호 and
the 가상계좌 — ``PaymentLinks.info`` gives all three as printing's ``PaymentInfo``.

The QR of a mailed document is signed by the server with the issuing device's newest QR key (the server holds every
device's keys, sealed), over the notice's amounts as the ledger holds them now (after a correction, the corrected
ones). The QR page verifies it exactly as it verifies the slip printed in the street (``server.pages.verified_view``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

import protocol
from models import devices, ledger, payment_refs
from models import notices as notice_ops
from models.crypto import PiiCipher
from printing.documents import PaymentInfo


@dataclass(frozen=True)
class LinkSettings:
    """The public base URL printed in payment QR codes and the treasury bank's virtual accounts as printed."""

    pay_base_url: str
    bank: payment_refs.Bank
    account_holder: str


@dataclass(frozen=True)
class PaymentLinks:
    settings: LinkSettings
    cipher: PiiCipher  # opens the devices' sealed QR keys

    def page_url(self, notice_no: str, query: str) -> str:
        """The QR page of a notice with a link's signed fields (``query``, urlencoded)."""
        return f"{self.settings.pay_base_url}/p/{notice_no}?{query}"

    def link(self, session: Session, notice: notice_ops.Notice) -> str:
        """The signed payment URL of a notice (what its QR holds)."""
        keys = devices.qr_keys(session, notice.device_id, self.cipher)
        if not keys:
            raise LookupError(f"device {notice.device_id} has no QR key")
        return protocol.qr_url(
            self.settings.pay_base_url,
            keys[0],
            notice.notice_no,
            notice.amount,
            notice.reduced_amount,
            notice.opinion_deadline,
        )

    def info(
        self,
        session: Session,
        notice: notice_ops.Notice,
        receivable: ledger.Receivable | None = None,
        *,
        qr_text: str | None = None,
    ) -> PaymentInfo:
        """Payment number, virtual account (issued on first use) and signed QR of a notice's receivable;
        ``qr_text``: a link already verified (the page the citizen is on), so the device's keys are not opened
        again."""
        if receivable is None:
            receivable = notice_ops.receivable_of(session, notice.id)
        if receivable is None:
            raise LookupError(f"notice {notice.notice_no} has no receivable")
        bank = self.settings.bank
        account = payment_refs.account_for(session, receivable, bank)
        return PaymentInfo(
            payment_no=payment_refs.payment_no_of(notice.notice_no, receivable.revenue_item),
            bank_name=bank.name,
            account_no=account.account_no,
            qr_text=qr_text or self.link(session, notice),
            account_holder=self.settings.account_holder,
        )
