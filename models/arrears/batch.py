"""The month step in bulk (DESIGN.md §9: month-end 중가산금 for a million receivables in a minute).

The common case — an overdue fine whose 가산금 is decided and that never had a hold — is decided here for a chunk of
receivables at once: one query for their clocks, one for their principal entries, one for their 중가산금 heads, the
new entries and postings copied in, the clocks updated in one statement. It decides exactly what
``clock.catch_up`` would (same functions of the rules, same dates, same rows); every other receivable goes through
``catch_up`` one by one. The property tests compare the two paths.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import bulk, ledger
from models.arrears.tables import (
    FINE_ACT,
    OVERDUE,
    SKIPPED_NOTHING_UNPAID,
    ArrearsPosting,
    CollectionHold,
    ReceivableTerms,
)
from models.base import Actor, utcnow
from models.rules import RuleBook, full_month_elapses_on, monthly_surcharge_installment
from models.rules.rows import MONTHLY_SURCHARGE

CHUNK = 5_000

_POSTING_COLUMNS = (
    "receivable_id",
    "head",
    "month_no",
    "accrues_on",
    "base",
    "amount",
    "skipped",
    "ledger_entry_id",
    "rule_key",
    "rule_id",
    "business_date",
)


def chunks(ids: Sequence[int], size: int = CHUNK) -> list[Sequence[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def months_in_bulk(
    session: Session, ids: Sequence[int], day: date, actor: Actor, rules: RuleBook
) -> tuple[dict[str, int], list[int]]:
    """Decide the 중가산금 months accrued by ``day`` for the plain receivables among ``ids`` (locked by the caller).

    Returns the counts (``posted``, ``skipped``, ``amount``, ``receivables``) and the ids left for ``catch_up``.
    """
    counts = {"posted": 0, "skipped": 0, "amount": 0, "receivables": 0}
    clocks = session.execute(
        select(
            ReceivableTerms.receivable_id,
            ReceivableTerms.due_date,
            ReceivableTerms.state,
            ReceivableTerms.surcharge_rule,
            ReceivableTerms.surcharge_done,
            ReceivableTerms.next_month_no,
            ReceivableTerms.caught_up_to,
        ).where(ReceivableTerms.receivable_id.in_(ids))
    ).all()
    held = set(session.scalars(select(CollectionHold.receivable_id).where(CollectionHold.receivable_id.in_(ids))))
    plain = [
        c
        for c in clocks
        if c.state == OVERDUE and c.surcharge_rule == FINE_ACT and c.surcharge_done and c.receivable_id not in held
    ]
    plain_ids = [c.receivable_id for c in plain]
    left = sorted(set(ids) - set(plain_ids))
    if not plain:
        return counts, left

    principal: dict[int, list[tuple[date, int]]] = defaultdict(list)
    for rid, on, amount in session.execute(
        select(ledger.LedgerEntry.receivable_id, ledger.LedgerEntry.business_date, ledger.LedgerEntry.amount)
        .join(ledger.ChargeHead, ledger.ChargeHead.id == ledger.LedgerEntry.charge_head_id)
        .where(ledger.ChargeHead.kind == ledger.PRINCIPAL, ledger.LedgerEntry.receivable_id.in_(plain_ids))
    ):
        principal[rid].append((on, int(amount)))

    entries: list[tuple[Any, ...]] = []  # without id and head id yet
    postings: list[tuple[Any, ...]] = []  # without ledger_entry_id yet (index into entries, or None)
    clock_updates: list[dict[str, Any]] = []
    caps: dict[date, int] = {}
    for clock in plain:
        due = clock.due_date
        cap = caps.get(due)
        if cap is None:
            cap = caps[due] = rules.row(MONTHLY_SURCHARGE, due + timedelta(days=1)).need_months()
        dated = principal.get(clock.receivable_id, [])
        n = clock.next_month_no
        while n <= cap:
            accrues_on = full_month_elapses_on(due, n)
            if accrues_on > day:
                break
            base = max(0, sum(amount for on, amount in dated if on < accrues_on))
            computed = monthly_surcharge_installment(base, due, rules)
            if computed.amount > 0:
                memo = f"중가산금 {n}개월차, 기준 {base}원" + "".join(f"; {key}" for key in computed.also)
                entries.append((clock.receivable_id, computed.amount, accrues_on, computed.rule_key, memo))
                link: int | None = len(entries) - 1
                counts["posted"] += 1
                counts["amount"] += computed.amount
            else:
                link = None
                counts["skipped"] += 1
            postings.append((clock.receivable_id, n, accrues_on, base, computed, link))
            n += 1
        counts["receivables"] += 1
        clock_updates.append(
            {
                "receivable_id": clock.receivable_id,
                "next_month_no": n,
                "next_month_on": full_month_elapses_on(due, n) if n <= cap else None,
                "caught_up_to": max(clock.caught_up_to or day, day),
                "updated_at": utcnow(),
            }
        )

    heads = dict(
        session.execute(
            select(ledger.ChargeHead.receivable_id, ledger.ChargeHead.id).where(
                ledger.ChargeHead.kind == ledger.MONTHLY_SURCHARGE, ledger.ChargeHead.receivable_id.in_(plain_ids)
            )
        ).all()
    )
    missing = sorted({rid for rid, *_ in entries} - set(heads))
    if missing:
        new_ids = bulk.next_ids(session, "charge_heads", len(missing))
        order = ledger.ALLOCATION_ORDER_V1[ledger.MONTHLY_SURCHARGE]
        bulk.copy_rows(
            session,
            "charge_heads",
            ("id", "receivable_id", "kind", "allocation_order"),
            ((hid, rid, ledger.MONTHLY_SURCHARGE, order) for hid, rid in zip(new_ids, missing)),
        )
        heads.update(zip(missing, new_ids))

    entry_ids = ledger.post_many(
        session,
        [(rid, heads[rid], "surcharge", amount, on, actor, key, memo) for rid, amount, on, key, memo in entries],
    )
    bulk.copy_rows(
        session,
        ArrearsPosting.__tablename__,
        _POSTING_COLUMNS,
        (
            (
                rid,
                ledger.MONTHLY_SURCHARGE,
                n,
                on,
                base,
                computed.amount if link is not None else 0,
                None if link is not None else SKIPPED_NOTHING_UNPAID,
                entry_ids[link] if link is not None else None,
                computed.rule_key,
                computed.rule_id,
                day,
            )
            for rid, n, on, base, computed, link in postings
        ),
    )
    session.execute(update(ReceivableTerms), clock_updates)
    # clocks and heads loaded in this session are stale now
    stale = set(plain_ids)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, ReceivableTerms) and obj.receivable_id in stale:
            session.expire(obj)
    return counts, left
