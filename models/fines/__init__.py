"""The fine's legal life after sync (질서위반행위규제법; DESIGN.md §3 steps 2–4; numbers in LAW.md §1).

A **fine case** (``fine_cases``, one per notice) carries the legal stage; ``Notice.status`` stays the device-facing
status and changes only through ``models.notices`` operations (``cancel_notice``, ``mark_paid``). Stages:

    synced ──advance_notice──▶ advance_noticed ──submit_opinion──▶ opinion_submitted
                                  │   ▲                               │ reject_opinion / accept_opinion (reduce)
                                  │   └───────────────────────────────┘ accept_opinion (cancel) ──▶ cancelled
                                  └─impose (일괄 결정결의 approved)──▶ imposed ──object──▶ objected ──refer──▶ referred
                                                                        ▲           │withdraw_objection    │
                                                                        └───────────┘          decide ──┤
                                                                                   decided ◀──────────────┤
                                                                                   closed  ◀── dismissed ─┘
    paid: from any open stage when the balance reaches 0 (payments hook ``note_paid``)
    cancelled: 직권취소 before imposition, an accepted opinion, or the notice voided/cancelled elsewhere

- A **parking** case starts ``synced``: the owner is unknown until the vehicle registry is asked
  (``request_owner_lookups`` queues the 차적조회 in the outbox; the worker asks; ``apply_owner_lookup`` applies the
  answer); then the formal 사전통지 (시행령 §3①) is generated for the owner and the case is ``advance_noticed``.
  A **person** case starts ``advance_noticed``: the printed slip *is* the 사전통지. Case rows are created lazily
  (``ensure_cases``), so the sync hot path writes nothing here.
- The 자진납부 price holds until the later of the slip's printed deadline and the 사전통지's own (``reduced_until``);
  ``self_payment_terms`` tells ``models.payments`` what a reduced payment must be and until when.
- Every transition is checked against ``TRANSITIONS`` (``InvalidTransition`` otherwise), bumps ``version`` and
  appends a ``fine_case_events`` row (who, when, why; append-only in the database).
- Personal data (the owner's name, RRN or business number, address) is stored encrypted; only masked names and the
  keyed hash (``party_hash``, also the receivable's ``payer_ref`` in hex) are in clear. Event details never carry
  plaintext personal data.

    tables      stages, ``TRANSITIONS``, errors; fine_cases, fine_case_events, fine_documents, imposition_batches,
                imposition_items (migration 0007)
    ports       what the operations need of the registry and e-approval adapters (Protocols)
    cases       opening a case, audited transitions, amounts, the 자진납부 terms (the payments hook)
    advance     차적조회 (asked through the outbox, its answer applied) and the 사전통지
    reductions  opinions, hardship reductions, 직권취소
    imposition  일괄 결정결의: propose, submit through the outbox, apply an approval; the hooks into ``models.arrears``
    court       imposition receipt, 이의제기 and its withdrawal, court referral, the court's decision
    queries     reads other layers use: documents, batches and their items, overdue referrals, a notice's timeline
    views       the case as the back office reads it (``case_details``), a notice's timeline with its stage, a batch
                with its lines, overdue referrals with days late: built on ``queries`` and the operations' helpers

``tables`` and ``ports`` import no other module here; ``queries`` only ``tables``; ``cases`` builds on them, the
other operation modules on ``cases`` (``imposition`` on ``advance``, ``court`` on ``imposition``); ``views`` on all.

Importing this package registers the tables; it does no other work.
"""

from models.fines.advance import (  # noqa: F401
    LookupRequests,
    advance_notice_data,
    apply_owner_lookup,
    owner_lookup_failed,
    owner_lookup_withdrawn,
    party_identifier_masked,
    party_of,
    request_owner_lookups,
    send_advance_notice,
    set_owner,
)
from models.fines.cases import (  # noqa: F401
    SelfPaymentTerms,
    StaleCase,
    case_of,
    check_case_version,
    ensure_cases,
    find_case,
    fine_amount,
    note_paid,
    note_unpaid,
    principal_amount,
    rrn_checksum_ok,
    self_payment_terms,
)
from models.fines.court import (  # noqa: F401
    CourtDecision,
    file_objection,
    objection_deadline,
    record_court_decision,
    record_imposition_receipt,
    refer_to_court,
    withdraw_objection,
)
from models.fines.imposition import (  # noqa: F401
    BatchDocument,
    CallbackOutcome,
    apply_callback,
    apply_decision,
    batch_by_reference,
    batch_document,
    eligible_cases,
    ineligibility,
    mark_submitted,
    propose_imposition,
    request_submission,
    submission_withdrawn,
)
from models.fines.ports import (  # noqa: F401
    Decision,
    RegistryAddress,
    RegistryOwner,
)
from models.fines.queries import (  # noqa: F401
    TimelineEntry,
    batch_items,
    documents,
    get_batch,
    overdue_referrals,
    timeline,
)
from models.fines.reductions import (  # noqa: F401
    ClaimHardship,
    DecideOpinion,
    SubmitOpinion,
    cancel_case,
    claim_hardship,
    decide_opinion,
    other_unpaid,
    submit_opinion,
)
from models.fines.tables import (  # noqa: F401
    ADVANCE_NOTICE,
    ADVANCE_NOTICED,
    BATCH_APPLIED,
    BATCH_PROPOSED,
    BATCH_REJECTED,
    BATCH_STATUSES,
    BATCH_SUBMITTED,
    BATCH_SUBMITTING,
    BEFORE_IMPOSITION,
    CANCELLED,
    CHANNELS,
    CLOSED,
    COURT_CONFIRMED,
    COURT_DISMISSED,
    COURT_OUTCOMES,
    COURT_REDUCED,
    DECIDED,
    ELECTRONIC,
    ENDED,
    IMPOSED,
    IMPOSITION_BATCH_DOCUMENT,
    IMPOSITION_NOTICE,
    ITEM_IMPOSED,
    ITEM_PENDING,
    ITEM_REJECTED,
    ITEM_SKIPPED,
    LAW,
    MAIL,
    OBJECTED,
    ON_SITE,
    OPEN_STAGES,
    OPINION_BASIS,
    OPINION_CANCEL,
    OPINION_DECISIONS,
    OPINION_REDUCE,
    OPINION_REJECT,
    OPINION_SUBMITTED,
    PAID,
    REFERRED,
    STAGES,
    SYNCED,
    TRANSITIONS,
    FineCase,
    FineCaseEvent,
    FineDocument,
    ImpositionBatch,
    ImpositionItem,
    NothingToImpose,
    ObjectionLate,
)
from models.fines.views import (  # noqa: F401
    BatchDetails,
    BatchLine,
    CaseDetails,
    CaseParty,
    NoticeTimeline,
    OverdueReferral,
    batch_details,
    case_details,
    notice_timeline,
    overdue_referral_list,
)
