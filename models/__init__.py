"""The domain: tables and the operations on them, one module per small workflow, one package per large one.

Each workflow package (``arrears``, ``fines``, ``rules``, ``treasury``) has the same inner shape, described in its
docstring: ``tables`` (the mapped tables and their values), operation modules, and ``queries`` (the reads other
layers use); its modules import one another in one direction only (no cycle, not even inside a function). The one
writer of ``ledger_entries`` is ``models.ledger`` (``post``, ``post_many``). Imports nothing of ours but ``protocol``.

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
    outbox,
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
