"""fine cases after sync: stages, audited case events, documents (사전통지, 부과 고지서), imposition batches

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 20:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STAGES = (
    "synced",
    "advance_noticed",
    "opinion_submitted",
    "imposed",
    "objected",
    "referred",
    "decided",
    "closed",
    "paid",
    "cancelled",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    # 일괄 결정결의: created before fine_cases, which names the batch that imposed a case
    op.create_table(
        "imposition_batches",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("jurisdiction", sa.String(length=5), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("amount_total", sa.BigInteger(), nullable=False),
        sa.Column("reference_id", sa.String(length=80), nullable=False),
        sa.Column("approval_name", sa.String(length=30), nullable=True),
        sa.Column("submission_id", sa.String(length=80), nullable=True),
        sa.Column("proposed_by", sa.BigInteger(), nullable=True),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("imposed_count", sa.Integer(), nullable=True),
        sa.Column("skipped_count", sa.Integer(), nullable=True),
        sa.Column("decision", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            _in("status", ("proposed", "submitted", "applied", "rejected")), name=op.f("ck_imposition_batches_status")
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction"], ["jurisdictions.code"], name=op.f("fk_imposition_batches_jurisdiction_jurisdictions")
        ),
        sa.ForeignKeyConstraint(["proposed_by"], ["users.id"], name=op.f("fk_imposition_batches_proposed_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imposition_batches")),
        sa.UniqueConstraint("reference_id", name=op.f("uq_imposition_batches_reference_id")),
        sa.UniqueConstraint("submission_id", name=op.f("uq_imposition_batches_submission_id")),
    )
    op.create_table(
        "fine_cases",
        sa.Column("notice_id", sa.BigInteger(), nullable=False),
        sa.Column("jurisdiction", sa.String(length=5), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("party_kind", sa.String(length=10), nullable=True),
        sa.Column("party_enc", sa.LargeBinary(), nullable=True),
        sa.Column("party_name_masked", sa.String(length=40), nullable=True),
        sa.Column("party_hash", sa.LargeBinary(), nullable=True),
        sa.Column("owner_looked_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("advance_noticed_on", sa.Date(), nullable=True),
        sa.Column("opinion_deadline", sa.Date(), nullable=True),
        sa.Column("reduced_until", sa.Date(), nullable=True),
        sa.Column("fine_amount", sa.BigInteger(), nullable=True),
        sa.Column("self_payment_amount", sa.BigInteger(), nullable=True),
        sa.Column("reduction_rule", sa.String(length=200), nullable=True),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
        sa.Column("imposed_on", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("due_rule", sa.String(length=80), nullable=True),
        sa.Column("imposition_received_on", sa.Date(), nullable=True),
        sa.Column("objected_on", sa.Date(), nullable=True),
        sa.Column("referral_deadline", sa.Date(), nullable=True),
        sa.Column("referred_on", sa.Date(), nullable=True),
        sa.Column("court", sa.String(length=80), nullable=True),
        sa.Column("court_outcome", sa.String(length=12), nullable=True),
        sa.Column("court_amount", sa.BigInteger(), nullable=True),
        sa.Column("decided_on", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(_in("stage", STAGES), name=op.f("ck_fine_cases_stage")),
        sa.CheckConstraint("kind IN ('parking', 'person')", name=op.f("ck_fine_cases_kind")),
        sa.CheckConstraint(
            "court_outcome IS NULL OR court_outcome IN ('confirmed', 'reduced', 'dismissed')",
            name=op.f("ck_fine_cases_court_outcome"),
        ),
        sa.CheckConstraint(
            "(fine_amount IS NULL) = (self_payment_amount IS NULL) AND (fine_amount IS NULL OR "
            "(fine_amount > 0 AND self_payment_amount > 0 AND self_payment_amount <= fine_amount))",
            name=op.f("ck_fine_cases_reduced_amounts"),
        ),
        # an imposed case always knows its imposition day and due date
        sa.CheckConstraint(
            "stage NOT IN ('imposed', 'objected', 'referred', 'decided') OR (imposed_on IS NOT NULL AND "
            "due_date IS NOT NULL)",
            name=op.f("ck_fine_cases_imposed_dates"),
        ),
        sa.ForeignKeyConstraint(["notice_id"], ["notices.id"], name=op.f("fk_fine_cases_notice_id_notices")),
        sa.ForeignKeyConstraint(
            ["jurisdiction"], ["jurisdictions.code"], name=op.f("fk_fine_cases_jurisdiction_jurisdictions")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["imposition_batches.id"], name=op.f("fk_fine_cases_batch_id_imposition_batches")
        ),
        sa.PrimaryKeyConstraint("notice_id", name=op.f("pk_fine_cases")),
    )
    op.create_index(op.f("ix_fine_cases_jurisdiction"), "fine_cases", ["jurisdiction"], unique=False)
    op.create_index(op.f("ix_fine_cases_stage"), "fine_cases", ["stage"], unique=False)
    # all fines of one person or company (hardship refusal, the delinquent profile) by the keyed hash
    op.create_index(op.f("ix_fine_cases_party_hash"), "fine_cases", ["party_hash"], unique=False)
    op.create_table(
        "fine_case_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("notice_id", sa.BigInteger(), nullable=False),
        sa.Column("what", sa.String(length=30), nullable=False),
        sa.Column("from_stage", sa.String(length=20), nullable=True),
        sa.Column("to_stage", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_user_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_device_id", sa.String(length=36), nullable=True),
        sa.Column("actor_address", sa.String(length=64), nullable=True),
        sa.Column("actor_label", sa.String(length=80), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["fine_cases.notice_id"], name=op.f("fk_fine_case_events_notice_id_fine_cases")
        ),
        sa.ForeignKeyConstraint(["actor_user_id"], ["users.id"], name=op.f("fk_fine_case_events_actor_user_id_users")),
        sa.ForeignKeyConstraint(
            ["actor_device_id"], ["devices.id"], name=op.f("fk_fine_case_events_actor_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fine_case_events")),
    )
    op.create_index(op.f("ix_fine_case_events_notice_id"), "fine_case_events", ["notice_id"], unique=False)
    # the audit trail of a case is append-only, like the ledger (jingsu_refuse_change from revision 0001)
    op.execute(
        "CREATE TRIGGER fine_case_events_append_only BEFORE UPDATE OR DELETE ON fine_case_events "
        "FOR EACH ROW EXECUTE FUNCTION jingsu_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER fine_case_events_no_truncate BEFORE TRUNCATE ON fine_case_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION jingsu_refuse_change()"
    )
    op.create_table(
        "fine_documents",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("notice_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=True),
        sa.Column("addressee_enc", sa.LargeBinary(), nullable=True),
        sa.Column("addressee_masked", sa.String(length=40), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('advance_notice', 'imposition_notice')", name=op.f("ck_fine_documents_kind")),
        sa.CheckConstraint("channel IN ('mail', 'electronic', 'on_site')", name=op.f("ck_fine_documents_channel")),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["fine_cases.notice_id"], name=op.f("fk_fine_documents_notice_id_fine_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fine_documents")),
    )
    op.create_index(op.f("ix_fine_documents_notice_id"), "fine_documents", ["notice_id"], unique=False)
    op.create_table(
        "imposition_items",
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("notice_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("skip_reason", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('pending', 'imposed', 'skipped', 'rejected')", name=op.f("ck_imposition_items_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["imposition_batches.id"], name=op.f("fk_imposition_items_batch_id_imposition_batches")
        ),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["fine_cases.notice_id"], name=op.f("fk_imposition_items_notice_id_fine_cases")
        ),
        sa.PrimaryKeyConstraint("batch_id", "notice_id", name=op.f("pk_imposition_items")),
    )
    # a case waits in at most one undecided batch: two concurrent proposals cannot both take it
    op.create_index(
        "uq_imposition_items_pending_notice",
        "imposition_items",
        ["notice_id"],
        unique=True,
        postgresql_where=sa.text("outcome = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("uq_imposition_items_pending_notice", table_name="imposition_items")
    op.drop_table("imposition_items")
    op.drop_index(op.f("ix_fine_documents_notice_id"), table_name="fine_documents")
    op.drop_table("fine_documents")
    op.execute("DROP TRIGGER IF EXISTS fine_case_events_append_only ON fine_case_events")
    op.execute("DROP TRIGGER IF EXISTS fine_case_events_no_truncate ON fine_case_events")
    op.drop_index(op.f("ix_fine_case_events_notice_id"), table_name="fine_case_events")
    op.drop_table("fine_case_events")
    op.drop_index(op.f("ix_fine_cases_party_hash"), table_name="fine_cases")
    op.drop_index(op.f("ix_fine_cases_stage"), table_name="fine_cases")
    op.drop_index(op.f("ix_fine_cases_jurisdiction"), table_name="fine_cases")
    op.drop_table("fine_cases")
    op.drop_table("imposition_batches")
