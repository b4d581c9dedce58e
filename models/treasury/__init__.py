"""금고 (treasury bank) receipts: the real-time feed SEN and the daily file, matched to the ledger, with an exception
queue and a daily reconciliation report.

- ``tables``: receipts (one row per (bank, receipt id), whichever source reported it first), files, aggregate-credit
  splits and exceptions;
- ``daily_file``: the fixed-width daily file (writer and parser, pure);
- ``sen``: the SEN message and its HMAC signature (pure);
- ``matching``: what a reported receipt does to the ledger (``record_receipt``, ``import_file``) and the exception
  queue;
- ``report``: the daily reconciliation report;
- ``cli``: ``treasury-import`` and ``reconciliation-report``.
"""

from models.treasury import tables  # noqa: F401  (register the tables on Base.metadata)
