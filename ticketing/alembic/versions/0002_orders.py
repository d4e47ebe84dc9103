"""orders

Revision ID: 0002_orders
Revises: 0001_events
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from ticketing.models.types import UTCDateTime

revision = "0002_orders"
down_revision = "0001_events"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("customer_email", sa.String(length=254), nullable=False),
        sa.Column("customer_name", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_cents", sa.BigInteger(), nullable=False),
        sa.Column("total_amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "confirmed",
                "failed",
                "cancelled",
                name="order_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("payment_reference", sa.String(length=255), nullable=True),
        sa.Column("refund_reference", sa.String(length=255), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=True),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("refunded_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_orders_quantity_positive")),
        sa.CheckConstraint("unit_price_cents >= 0", name=op.f("ck_orders_unit_price_not_negative")),
        sa.CheckConstraint(
            "total_amount_cents = unit_price_cents * quantity",
            name=op.f("ck_orders_total_is_price_times_quantity"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_orders_event_id_events"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_orders_idempotency_key")),
    )
    op.create_index("ix_orders_created_at_id", "orders", ["created_at", "id"])
    op.create_index("ix_orders_event_id_created_at_id", "orders", ["event_id", "created_at", "id"])
    op.create_index(
        "ix_orders_customer_email_created_at_id", "orders", ["customer_email", "created_at", "id"]
    )
    op.create_index("ix_orders_status_created_at_id", "orders", ["status", "created_at", "id"])


def downgrade():
    op.drop_table("orders")
