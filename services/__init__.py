"""Application services: the workflows that span a unit of work, an outbound system and the domain — print runs
(``services.mailing``), the payment details of a document (``services.payment_links``), payment settlement and
sweeps (``services.payments``) and the worker's periodic jobs (``services.jobs``).

No Flask here: every input (a session or a way to open transactions, the clock, the cipher, the adapters and the
settings) is passed in by the caller — ``server`` in a request, the worker or a command; a test with no app at all.
May import ``models``, the adapters, ``printing`` and ``protocol``.
"""
