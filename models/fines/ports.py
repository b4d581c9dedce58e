"""What the fine operations need of the adapters' answers (``adapters`` implements them; ``models`` never imports
``server``): the vehicle registry's owner and an e-approval decision. The calls themselves go through the outbox
(``models.outbox``), delivered by ``services``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

# --- adapters the operations need (adapters implements them; models never imports server) --------------------


class RegistryAddress(Protocol):
    @property
    def postal_code(self) -> str: ...
    @property
    def line1(self) -> str: ...
    @property
    def line2(self) -> str: ...


class RegistryOwner(Protocol):
    """An owner as the registry answered (``adapters.registry.Owner``)."""

    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def rrn(self) -> str | None: ...
    @property
    def business_no(self) -> str | None: ...
    @property
    def address(self) -> RegistryAddress: ...
    @property
    def vehicle_type(self) -> str: ...


class Decision(Protocol):
    """An e-approval decision as the service confirmed it (``adapters.approval.ApprovalDecision``)."""

    @property
    def submission_id(self) -> str: ...
    @property
    def reference_id(self) -> str: ...
    @property
    def document_type(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def decided_by(self) -> str | None: ...
    @property
    def decided_at(self) -> datetime | None: ...

    def as_dict(self) -> dict[str, Any]: ...
