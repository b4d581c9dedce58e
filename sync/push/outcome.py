"""The fate of one pushed event (PROTOCOL.md §2 ``results``), and the push's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import protocol
from sync.schemas import flatten_errors


@dataclass(frozen=True)
class SyncSettings:
    """Configurable thresholds of the push path (defaults are PROTOCOL.md's)."""

    clock_skew: timedelta = timedelta(minutes=5)
    late_sync: timedelta = timedelta(hours=72)


@dataclass
class Outcome:
    """The fate of one event."""

    status: str
    notice_no: str | None = None
    version: int | None = None
    flags: list[str] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)
    current: dict[str, Any] | None = None

    def as_result(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "notice_no": self.notice_no,
            "version": self.version,
            "flags": self.flags,
            "problems": self.problems,
        }
        if self.current is not None:
            out["current"] = self.current
        return out


def rejected(notice_no: str | None, code: str, field_name: str, message: str) -> Outcome:
    """``rejected`` with one problem (``code`` on ``field_name``)."""
    return Outcome(protocol.REJECTED, notice_no, problems=[{"code": code, "field": field_name, "message": message}])


def invalid_data(notice_no: str | None, errors: Any) -> Outcome:
    """``rejected`` with a ``validation_failed`` problem per field of ``data`` the schema refused."""
    flat = flatten_errors(errors, "data")
    problems = [
        {"code": "validation_failed", "field": path, "message": "; ".join(messages)} for path, messages in flat.items()
    ]
    return Outcome(protocol.REJECTED, notice_no, problems=problems)


def number_taken(notice_no: str) -> Outcome:
    """``conflict``: the number is another notice's, or spoiled."""
    return Outcome(
        protocol.CONFLICT,
        notice_no,
        problems=[{"code": "notice_no_taken", "field": "notice_no", "message": "this number was already used"}],
    )


def ordered(flags: list[str]) -> list[str]:
    """``flags`` in PROTOCOL.md's order, once each."""
    return [flag for flag in protocol.FLAGS if flag in flags]
