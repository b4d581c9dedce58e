"""The ledger: tables and the domain operations on them, one module per workflow.

Knows nothing of Flask or HTTP. Operations take a Session plus a typed command and the services they need
(clock, cipher), and raise ``models.errors`` exceptions. Importing this package registers every table on
``models.base.Base.metadata``.
"""

from models import (  # noqa: F401  (register the tables)
    arrears,
    catalog,
    devices,
    evidence,
    feed,
    fines,
    jurisdictions,
    ledger,
    notices,
    payment_refs,
    payments,
    print_runs,
    review,
    rules,
    server_state,
    suspense,
    sync_store,
    treasury,
    users,
)
