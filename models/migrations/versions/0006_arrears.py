"""arrears (체납): business date, due-date clock, surcharge postings, collection holds, plate-seizure hotlist

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 19:50:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the business date (영업일), kept apart from the wall clock: one row, advanced by hand or by the worker
    op.create_table(
        "business_calendar",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("advanced_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("advanced_by_user_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_business_calendar_single_row")),
        sa.ForeignKeyConstraint(
            ["advanced_by_user_id"], ["users.id"], name=op.f("fk_business_calendar_advanced_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_business_calendar")),
    )
    # a receivable's due-date clock: once imposed with a due date it is subject to arrears (models.arrears)
    op.create_table(
        "receivable_terms",
        sa.Column("receivable_id", sa.BigInteger(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("overdue_since", sa.Date(), nullable=True),
        # the revenue item's surcharge rule type (catalog.SURCHARGE_RULES) and, for fine_act, the rule rows it follows
        sa.Column("surcharge_rule", sa.String(length=20), nullable=False),
        sa.Column("surcharge_rule_key", sa.String(length=80), nullable=True),
        sa.Column("monthly_rule_key", sa.String(length=80), nullable=True),
        sa.Column("surcharge_done", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("next_month_no", sa.Integer(), server_default="1", nullable=False),
        sa.Column("next_month_on", sa.Date(), nullable=True),
        sa.Column("caught_up_to", sa.Date(), nullable=True),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "state IN ('current', 'overdue', 'suspended', 'stopped')", name=op.f("ck_receivable_terms_state")
        ),
        sa.CheckConstraint("next_month_no >= 1", name=op.f("ck_receivable_terms_month_no")),
        sa.ForeignKeyConstraint(
            ["receivable_id"], ["receivables.id"], name=op.f("fk_receivable_terms_receivable_id_receivables")
        ),
        sa.PrimaryKeyConstraint("receivable_id", name=op.f("pk_receivable_terms")),
    )
    # the month step selects the clocks with a month due; the daily step those not yet marked or surcharged
    op.create_index("ix_receivable_terms_state_next_month_on", "receivable_terms", ["state", "next_month_on"])
    op.create_index("ix_receivable_terms_state_due_date", "receivable_terms", ["state", "due_date"])

    # one row per surcharge decision: 가산금 (month 0) or 중가산금 month n, posted or skipped (under a hold, nothing
    # unpaid); the unique key is what makes the steps idempotent per (receivable, month)
    op.create_table(
        "arrears_postings",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("receivable_id", sa.BigInteger(), nullable=False),
        sa.Column("head", sa.String(length=20), nullable=False),
        sa.Column("month_no", sa.Integer(), nullable=False),
        sa.Column("accrues_on", sa.Date(), nullable=False),
        sa.Column("base", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("skipped", sa.String(length=40), nullable=True),
        # no foreign key: ledger entries are never deleted, and one would make TRUNCATE ledger_entries fail on the
        # reference before the append-only trigger refuses it with its own message
        sa.Column("ledger_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("rule_key", sa.String(length=80), nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=True),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("amount >= 0 AND base >= 0", name=op.f("ck_arrears_postings_not_negative")),
        sa.CheckConstraint(
            "(head = 'surcharge' AND month_no = 0) OR (head = 'monthly_surcharge' AND month_no >= 1)",
            name=op.f("ck_arrears_postings_head_month"),
        ),
        sa.CheckConstraint(
            "(skipped IS NULL) = (ledger_entry_id IS NOT NULL) AND (skipped IS NULL) = (amount > 0)",
            name=op.f("ck_arrears_postings_posted_or_skipped"),
        ),
        sa.ForeignKeyConstraint(
            ["receivable_id"], ["receivables.id"], name=op.f("fk_arrears_postings_receivable_id_receivables")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arrears_postings")),
        sa.UniqueConstraint("receivable_id", "head", "month_no", name="uq_arrears_postings_receivable_month"),
    )
    # a posting is a decision of law, like the ledger entry it made: never updated or deleted
    op.execute(
        "CREATE TRIGGER arrears_postings_append_only BEFORE UPDATE OR DELETE ON arrears_postings "
        "FOR EACH ROW EXECUTE FUNCTION jingsu_refuse_change()"
    )

    # 분납 / 징수유예 / 이의제기: while a hold is in force no 가산금 or 중가산금 accrues and no enforcement is taken
    op.create_table(
        "collection_holds",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("receivable_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.Column("end_reason", sa.String(length=12), nullable=True),
        sa.Column("basis", sa.String(length=200), nullable=True),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("ended_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('installment', 'deferral', 'objection')", name=op.f("ck_collection_holds_kind")),
        sa.CheckConstraint(
            "end_reason IS NULL OR end_reason IN ('default', 'cancelled', 'resumed', 'stopped', 'paid')",
            name=op.f("ck_collection_holds_end_reason"),
        ),
        sa.CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name=op.f("ck_collection_holds_range")),
        sa.CheckConstraint(
            "(ended_on IS NULL) = (end_reason IS NULL) AND (ended_on IS NULL OR ended_on >= starts_on)",
            name=op.f("ck_collection_holds_ended"),
        ),
        sa.ForeignKeyConstraint(
            ["receivable_id"], ["receivables.id"], name=op.f("fk_collection_holds_receivable_id_receivables")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"], ["users.id"], name=op.f("fk_collection_holds_created_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["ended_by_user_id"], ["users.id"], name=op.f("fk_collection_holds_ended_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_holds")),
    )
    op.create_index(op.f("ix_collection_holds_receivable_id"), "collection_holds", ["receivable_id"], unique=False)
    op.create_table(
        "hold_installments",
        sa.Column("hold_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount > 0 AND seq >= 1", name=op.f("ck_hold_installments_positive")),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["collection_holds.id"], name=op.f("fk_hold_installments_hold_id_collection_holds")
        ),
        sa.PrimaryKeyConstraint("hold_id", "seq", name=op.f("pk_hold_installments")),
    )

    # 번호판 영치 hotlist as last pushed to the devices of a jurisdiction (the change feed carries the changes)
    op.create_table(
        "hotlist_entries",
        sa.Column("jurisdiction", sa.String(length=5), nullable=False),
        sa.Column("plate", sa.String(length=20), nullable=False),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("receivables", sa.Integer(), nullable=False),
        sa.Column("oldest_due_date", sa.Date(), nullable=False),
        sa.Column("rule_key", sa.String(length=80), nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=True),
        sa.Column("listed_on", sa.Date(), nullable=False),
        sa.Column("refreshed_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["jurisdiction"], ["jurisdictions.code"], name=op.f("fk_hotlist_entries_jurisdiction_jurisdictions")
        ),
        sa.PrimaryKeyConstraint("jurisdiction", "plate", name=op.f("pk_hotlist_entries")),
    )


def downgrade() -> None:
    op.drop_table("hotlist_entries")
    op.drop_table("hold_installments")
    op.drop_index(op.f("ix_collection_holds_receivable_id"), table_name="collection_holds")
    op.drop_table("collection_holds")
    op.execute("DROP TRIGGER IF EXISTS arrears_postings_append_only ON arrears_postings")
    op.drop_table("arrears_postings")
    op.drop_index("ix_receivable_terms_state_due_date", table_name="receivable_terms")
    op.drop_index("ix_receivable_terms_state_next_month_on", table_name="receivable_terms")
    op.drop_table("receivable_terms")
    op.drop_table("business_calendar")
