"""차적조회 and 사전통지 (법 §16, 시행령 §3①): the owner of a parking notice from the vehicle registry, stored
encrypted, and the advance notice with every item the decree requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import notices as notice_ops
from models import outbox, rules
from models.base import Actor
from models.catalog import ViolationCode
from models.crypto import PiiCipher
from models.errors import InvalidInput, InvalidTransition
from models.fines.cases import act, ensure_cases, fine_amount, payer_ref, rrn_checksum_ok, schedule_of, transition
from models.fines.ports import RegistryOwner
from models.fines.queries import documents
from models.fines.tables import ADVANCE_NOTICE, CHANNELS, MAIL, ON_SITE, SYNCED, FineCase, FineDocument
from models.jurisdictions import Jurisdiction
from models.notices import Notice
from models.rules.rows import HARDSHIP_REDUCTION
from protocol import seoul_date
from protocol.masking import mask_name, mask_rrn

# --- 2. owner lookup and the 사전통지 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LookupRequests:
    """What ``request_owner_lookups`` queued: the notice numbers whose owner the registry will be asked for."""

    queued: list[str]

    @property
    def count(self) -> int:
        return len(self.queued)


def request_owner_lookups(
    session: Session,
    now: datetime,
    *,
    jurisdiction: str | None = None,
    channel: str = MAIL,
    limit: int = 200,
    actor: Actor | None = None,
) -> LookupRequests:
    """차적조회, asked: for synced parking cases without an owner (notices ``issued``: past review) and not asked yet,
    queue one registry lookup each in the outbox (``models.outbox``, operation ``registry.lookup``: the plate and the
    violation's day) and mark the case asked (``owner_lookup_requested``), all in the caller's transaction. The worker
    asks the registry; ``apply_owner_lookup`` applies its answer.

    The idempotency key names the notice and how often its owner was asked (a lookup cancelled by a person may be
    asked again under a new key). ``actor`` (the clerk who asked; default: the registry itself) signs what the answer
    does."""
    ensure_cases(session, now, jurisdiction=jurisdiction)
    stmt = (
        select(FineCase, Notice)
        .join(Notice, Notice.id == FineCase.notice_id)
        .where(
            FineCase.kind == "parking",
            FineCase.stage == SYNCED,
            FineCase.party_enc.is_(None),
            FineCase.owner_looked_up_at.is_(None),
            FineCase.owner_lookup_requested_at.is_(None),
            Notice.status == notice_ops.ISSUED,
        )
        .order_by(FineCase.notice_id)
        .limit(limit)
        .with_for_update(of=FineCase, skip_locked=True)
    )
    if jurisdiction is not None:
        stmt = stmt.where(FineCase.jurisdiction == jurisdiction)
    queued: list[str] = []
    for case, notice in session.execute(stmt).all():
        assert notice.vehicle_plate is not None
        case.owner_lookups += 1
        case.owner_lookup_requested_at = now
        key = f"registry.lookup:{notice.notice_no}:{case.owner_lookups}"
        payload = {
            "notice_no": notice.notice_no,
            "plate": notice.vehicle_plate,
            "on": seoul_date(notice.observed_at).isoformat(),
            "channel": channel,
            "actor": {"user_id": actor.user_id, "label": actor.label} if actor is not None else None,
        }
        outbox.enqueue(session, outbox.REGISTRY_LOOKUP, key, payload, now, jurisdiction=case.jurisdiction)
        act(session, case, "owner_lookup_requested", now, actor or Actor(label="system:lookup-owners"), None,
            {"channel": channel, "key": key})  # fmt: skip
        queued.append(notice.notice_no)
    return LookupRequests(queued)


def _awaiting_lookup(session: Session, notice_no: str) -> tuple[FineCase, Notice] | None:
    """The case whose owner was asked for, locked (notice first, as payments lock it), or ``None``."""
    notice = session.scalar(select(Notice).where(Notice.notice_no == notice_no).with_for_update())
    if notice is None:
        return None
    case = session.scalar(select(FineCase).where(FineCase.notice_id == notice.id).with_for_update())
    return (case, notice) if case is not None else None


def apply_owner_lookup(
    session: Session,
    notice_no: str,
    owner: RegistryOwner | None,
    cipher: PiiCipher,
    now: datetime,
    *,
    actor: Actor,
    registry_name: str,
    channel: str = MAIL,
) -> str:
    """The registry's answer about a notice's plate, applied: the owner stored encrypted (masked name, keyed hash
    of the RRN or business number), the receivable's payer set and the 사전통지 sent (``send_advance_notice``):
    ``noticed``. No owner that day: the case stays ``synced`` with an ``owner_not_found`` event for a clerk:
    ``not_registered``. A case no longer waiting for its owner (paid, voided or cancelled meanwhile, or answered
    already) is left alone: ``stale``; so is one whose notice is not ``issued`` just now (back in review), but that
    one is asked again by the next 차적조회."""
    found = _awaiting_lookup(session, notice_no)
    if found is None:
        return "stale"
    case, notice = found
    if case.stage != SYNCED or case.party_enc is not None or case.owner_looked_up_at is not None:
        return "stale"
    if notice.status != notice_ops.ISSUED:
        case.owner_lookup_requested_at = None  # under review meanwhile: asked again once it is issued again
        return "stale"
    case.owner_looked_up_at = now
    if owner is None:
        act(session, case, "owner_not_found", now, actor, None, {"registry": registry_name})
        return "not_registered"
    set_owner(session, case, notice, owner, cipher, now, actor)
    send_advance_notice(session, case, notice, cipher, now, actor, channel=channel)
    return "noticed"


def owner_lookup_failed(session: Session, notice_no: str, error: str, now: datetime) -> None:
    """The lookup was given up (the registry refused it, or every attempt failed): an ``owner_lookup_failed`` event
    tells a clerk; the case stays asked until the delivery is retried or cancelled (``/api/v1/outbox``)."""
    found = _awaiting_lookup(session, notice_no)
    if found is not None:
        act(session, found[0], "owner_lookup_failed", now, Actor(label="system:outbox"), error[:500])


def owner_lookup_withdrawn(session: Session, notice_no: str, now: datetime, actor: Actor) -> None:
    """A person cancelled the lookup: the case is no longer asked, so the next 차적조회 asks again (a new key)."""
    found = _awaiting_lookup(session, notice_no)
    if found is not None and found[0].owner_lookup_requested_at is not None and found[0].owner_looked_up_at is None:
        found[0].owner_lookup_requested_at = None
        act(session, found[0], "owner_lookup_cancelled", now, actor)


def set_owner(
    session: Session,
    case: FineCase,
    notice: Notice,
    owner: RegistryOwner,
    cipher: PiiCipher,
    now: datetime,
    actor: Actor,
) -> None:
    """Store the registered owner encrypted, with the masked name and the keyed hash; the receivable's payer."""
    identifier = owner.rrn or owner.business_no or ""
    party = {
        "kind": owner.kind,
        "name": owner.name,
        "rrn": owner.rrn,
        "business_no": owner.business_no,
        "address": {
            "postal_code": owner.address.postal_code,
            "line1": owner.address.line1,
            "line2": owner.address.line2,
        },
    }
    case.party_kind = owner.kind
    case.party_enc = cipher.encrypt_json(party, context=notice.notice_no.encode())
    case.party_name_masked = mask_name(owner.name)
    case.party_hash = cipher.lookup_hash(identifier) if identifier else None
    receivable = notice_ops.receivable_of(session, notice.id)
    if receivable is not None:
        receivable.payer_ref = payer_ref(case.party_hash)
    detail: dict[str, Any] = {"kind": owner.kind, "name": case.party_name_masked}
    if owner.rrn and not rrn_checksum_ok(owner.rrn):
        detail["rrn_checksum"] = "fails (kept: numbers since 2020-10-05 have none)"
    if owner.vehicle_type != notice.vehicle_type:
        detail["vehicle_type_registered"] = owner.vehicle_type
    act(session, case, "owner_found", now, actor, None, detail)


def party_of(case: FineCase, notice: Notice, cipher: PiiCipher) -> dict[str, Any] | None:
    """The party in clear (name, RRN or business number, address): for the documents' addressee only."""
    if case.party_enc is None:
        return None
    data: dict[str, Any] = cipher.decrypt_json(case.party_enc, context=notice.notice_no.encode())
    return data


def party_identifier_masked(case: FineCase, notice: Notice, cipher: PiiCipher) -> str | None:
    """The party's 주민등록번호 (900101-1******) or 사업자등록번호 (123-45-*****), masked for screens."""
    party = party_of(case, notice, cipher)
    if party is None:
        return None
    if party.get("rrn"):
        return mask_rrn(str(party["rrn"]))
    business_no = str(party.get("business_no") or "")
    return business_no[:-5] + "*****" if len(business_no) > 5 else None


def authority(session: Session, jurisdiction: str) -> dict[str, Any]:
    row = session.get(Jurisdiction, jurisdiction)
    assert row is not None
    return {"name": f"{row.name}청장" if row.level != "city" else f"{row.name}장", "address": row.address}


def facts(session: Session, notice: Notice) -> dict[str, Any]:
    code = session.get(ViolationCode, notice.violation_code)
    assert code is not None
    facts: dict[str, Any] = {
        "notice_no": notice.notice_no,
        "violation_code": code.code,
        "violation": code.name,
        "law": code.legal_basis,
        "observed_at": notice.observed_at.isoformat(),
        "place": notice.place_address,
    }
    if notice.vehicle_plate:
        facts["vehicle"] = {"plate": notice.vehicle_plate, "type": notice.vehicle_type}
    return facts


def addressee(party: dict[str, Any] | None, cipher: PiiCipher, notice: Notice) -> tuple[bytes | None, str | None]:
    if party is None:
        return None, None
    addressee = {"name": party.get("name"), "address": party.get("address")}
    return cipher.encrypt_json(addressee, context=notice.notice_no.encode()), mask_name(str(party.get("name") or ""))


def send_advance_notice(
    session: Session,
    case: FineCase,
    notice: Notice,
    cipher: PiiCipher,
    now: datetime,
    actor: Actor,
    *,
    channel: str = MAIL,
) -> FineDocument:
    """사전통지 (법 §16, 시행령 §3①) to the owner: the document's data with every required item, its deadline
    (today + the schedule's opinion days, at least the statutory minimum), and the case ``advance_noticed``.

    The reduced price then holds until the later of the slip's deadline and this one (DESIGN.md §3.2).
    """
    if channel not in CHANNELS:
        raise InvalidInput(f"channel must be one of {', '.join(CHANNELS)}", field="channel")
    if case.party_enc is None:
        raise InvalidTransition("the owner is not known yet: look it up first", field="stage")
    book = rules.load_rulebook(session)
    today = seoul_date(now)
    schedule = schedule_of(session, notice)
    sufficient = rules.opinion_period_sufficient(schedule.opinion_days, today, book)
    if not sufficient:
        raise InvalidInput(sufficient.reason, field="opinion_days", rule=sufficient.rule_key)
    deadline = rules.days_end(today, schedule.opinion_days)
    reduced_until = max(deadline, notice.opinion_deadline)
    party = party_of(case, notice, cipher)
    amount = fine_amount(case, notice)
    reduced = case.self_payment_amount if case.self_payment_amount is not None else notice.reduced_amount
    hardship_rows = [r for r in book.scoped(HARDSHIP_REDUCTION, today)]
    data = {
        "form": "사전통지서 (질서위반행위규제법 §16, 시행령 §3①)",
        "addressee": {"kind": case.party_kind, "name": case.party_name_masked},  # ① in clear: addressee_enc
        "facts": facts(session, notice),  # ②
        "amount": amount,
        "law": facts(session, notice)["law"],
        "authority": authority(session, notice.jurisdiction),  # ③
        "opinion": {  # ④
            "right": "의견을 제출할 수 있습니다 (서면·구두·전자). 기한까지 제출하지 않으면 의견이 없는 것으로 봅니다.",
            "deadline": deadline.isoformat(),
            "rule": sufficient.rule_key,
        },
        "self_payment": {  # ⑤
            "reduced_amount": reduced,
            "until": reduced_until.isoformat(),
            "rule": notice.schedule_key,
            # ⑤의2 (since 2021-02-05)
            "ends_case": "감경된 금액을 납부하면 과태료 부과 및 징수절차가 종료되며, "
            "의견제출 및 이의제기를 할 수 없습니다.",
        },
        "hardship": {  # ⑥
            "available": True,
            "text": "시행령 §2의2의 사유(기초생활수급자 등)가 있으면 의견제출기한까지 신청하여 감경받을 수 있습니다. "
            "다른 과태료를 체납하고 있으면 감경되지 않습니다.",
            "grounds": sorted({r.scope for r in hardship_rows}),
            "rules": sorted(r.key for r in hardship_rows),
        },
        "channel": channel,
    }
    addressee_enc, addressee_masked = addressee(party, cipher, notice)
    document = FineDocument(
        notice_id=case.notice_id,
        kind=ADVANCE_NOTICE,
        channel=channel,
        issued_on=today,
        deadline=deadline,
        addressee_enc=addressee_enc,
        addressee_masked=addressee_masked,
        data=data,
        created_at=now,
    )
    session.add(document)
    case.advance_noticed_on = today
    case.opinion_deadline = deadline
    case.reduced_until = reduced_until
    transition(
        session,
        case,
        "advance_notice",
        now,
        actor,
        None,
        {"channel": channel, "deadline": deadline.isoformat(), "reduced_until": reduced_until.isoformat()},
    )
    return document


def advance_notice_data(session: Session, case: FineCase, notice: Notice) -> dict[str, Any]:
    """The 사전통지's data: the stored document (parking) or, for a person notice, the printed slip's terms."""
    for document in documents(session, case.notice_id):
        if document.kind == ADVANCE_NOTICE:
            return document.data
    return {
        "form": "현장 고지서 (사전통지 겸용)",
        "addressee": {"kind": "person", "name": notice.offender_name_masked},
        "facts": facts(session, notice),
        "amount": notice.amount,
        "authority": authority(session, notice.jurisdiction),
        "opinion": {"deadline": notice.opinion_deadline.isoformat()},
        "self_payment": {"reduced_amount": notice.reduced_amount, "until": notice.opinion_deadline.isoformat()},
        "channel": ON_SITE,
    }
