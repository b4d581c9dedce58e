"""체납 (arrears): the business date, the due-date clock of imposed receivables, 가산금 and 중가산금 posting, 분납 and
징수유예 holds, and the 번호판 영치 hotlist (DESIGN.md §3 step 5–6, §4; LAW.md §1.2, §1.4, §1.5).

Each module imports only those above it in this list (no cycle):

    tables    business_calendar, receivable_terms, arrears_postings, collection_holds, hold_installments,
              hotlist_entries (migration 0006) and their state values
    clock     the business date, the due-date clock, and ``catch_up``: how every 가산금 and 중가산금 is decided
    batch     the month step for a chunk of plain receivables at once (decides what ``catch_up`` would)
    queries   reads other layers use: holds, balance per head, the arrears view, a district's hotlist
    hotlist   ``refresh_hotlist``: plates pushed to (and removed from) the PDAs of a district via the change feed
    engine    operations: start/suspend/resume/stop hooks for imposition and objection, the daily and month steps
              and the business date they run for, payments that catch up first, relief holds

Importing this package registers the tables; it does no other work.
"""

from models.arrears.clock import (
    StepReport,
    business_date,
    catch_up,
    catch_up_receivable,
    scoped_receivable,
)
from models.arrears.engine import (
    GrantRelief,
    Installment,
    advance_business_date,
    advance_to_today,
    after_payment,
    check_business_date,
    end_relief,
    grant_relief,
    move_business_date,
    record_payment,
    resume,
    reverse_payment,
    run_daily_step,
    run_month_step,
    start_collection,
    stop_collection,
    suspend,
)
from models.arrears.hotlist import HotlistReport, jurisdictions_to_refresh, plates_to_refresh, refresh_hotlist
from models.arrears.queries import (
    ArrearsDetails,
    ArrearsEntry,
    ArrearsView,
    HeadBalance,
    HoldDetails,
    arrears_details,
    arrears_view,
    heads_of,
    hold_details,
    hold_of,
    holds_of,
    jurisdiction_exists,
    listed,
)
from models.arrears.tables import (
    CANCELLED,
    CURRENT,
    DEFAULTED,
    DEFERRAL,
    INSTALLMENT,
    OBJECTION,
    OVERDUE,
    STOPPED,
    SUSPENDED,
    ArrearsPosting,
    BusinessCalendar,
    CollectionHold,
    HoldInstallment,
    HotlistEntry,
    ReceivableTerms,
)

__all__ = [
    "CANCELLED",
    "CURRENT",
    "DEFAULTED",
    "DEFERRAL",
    "INSTALLMENT",
    "OBJECTION",
    "OVERDUE",
    "STOPPED",
    "SUSPENDED",
    "ArrearsDetails",
    "ArrearsEntry",
    "ArrearsPosting",
    "ArrearsView",
    "BusinessCalendar",
    "CollectionHold",
    "GrantRelief",
    "HeadBalance",
    "HoldDetails",
    "HoldInstallment",
    "HotlistEntry",
    "HotlistReport",
    "Installment",
    "ReceivableTerms",
    "StepReport",
    "advance_business_date",
    "advance_to_today",
    "move_business_date",
    "check_business_date",
    "plates_to_refresh",
    "after_payment",
    "arrears_details",
    "arrears_view",
    "business_date",
    "catch_up",
    "catch_up_receivable",
    "end_relief",
    "grant_relief",
    "heads_of",
    "hold_details",
    "hold_of",
    "holds_of",
    "listed",
    "jurisdiction_exists",
    "jurisdictions_to_refresh",
    "record_payment",
    "refresh_hotlist",
    "resume",
    "reverse_payment",
    "run_daily_step",
    "run_month_step",
    "scoped_receivable",
    "start_collection",
    "stop_collection",
    "suspend",
]
