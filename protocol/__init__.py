"""The pure rules that the server and every device must compute identically (PROTOCOL.md is the contract).

The device (``pda_client``) imports them and never copies them; the server uses them to recompute and verify what
devices send. Nothing here touches a database, a clock or the network, and nothing here imports the rest of the
project (``tests/unit/test_layers.py`` holds it).

- ``protocol.events``: event types, results, flags, reasons, statuses; the per-device event hash chain (§2)
- ``protocol.numbers``: notice numbers and the one Luhn check digit (§2)
- ``protocol.amounts``: Seoul dates, reduced amount and opinion deadline from an effective-dated schedule row (§2, §3)
- ``protocol.qr``: the payment QR and its HMAC signature (§5)
- ``protocol.payment_number``: the 19-digit 전자납부번호 (LAW.md §3)
- ``protocol.masking``: names, RRNs and plates as shown (DESIGN.md §7)

The names of the first four are also this package's own (``protocol.NOTICE_ISSUED``, ``protocol.qr_url``), as
the single ``protocol`` module had them.
"""

from protocol.amounts import *  # noqa: F403
from protocol.events import *  # noqa: F403
from protocol.numbers import *  # noqa: F403
from protocol.qr import *  # noqa: F403
