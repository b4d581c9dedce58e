"""부과 in bulk (일괄 결정결의, 법 §17): eligible cases proposed as one decision, applied once e-approval approves it —
receivables adopted, 부과 고지서 generated, the arrears clock started — with the hooks into ``models.arrears``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import arrears, ledger, outbox, rules
from models import notices as notice_ops
from models.base import Actor
from models.catalog import RevenueItem
from models.crypto import PiiCipher
from models.errors import InvalidTransition
from models.fines.advance import addressee, authority, facts, party_of
from models.fines.cases import act, case_of, ensure_cases, payer_ref, transition
from models.fines.ports import Decision
from models.fines.queries import documents
from models.fines.tables import (
    ADVANCE_NOTICE,
    ADVANCE_NOTICED,
    BATCH_APPLIED,
    BATCH_PROPOSED,
    BATCH_REJECTED,
    BATCH_SUBMITTED,
    BATCH_SUBMITTING,
    ELECTRONIC,
    IMPOSITION_BATCH_DOCUMENT,
    IMPOSITION_NOTICE,
    ITEM_IMPOSED,
    ITEM_PENDING,
    ITEM_REJECTED,
    ITEM_SKIPPED,
    LAW,
    MAIL,
    FineCase,
    FineDocument,
    ImpositionBatch,
    ImpositionItem,
    NothingToImpose,
)
from models.jurisdictions import Jurisdiction
from models.notices import Notice
from models.rules.rows import MONTHLY_SURCHARGE, OBJECTION_PERIOD, SURCHARGE
from protocol import seoul_date

# --- 4. imposition in bulk (일괄 결정결의) ----------------------------------------------------------------------------


def ineligibility(session: Session, case: FineCase, notice: Notice, today: date, book: rules.RuleBook) -> str | None:
    """Why ``case`` may not be imposed on ``today`` (``None``: it may)."""
    if case.stage != ADVANCE_NOTICED:
        return f"the case is {case.stage}"
    if notice.status != notice_ops.ISSUED:
        return f"the notice is {notice.status}"
    last = max(case.opinion_deadline or notice.opinion_deadline, case.reduced_until or notice.opinion_deadline)
    if today <= last:
        return f"the opinion period runs until {last.isoformat()}"
    allowed = rules.imposition_allowed(seoul_date(notice.observed_at), today, book)
    if not allowed:
        return f"{allowed.reason} ({allowed.rule_key})"
    return None


def eligible_cases(
    session: Session, jurisdiction: str, today: date, book: rules.RuleBook, *, limit: int | None = None
) -> list[tuple[FineCase, Notice, int]]:
    """Cases of ``jurisdiction`` that may be imposed on ``today``, not already in a pending batch, with the balance
    (the first ``limit`` of them by notice, if given)."""
    pending = select(ImpositionItem.notice_id).where(ImpositionItem.outcome == ITEM_PENDING)
    stmt = (
        select(FineCase, Notice, ledger.Receivable.id)
        .join(Notice, Notice.id == FineCase.notice_id)
        .join(ledger.Receivable, ledger.Receivable.notice_id == Notice.id)
        .where(
            FineCase.jurisdiction == jurisdiction,
            FineCase.stage == ADVANCE_NOTICED,
            Notice.status == notice_ops.ISSUED,
            FineCase.notice_id.not_in(pending),
        )
        .order_by(FineCase.notice_id)
    )
    out = []
    for case, notice, receivable_id in session.execute(stmt):
        if ineligibility(session, case, notice, today, book) is not None:
            continue
        owed = ledger.balance(session, receivable_id)
        if owed > 0:
            out.append((case, notice, owed))
            if limit is not None and len(out) >= limit:
                break
    return out


# a batch's decision is applied in one transaction (a writer of changes: every imposed case tells its device), so a
# batch is bounded; a district with more eligible cases proposes again for the rest
BATCH_MAX = 1_000


def propose_imposition(
    session: Session, jurisdiction: str, actor: Actor, now: datetime, *, limit: int = BATCH_MAX
) -> ImpositionBatch:
    """Gather the eligible cases of ``jurisdiction`` (period over, unpaid, not withdrawn, within the 제척기간), at
    most ``limit`` (the rest wait for the next proposal), into one 일괄 결정결의 (``proposed``). Raises
    ``NothingToImpose`` when none is eligible."""
    ensure_cases(session, now, jurisdiction=jurisdiction)
    today = seoul_date(now)
    book = rules.load_rulebook(session)
    found = eligible_cases(session, jurisdiction, today, book, limit=limit)
    if not found:
        raise NothingToImpose(f"no case of {jurisdiction} may be imposed on {today.isoformat()}")
    batch = ImpositionBatch(
        jurisdiction=jurisdiction,
        status=BATCH_PROPOSED,
        as_of=today,
        count=len(found),
        amount_total=sum(owed for _, _, owed in found),
        # the e-approval idempotency key: unique beyond this database (a restored one reuses its ids), kept on the
        # batch so that submitting it again finds the same submission
        reference_id=f"imposition-{jurisdiction}-{uuid.uuid4().hex}",
        proposed_by=actor.user_id,
        proposed_at=now,
    )
    session.add(batch)
    session.flush()
    batch.reference_id = f"imposition-{batch.id}-{batch.reference_id[-12:]}"
    for case, _notice, owed in found:
        session.add(ImpositionItem(batch_id=batch.id, notice_id=case.notice_id, amount=owed, outcome=ITEM_PENDING))
        act(session, case, "imposition_proposed", now, actor, None, {"batch_id": batch.id, "amount": owed})
    session.flush()
    return batch


@dataclass(frozen=True)
class BatchDocument:
    """What goes to e-approval (``adapters.approval.ApprovalRequest`` fields)."""

    title: str
    document_type: str
    reference_id: str
    amount_total: int
    count: int


def batch_document(session: Session, batch: ImpositionBatch) -> BatchDocument:
    name = session.get(Jurisdiction, batch.jurisdiction)
    title = f"과태료 일괄 부과 결정결의 ({name.name if name else batch.jurisdiction}, {batch.as_of.isoformat()})"
    return BatchDocument(title, IMPOSITION_BATCH_DOCUMENT, batch.reference_id, batch.amount_total, batch.count)


def request_submission(
    session: Session, batch: ImpositionBatch, requested_by: str, callback_url: str, now: datetime
) -> None:
    """Submit the batch to e-approval through the outbox (operation ``approval.submit``), in the caller's
    transaction: the batch is ``submitting`` until the worker's delivery records the submission id
    (``mark_submitted``). The batch's ``reference_id`` is e-approval's own idempotency key; the outbox key adds
    how often the batch was sent (a submission cancelled by a person may be sent again). Raises
    ``InvalidTransition`` unless the batch is ``proposed``."""
    if batch.status != BATCH_PROPOSED:
        raise InvalidTransition(f"a batch that is {batch.status} cannot be submitted", field="status")
    doc = batch_document(session, batch)
    stream = f"approval:{batch.reference_id}"
    key = f"approval.submit:{batch.reference_id}:{outbox.rows_of(session, outbox.APPROVAL_SUBMIT, stream) + 1}"
    payload = {
        "batch_id": batch.id,
        "title": doc.title,
        "document_type": doc.document_type,
        "reference_id": doc.reference_id,
        "amount_total": doc.amount_total,
        "count": doc.count,
        "requested_by": requested_by,
        "callback_url": callback_url,
    }
    outbox.enqueue(session, outbox.APPROVAL_SUBMIT, key, payload, now, stream=stream, jurisdiction=batch.jurisdiction)
    batch.status = BATCH_SUBMITTING
    session.flush()


def batch_by_reference(session: Session, reference_id: str) -> ImpositionBatch | None:
    """The batch of an e-approval reference id, locked."""
    return session.scalar(select(ImpositionBatch).where(ImpositionBatch.reference_id == reference_id).with_for_update())


def mark_submitted(
    session: Session, batch: ImpositionBatch, approval_name: str, submission_id: str, now: datetime
) -> None:
    """The batch went to e-approval as ``submission_id`` (submitting again finds the same one)."""
    if batch.status not in (BATCH_PROPOSED, BATCH_SUBMITTING, BATCH_SUBMITTED):
        raise InvalidTransition(f"a batch that is {batch.status} cannot be submitted", field="status")
    batch.status = BATCH_SUBMITTED
    batch.approval_name = approval_name
    batch.submission_id = submission_id
    batch.submitted_at = batch.submitted_at or now
    session.flush()


def submission_withdrawn(session: Session, reference_id: str) -> None:
    """A person cancelled the batch's submission before it reached e-approval: the batch is ``proposed`` again (its
    refresh submits it anew)."""
    batch = batch_by_reference(session, reference_id)
    if batch is not None and batch.status == BATCH_SUBMITTING:
        batch.status = BATCH_PROPOSED
        session.flush()


def apply_decision(
    session: Session, decision: Decision, cipher: PiiCipher, now: datetime, *, approval_name: str
) -> ImpositionBatch | None:
    """Apply an e-approval decision (as the service confirmed it) to its batch, all in the caller's one transaction.

    Approved: each case still eligible is imposed — its receivable adopted (no new one), the 부과 고지서 generated,
    the arrears clock started; a case paid, cancelled or voided since the proposal is skipped, never imposed.
    Rejected: the batch ends and its cases may be proposed again. Pending, another document type, or a batch already
    decided: nothing changes (callbacks are repeated). Returns the batch, or ``None`` when no batch has it.
    """
    if decision.document_type != IMPOSITION_BATCH_DOCUMENT:
        return None
    batch = session.scalar(
        select(ImpositionBatch)
        .where(ImpositionBatch.submission_id == decision.submission_id, ImpositionBatch.approval_name == approval_name)
        .with_for_update()
    )
    if batch is None:
        # decided before the worker recorded the submission (it died between the two): the reference id is ours
        batch = batch_by_reference(session, decision.reference_id)
        if batch is None or batch.status != BATCH_SUBMITTING:
            return None
        mark_submitted(session, batch, approval_name, decision.submission_id, now)
    if batch.reference_id != decision.reference_id:
        return None
    if batch.status != BATCH_SUBMITTED or decision.status == "pending":
        return batch
    batch.decided_by = decision.decided_by
    batch.decided_at = decision.decided_at
    batch.decision = decision.as_dict()
    approver = Actor(label=f"approval:{approval_name}:{decision.decided_by}"[:80])
    items = list(
        session.scalars(
            select(ImpositionItem)
            .where(ImpositionItem.batch_id == batch.id)
            .order_by(ImpositionItem.notice_id)
            .with_for_update()
        )
    )
    if decision.status == "rejected":
        batch.status = BATCH_REJECTED
        for item in items:
            item.outcome = ITEM_REJECTED
        session.flush()
        return batch
    book = rules.load_rulebook(session)
    today = seoul_date(now)
    imposed = skipped = 0
    for item in items:
        notice = session.scalar(select(Notice).where(Notice.id == item.notice_id).with_for_update())
        assert notice is not None
        case = case_of(session, notice, now)
        why = ineligibility(session, case, notice, today, book)
        receivable = notice_ops.receivable_of(session, notice.id)
        if why is None and (receivable is None or ledger.balance(session, receivable.id) <= 0):
            why = "nothing is owed"
        if why is not None:
            item.outcome, item.skip_reason = ITEM_SKIPPED, why[:200]
            skipped += 1
            continue
        assert receivable is not None
        _impose(session, case, notice, receivable, batch, cipher, now, approver, book)
        item.outcome = ITEM_IMPOSED
        imposed += 1
    batch.status = BATCH_APPLIED
    batch.applied_at = now
    batch.imposed_count, batch.skipped_count = imposed, skipped
    session.flush()
    return batch


def _impose(
    session: Session,
    case: FineCase,
    notice: Notice,
    receivable: ledger.Receivable,
    batch: ImpositionBatch,
    cipher: PiiCipher,
    now: datetime,
    actor: Actor,
    book: rules.RuleBook,
) -> None:
    today = seoul_date(now)
    due = rules.imposition_due_date(today, receivable.revenue_item, book)
    owed = ledger.balance(session, receivable.id)
    if receivable.payer_ref is None:
        receivable.payer_ref = payer_ref(case.party_hash)
    case.batch_id = batch.id
    case.imposed_on, case.due_date, case.due_rule = today, due.day, due.rule_key
    channel = next((d.channel for d in documents(session, case.notice_id) if d.kind == ADVANCE_NOTICE), MAIL)
    if channel == ELECTRONIC:
        case.imposition_received_on = today  # an electronic notice is received when sent
    first_overdue = due.day + timedelta(days=1)
    surcharge = book.row(SURCHARGE, first_overdue)
    monthly = book.row(MONTHLY_SURCHARGE, first_overdue)
    objection_days = book.row(OBJECTION_PERIOD, today)
    item = session.get(RevenueItem, receivable.revenue_item)
    party = party_of(case, notice, cipher)
    addressee_enc, addressee_masked = addressee(party, cipher, notice)
    if addressee_enc is None and notice.offender_enc is not None:
        addressee_enc, addressee_masked = notice.offender_enc, notice.offender_name_masked
    data = {
        "form": "과태료 부과 고지서 (질서위반행위규제법 §17, 시행령 §4)",
        "addressee": {"kind": case.party_kind, "name": case.party_name_masked or notice.offender_name_masked},  # ①
        "facts": facts(session, notice),  # ②
        "amount": owed,
        "revenue_item": {"code": receivable.revenue_item, "name": item.name if item else None},
        "authority": authority(session, notice.jurisdiction),  # ③
        "decision": {"batch_id": batch.id, "imposed_on": today.isoformat()},
        "payment": {  # ④
            "due_date": due.day.isoformat(),
            "rule": due.rule_key,
            "methods": ["전자납부번호 (인터넷·모바일·은행)", "가상계좌", "고지서 QR", "신용·체크카드"],
            "collector": "시금고 (지정 금융기관)",
        },
        "non_payment": {  # ⑤
            "surcharge": {"rate": str(surcharge.need_rate()), "rule": surcharge.key},
            "monthly_surcharge": {
                "rate": str(monthly.need_rate()),
                "months": monthly.need_months(),
                "rule": monthly.key,
            },
            "measures": ["체납처분 (재산 압류)", "관허사업 제한", "신용정보 제공", "감치", "자동차 번호판 영치"],
        },
        "objection": {  # ⑥
            "period_days": objection_days.need_days(),
            "rule": objection_days.key,
            # known now only when the notice is received as it is sent (electronic); else from the delivery record
            "deadline": rules.objection_deadline(today, book).day.isoformat() if channel == ELECTRONIC else None,
            "method": f"이 고지서를 받은 날부터 {objection_days.need_days()}일 이내에 서면으로 부과권자에게 이의를 "
            "제기할 수 있으며, 이의제기가 있으면 이 부과처분은 효력을 상실하고 법원의 과태료 재판으로 결정됩니다.",
        },
        "channel": channel,
    }
    session.add(
        FineDocument(
            notice_id=case.notice_id,
            kind=IMPOSITION_NOTICE,
            channel=channel,
            issued_on=today,
            deadline=due.day,
            addressee_enc=addressee_enc,
            addressee_masked=addressee_masked,
            data=data,
            created_at=now,
        )
    )
    transition(
        session,
        case,
        "impose",
        now,
        actor,
        None,
        {"batch_id": batch.id, "amount": owed, "due_date": due.day.isoformat(), "rule": due.rule_key},
    )
    start_arrears_clock(session, receivable.id, due.day, today)


# --- hooks into the arrears engine (models.arrears) ------------------------------------------------------------------


def start_arrears_clock(session: Session, receivable_id: int, due_date: date, on: date) -> None:
    """The imposed receivable's due-date clock starts (체납 from the day after ``due_date``: 가산금, 중가산금)."""
    arrears.start_collection(session, receivable_id, due_date, on=on)


def suspend_arrears(session: Session, receivable_id: int, on: date, actor: Actor) -> None:
    """이의제기: the imposition loses its effect (법 §20②): nothing is collectible or accrues from ``on``."""
    arrears.suspend(session, receivable_id, on, actor, basis=f"이의제기 ({LAW} §20②)")


def resume_arrears(session: Session, receivable_id: int, on: date, actor: Actor, due_date: date | None) -> date | None:
    """Collectible again from ``on``; with ``due_date``, the clock restarts from it unless a surcharge was already
    decided on the old one (the arrears engine keeps it then). Returns the due date in force (``None``: unchanged)."""
    if due_date is not None:
        decided = session.scalar(
            select(func.count())
            .select_from(arrears.ArrearsPosting)
            .where(arrears.ArrearsPosting.receivable_id == receivable_id)
        )
        if decided:
            due_date = None
    arrears.resume(session, receivable_id, on, actor, due_date=due_date)
    return due_date


def stop_arrears(session: Session, receivable_id: int, on: date, actor: Actor) -> None:
    """The court dismissed the fine: collection ends for good."""
    arrears.stop_collection(session, receivable_id, on, actor)


@dataclass(frozen=True)
class CallbackOutcome:
    """What an e-approval callback did: ``applied``, ``rejected``, ``pending``, ``ignored`` or ``already_applied``."""

    result: str
    batch_id: int | None


def apply_callback(
    session: Session, decision: Decision, cipher: PiiCipher, now: datetime, *, approval_name: str
) -> CallbackOutcome:
    """``apply_decision`` for a callback, saying whether it applied the decision now, earlier, or not at all."""
    before = session.scalar(
        select(ImpositionBatch.status).where(ImpositionBatch.submission_id == decision.submission_id)
    ) or session.scalar(select(ImpositionBatch.status).where(ImpositionBatch.reference_id == decision.reference_id))
    batch = apply_decision(session, decision, cipher, now, approval_name=approval_name)
    if batch is None:
        return CallbackOutcome("ignored", None)
    if before not in (BATCH_SUBMITTED, BATCH_SUBMITTING):
        return CallbackOutcome("already_applied", batch.id)
    return CallbackOutcome(
        {BATCH_APPLIED: "applied", BATCH_REJECTED: "rejected"}.get(batch.status, "pending"), batch.id
    )
