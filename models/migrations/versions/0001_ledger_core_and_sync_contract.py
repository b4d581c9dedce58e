"""ledger core and sync contract

Revision ID: 0001
Revises:
Create Date: 2026-11-25 16:42:33.398955
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # btree_gist lets one exclusion constraint mix equality (code, vehicle type, zone) with date-range overlap
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "change_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "txid", sa.BigInteger(), server_default=sa.text("(pg_current_xact_id()::text::bigint)"), nullable=False
        ),
        sa.Column("scope", sa.String(length=50), nullable=False),
        sa.Column("entity", sa.String(length=30), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("op", sa.String(length=10), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_log")),
    )
    op.create_index("ix_change_log_scope_txid_id", "change_log", ["scope", "txid", "id"], unique=False)
    op.create_table(
        "jurisdictions",
        sa.Column("code", sa.String(length=5), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("parent_code", sa.String(length=5), nullable=True),
        sa.Column("address", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_code"], ["jurisdictions.code"], name=op.f("fk_jurisdictions_parent_code_jurisdictions")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_jurisdictions")),
    )
    op.create_table(
        "number_series",
        sa.Column("jurisdiction", sa.String(length=5), nullable=False),
        sa.Column("year2", sa.String(length=2), nullable=False),
        sa.Column("next_serial", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("jurisdiction", "year2", name=op.f("pk_number_series")),
    )
    op.create_table(
        "revenue_items",
        sa.Column("code", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("surcharge_rule", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_revenue_items")),
    )
    op.create_table(
        "server_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.String(length=40), nullable=False),
        sa.Column("feed_floor_id", sa.BigInteger(), nullable=False),
        sa.Column("epoch_changed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_server_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_state")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("login", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("jurisdiction", sa.String(length=5), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("failed_window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["jurisdiction"], ["jurisdictions.code"], name=op.f("fk_users_jurisdiction_jurisdictions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("login", name=op.f("uq_users_login")),
    )
    op.create_table(
        "violation_codes",
        sa.Column("code", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("revenue_item", sa.String(length=10), nullable=False),
        sa.Column("legal_basis", sa.String(length=120), nullable=True),
        sa.Column("dedupe_window_min", sa.Integer(), nullable=False),
        sa.Column("dedupe_distance_m", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["revenue_item"], ["revenue_items.code"], name=op.f("fk_violation_codes_revenue_item_revenue_items")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_violation_codes")),
    )
    op.create_table(
        "zones",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("jurisdiction", sa.String(length=5), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["jurisdiction"], ["jurisdictions.code"], name=op.f("fk_zones_jurisdiction_jurisdictions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_zones")),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("jurisdiction", sa.String(length=5), nullable=False),
        sa.Column("label", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("secret_hash", sa.String(length=200), nullable=True),
        sa.Column("enrollment_code_hash", sa.String(length=64), nullable=True),
        sa.Column("enrollment_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("model", sa.String(length=80), nullable=True),
        sa.Column("app_version", sa.String(length=40), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoke_reason", sa.String(length=200), nullable=True),
        sa.Column("acked_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_push_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clock_offset_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_devices_created_by_users")),
        sa.ForeignKeyConstraint(
            ["jurisdiction"], ["jurisdictions.code"], name=op.f("fk_devices_jurisdiction_jurisdictions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("enrollment_code_hash", name=op.f("uq_devices_enrollment_code_hash")),
    )
    op.create_table(
        "fine_schedules",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=10), nullable=False),
        sa.Column("vehicle_type", sa.String(length=10), nullable=True),
        sa.Column("zone", sa.String(length=40), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reduction_rate", sa.Numeric(precision=5, scale=4), nullable=False),
        sa.Column("rounding_unit", sa.Integer(), nullable=False),
        sa.Column("opinion_days", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["code"], ["violation_codes.code"], name=op.f("fk_fine_schedules_code_violation_codes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fine_schedules")),
    )
    op.create_table(
        "device_qr_keys",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("key_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_device_qr_keys_device_id_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_qr_keys")),
    )
    op.create_index(op.f("ix_device_qr_keys_device_id"), "device_qr_keys", ["device_id"], unique=False)
    op.create_table(
        "notices",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("notice_no", sa.String(length=15), nullable=False),
        sa.Column("jurisdiction", sa.String(length=5), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("violation_code", sa.String(length=10), nullable=False),
        sa.Column("schedule_key", sa.String(length=80), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reduced_amount", sa.BigInteger(), nullable=False),
        sa.Column("opinion_deadline", sa.Date(), nullable=False),
        sa.Column("expected", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("vehicle_plate", sa.String(length=20), nullable=True),
        sa.Column("vehicle_type", sa.String(length=10), nullable=True),
        sa.Column("offender_enc", sa.LargeBinary(), nullable=True),
        sa.Column("offender_name_masked", sa.String(length=40), nullable=True),
        sa.Column("rrn_hash", sa.LargeBinary(), nullable=True),
        sa.Column("place_address", sa.String(length=200), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("zone", sa.String(length=40), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("observed_again_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("photos", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("officer_id", sa.BigInteger(), nullable=True),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("memo", sa.Text(), nullable=True),
        sa.Column("qr", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=15), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("flags", postgresql.ARRAY(sa.String(length=30)), nullable=False),
        sa.Column("issued_event_id", sa.String(length=36), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("void_reason", sa.String(length=20), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_notices_device_id_devices")),
        sa.ForeignKeyConstraint(
            ["jurisdiction"], ["jurisdictions.code"], name=op.f("fk_notices_jurisdiction_jurisdictions")
        ),
        sa.ForeignKeyConstraint(["officer_id"], ["users.id"], name=op.f("fk_notices_officer_id_users")),
        sa.ForeignKeyConstraint(
            ["violation_code"], ["violation_codes.code"], name=op.f("fk_notices_violation_code_violation_codes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
        sa.UniqueConstraint("notice_no", name=op.f("uq_notices_notice_no")),
    )
    op.create_index(op.f("ix_notices_device_id"), "notices", ["device_id"], unique=False)
    op.create_index(op.f("ix_notices_rrn_hash"), "notices", ["rrn_hash"], unique=False)
    op.create_index(op.f("ix_notices_vehicle_plate"), "notices", ["vehicle_plate"], unique=False)
    op.create_table(
        "number_blocks",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("jurisdiction", sa.String(length=5), nullable=False),
        sa.Column("year2", sa.String(length=2), nullable=False),
        sa.Column("first_serial", sa.BigInteger(), nullable=False),
        sa.Column("last_serial", sa.BigInteger(), nullable=False),
        sa.Column("used_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("allocated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_number_blocks_device_id_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_number_blocks")),
    )
    op.create_index(op.f("ix_number_blocks_device_id"), "number_blocks", ["device_id"], unique=False)
    op.create_table(
        "sync_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("notice_no", sa.String(length=40), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("is_link", sa.Boolean(), nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("officer_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_sync_events_device_id_devices")),
        sa.ForeignKeyConstraint(["officer_id"], ["users.id"], name=op.f("fk_sync_events_officer_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_sync_events_event_id")),
    )
    op.create_index(
        "ix_sync_events_held",
        "sync_events",
        ["device_id", "seq"],
        unique=False,
        postgresql_where=sa.text("status = 'held'"),
    )
    op.create_index("ix_sync_events_notice_no", "sync_events", ["notice_no"], unique=False)
    op.create_index(
        "uq_sync_events_device_seq_link",
        "sync_events",
        ["device_id", "seq"],
        unique=True,
        postgresql_where=sa.text("is_link"),
    )
    op.create_table(
        "notice_history",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("notice_id", sa.BigInteger(), nullable=False),
        sa.Column("what", sa.String(length=30), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_user_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_device_id", sa.String(length=36), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["actor_device_id"], ["devices.id"], name=op.f("fk_notice_history_actor_device_id_devices")
        ),
        sa.ForeignKeyConstraint(["actor_user_id"], ["users.id"], name=op.f("fk_notice_history_actor_user_id_users")),
        sa.ForeignKeyConstraint(["notice_id"], ["notices.id"], name=op.f("fk_notice_history_notice_id_notices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_history")),
    )
    op.create_index(op.f("ix_notice_history_notice_id"), "notice_history", ["notice_id"], unique=False)
    op.create_table(
        "receivables",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("jurisdiction", sa.String(length=5), nullable=False),
        sa.Column("revenue_item", sa.String(length=10), nullable=False),
        sa.Column("notice_id", sa.BigInteger(), nullable=True),
        sa.Column("payer_ref", sa.String(length=64), nullable=True),
        sa.Column("allocation_policy", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["jurisdiction"], ["jurisdictions.code"], name=op.f("fk_receivables_jurisdiction_jurisdictions")
        ),
        sa.ForeignKeyConstraint(["notice_id"], ["notices.id"], name=op.f("fk_receivables_notice_id_notices")),
        sa.ForeignKeyConstraint(
            ["revenue_item"], ["revenue_items.code"], name=op.f("fk_receivables_revenue_item_revenue_items")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receivables")),
        sa.UniqueConstraint("notice_id", name=op.f("uq_receivables_notice_id")),
    )
    op.create_index(op.f("ix_receivables_jurisdiction"), "receivables", ["jurisdiction"], unique=False)
    op.create_table(
        "charge_heads",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("receivable_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("allocation_order", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["receivable_id"], ["receivables.id"], name=op.f("fk_charge_heads_receivable_id_receivables")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_heads")),
        sa.UniqueConstraint("receivable_id", "kind", name=op.f("uq_charge_heads_receivable_id")),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("gateway", sa.String(length=30), nullable=False),
        sa.Column("txn_id", sa.String(length=80), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("notice_no", sa.String(length=15), nullable=True),
        sa.Column("receivable_id", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["receivable_id"], ["receivables.id"], name=op.f("fk_payments_receivable_id_receivables")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("gateway", "txn_id", name=op.f("uq_payments_gateway")),
    )
    op.create_index(op.f("ix_payments_notice_no"), "payments", ["notice_no"], unique=False)
    op.create_index(op.f("ix_payments_receivable_id"), "payments", ["receivable_id"], unique=False)
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("receivable_id", sa.BigInteger(), nullable=False),
        sa.Column("charge_head_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor_user_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_device_id", sa.String(length=36), nullable=True),
        sa.Column("actor_address", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=80), nullable=True),
        sa.Column("memo", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["actor_device_id"], ["devices.id"], name=op.f("fk_ledger_entries_actor_device_id_devices")
        ),
        sa.ForeignKeyConstraint(["actor_user_id"], ["users.id"], name=op.f("fk_ledger_entries_actor_user_id_users")),
        sa.ForeignKeyConstraint(
            ["charge_head_id"], ["charge_heads.id"], name=op.f("fk_ledger_entries_charge_head_id_charge_heads")
        ),
        sa.ForeignKeyConstraint(
            ["receivable_id"], ["receivables.id"], name=op.f("fk_ledger_entries_receivable_id_receivables")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_index(op.f("ix_ledger_entries_receivable_id"), "ledger_entries", ["receivable_id"], unique=False)
    op.create_table(
        "suspense_payments",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("payment_id", sa.BigInteger(), nullable=False),
        sa.Column("notice_no", sa.String(length=15), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("matched_receivable_id", sa.BigInteger(), nullable=True),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["matched_receivable_id"],
            ["receivables.id"],
            name=op.f("fk_suspense_payments_matched_receivable_id_receivables"),
        ),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_suspense_payments_payment_id_payments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suspense_payments")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_suspense_payments_payment_id")),
    )
    op.create_index(op.f("ix_suspense_payments_notice_no"), "suspense_payments", ["notice_no"], unique=False)

    # no two fine rows for the same (code, vehicle type, zone) may be in force on the same day
    op.execute(
        """
        ALTER TABLE fine_schedules ADD CONSTRAINT ex_fine_schedules_no_overlap EXCLUDE USING gist (
            code WITH =, (coalesce(vehicle_type, '-')) WITH =, (coalesce(zone, '-')) WITH =,
            daterange(valid_from, valid_to, '[)') WITH &&)
        """
    )
    op.create_check_constraint("valid_range", "fine_schedules", "valid_to IS NULL OR valid_to > valid_from")
    op.create_check_constraint(
        "rate_range", "fine_schedules", "reduction_rate >= 0 AND reduction_rate <= 1 AND rounding_unit > 0"
    )
    # ledger entries are append-only: a mistake is reversed by a new entry, never edited
    op.execute(
        """
        CREATE FUNCTION jingsu_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% of % is not allowed: the table is append-only', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'restrict_violation';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries "
        "FOR EACH ROW EXECUTE FUNCTION jingsu_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries "
        "FOR EACH STATEMENT EXECUTE FUNCTION jingsu_refuse_change()"
    )
    # a stored sync event may change only while it is held; its final fate is fixed, and it is never deleted
    op.execute(
        """
        CREATE FUNCTION jingsu_sync_event_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' OR OLD.status <> 'held' OR NEW.event_id <> OLD.event_id
               OR NEW.content_hash <> OLD.content_hash OR NEW.seq <> OLD.seq THEN
                RAISE EXCEPTION 'sync event % is final', OLD.event_id USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER sync_events_guard BEFORE UPDATE OR DELETE ON sync_events "
        "FOR EACH ROW EXECUTE FUNCTION jingsu_sync_event_guard()"
    )
    # row triggers do not see TRUNCATE, which would drop every event's fate at once
    op.execute(
        "CREATE TRIGGER sync_events_no_truncate BEFORE TRUNCATE ON sync_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION jingsu_refuse_change()"
    )
    op.execute("INSERT INTO server_state (id, epoch, feed_floor_id) VALUES (1, md5(random()::text), 0)")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS sync_events_guard ON sync_events")
    op.execute("DROP TRIGGER IF EXISTS sync_events_no_truncate ON sync_events")
    op.execute("DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries")
    op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_truncate ON ledger_entries")
    op.drop_index(op.f("ix_suspense_payments_notice_no"), table_name="suspense_payments")
    op.drop_table("suspense_payments")
    op.drop_index(op.f("ix_ledger_entries_receivable_id"), table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index(op.f("ix_payments_receivable_id"), table_name="payments")
    op.drop_index(op.f("ix_payments_notice_no"), table_name="payments")
    op.drop_table("payments")
    op.drop_table("charge_heads")
    op.drop_index(op.f("ix_receivables_jurisdiction"), table_name="receivables")
    op.drop_table("receivables")
    op.drop_index(op.f("ix_notice_history_notice_id"), table_name="notice_history")
    op.drop_table("notice_history")
    op.drop_index("uq_sync_events_device_seq_link", table_name="sync_events", postgresql_where=sa.text("is_link"))
    op.drop_index("ix_sync_events_notice_no", table_name="sync_events")
    op.drop_index("ix_sync_events_held", table_name="sync_events", postgresql_where=sa.text("status = 'held'"))
    op.drop_table("sync_events")
    op.drop_index(op.f("ix_number_blocks_device_id"), table_name="number_blocks")
    op.drop_table("number_blocks")
    op.drop_index(op.f("ix_notices_vehicle_plate"), table_name="notices")
    op.drop_index(op.f("ix_notices_rrn_hash"), table_name="notices")
    op.drop_index(op.f("ix_notices_device_id"), table_name="notices")
    op.drop_table("notices")
    op.drop_index(op.f("ix_device_qr_keys_device_id"), table_name="device_qr_keys")
    op.drop_table("device_qr_keys")
    op.drop_table("fine_schedules")
    op.drop_table("devices")
    op.drop_table("zones")
    op.drop_table("violation_codes")
    op.drop_table("users")
    op.drop_table("server_state")
    op.drop_table("revenue_items")
    op.drop_table("number_series")
    op.drop_table("jurisdictions")
    op.drop_index("ix_change_log_scope_txid_id", table_name="change_log")
    op.drop_table("change_log")
    op.execute("DROP FUNCTION IF EXISTS jingsu_sync_event_guard()")
    op.execute("DROP FUNCTION IF EXISTS jingsu_refuse_change()")
