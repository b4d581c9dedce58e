"""금고 (treasury bank) receipts: the real-time feed SEN and the daily file, matched to the ledger, with an exception
queue and a daily reconciliation report.

- ``tables``: receipts (one row per (bank, receipt id), whichever source reported it first), files, aggregate-credit
  splits and exceptions;
- ``daily_file``: the fixed-width daily file (writer and parser, pure);
- ``sen``: the SEN message and its HMAC signature (pure);
- ``exceptions``: the exception queue: its reasons, opening one, a clerk resolving one, settling an ``unmatched``
  one when its money finds its notice (``payments`` and ``suspense`` call it; it imports neither);
- ``matching``: what a reported receipt does to the ledger (``record_receipt``, ``import_file``);
- ``queries``: the exception queue as the clerk reads it (``list_exceptions``, ``get_exception``);
- ``report``: the daily reconciliation report.

Each module imports only those listed before it (``matching`` and ``report`` build on ``models.payments``, which
builds on ``exceptions``). The CLI commands (``treasury-import``, ``reconciliation-report``) are the server's.
"""

from models.treasury import tables  # noqa: F401  (register the tables on Base.metadata)
