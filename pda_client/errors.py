"""What can go wrong on the device, split by what the officer should do about it (STYLE.md: retry, fix, resolve)."""

from __future__ import annotations


class PdaError(Exception):
    """Base of every device error; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class NotEnrolled(PdaError):
    """The device has not been enrolled yet (`pda enroll`)."""


class NotSignedIn(PdaError):
    """No officer is signed in on this device (`pda login`)."""


class CannotIssue(PdaError):
    """The notice cannot be issued as asked (unknown code, no schedule, no numbers left, missing field)."""


class Unreachable(PdaError):
    """Retry later: the server could not be reached or did not answer (transport error, timeout, 5xx)."""

    exit_code = 3


class Refused(PdaError):
    """The server refused the request as a whole (token, revocation, validation); ``code`` is its problem code."""

    exit_code = 4

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


class ResetRequired(Refused):
    """The server's sync epoch changed: push everything, then refetch the scope from no cursor."""
