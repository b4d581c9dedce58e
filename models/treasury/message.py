"""What the bank reports about one receipt, whichever way it came (SEN or the daily file): pure data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

KINDS = ("deposit", "cancel")
CHANNELS = ("virtual_account", "bank", "settlement")
RECEIPT_ID = re.compile(r"[0-9A-Za-z-]{1,20}")
MAX_AMOUNT = 10**12


@dataclass(frozen=True)
class BankReport:
    """One receipt as the bank reported it. ``amount`` is positive won; a ``cancel`` takes back the amount of the
    receipt it names (``original_receipt_id``). ``reference`` is the virtual account (channel ``virtual_account``),
    the 19-digit 전자납부번호 (``bank``) or the settlement reference ``<gateway>:<YYYYMMDD>`` (``settlement``)."""

    bank_code: str
    receipt_id: str
    kind: str
    channel: str
    reference: str
    amount: int
    received_at: datetime
    original_receipt_id: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "bank_code": self.bank_code,
            "receipt_id": self.receipt_id,
            "kind": self.kind,
            "channel": self.channel,
            "reference": self.reference,
            "amount": self.amount,
            "received_at": self.received_at.isoformat(),
            "original_receipt_id": self.original_receipt_id,
        }
