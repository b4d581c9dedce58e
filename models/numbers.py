"""Number accounting (DESIGN.md §6): every allocated number ends issued, voided, spoiled, returned or cancelled.

The report shows, per block of a device, how its numbers were used, what is still unused, and the gaps: numbers
below the highest one used that the server has never seen — printed and never synced, or lost; an auditor chases
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.base import Scope
from models.devices import ACTIVE, NumberBlock, SpoiledNumber, get_device
from models.errors import NotFound
from models.notices import Notice
from protocol import format_notice_no, parse_notice_no

VOIDED_STATUSES = ("voided",)
CANCELLED_STATUSES = ("cancelled",)


@dataclass(frozen=True)
class Gap:
    first: str
    last: str
    count: int


@dataclass
class BlockReport:
    block_id: int
    first: str
    last: str
    count: int
    status: str
    allocated_at: datetime
    expires_at: datetime
    issued: int = 0
    voided: int = 0
    cancelled_notices: int = 0
    spoiled: int = 0
    cancelled: int = 0
    unused: int = 0
    gaps: list[Gap] = field(default_factory=list)


@dataclass
class NumberReport:
    device_id: str
    jurisdiction: str
    blocks: list[BlockReport]

    @property
    def totals(self) -> dict[str, int]:
        keys = ("count", "issued", "voided", "cancelled_notices", "spoiled", "cancelled", "unused")
        out = {key: sum(getattr(b, key) for b in self.blocks) for key in keys}
        out["gaps"] = sum(g.count for b in self.blocks for g in b.gaps)
        return out


def _range_filter(column: Any, block: NumberBlock) -> Any:
    # 15-digit numbers of one block share their first 7 digits, so string order is serial order
    return column.between(block.first[:14], block.last[:14] + "9")


def number_report(session: Session, scope: Scope, device_id: str) -> NumberReport:
    """How every number of a device's blocks was used; ``NotFound`` for an unknown device or one outside scope."""
    device = get_device(session, device_id)
    if not scope.allows(device.jurisdiction):
        raise NotFound("no such device")
    reports = []
    for block in session.scalars(
        select(NumberBlock).where(NumberBlock.device_id == device.id).order_by(NumberBlock.id)
    ):
        report = BlockReport(
            block_id=block.id,
            first=block.first,
            last=block.last,
            count=block.count,
            status=block.status,
            allocated_at=block.allocated_at,
            expires_at=block.expires_at,
        )
        used: set[int] = set()
        for notice_no, status in session.execute(
            select(Notice.notice_no, Notice.status).where(_range_filter(Notice.notice_no, block))
        ):
            parsed = parse_notice_no(notice_no)
            if parsed is None:
                continue
            used.add(parsed.serial)
            if status in VOIDED_STATUSES:
                report.voided += 1
            elif status in CANCELLED_STATUSES:
                report.cancelled_notices += 1
            else:
                report.issued += 1
        for (notice_no,) in session.execute(
            select(SpoiledNumber.notice_no).where(_range_filter(SpoiledNumber.notice_no, block))
        ):
            parsed = parse_notice_no(notice_no)
            if parsed is not None and parsed.serial not in used:
                used.add(parsed.serial)
                report.spoiled += 1
        remaining = block.count - len(used)
        if block.status == ACTIVE:
            report.unused = remaining
        else:
            report.cancelled = remaining
        report.gaps = _gaps(block, used)
        reports.append(report)
    return NumberReport(device.id, device.jurisdiction, reports)


def _gaps(block: NumberBlock, used: set[int]) -> list[Gap]:
    """Runs of numbers below the highest used one that were never seen."""
    if not used:
        return []
    gaps = []
    start = None
    for serial in range(block.first_serial, max(used) + 1):
        if serial not in used and start is None:
            start = serial
        elif serial in used and start is not None:
            gaps.append(_gap(block, start, serial - 1))
            start = None
    return gaps


def _gap(block: NumberBlock, first: int, last: int) -> Gap:
    return Gap(
        format_notice_no(block.jurisdiction, block.year2, first),
        format_notice_no(block.jurisdiction, block.year2, last),
        last - first + 1,
    )


def allocated_total(session: Session, device_id: str) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(NumberBlock.last_serial - NumberBlock.first_serial + 1), 0)).where(
            NumberBlock.device_id == device_id
        )
    )
    return int(total or 0)
