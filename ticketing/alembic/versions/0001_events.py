"""events

Revision ID: 0001_events
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from ticketing.models.types import UTCDateTime

revision = "0001_events"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("venue", sa.String(length=200), nullable=False),
        sa.Column("date", UTCDateTime(), nullable=False),
        sa.Column("ticket_price_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_tickets", sa.Integer(), nullable=False),
        sa.Column("available_tickets", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "published",
                "completed",
                name="event_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("available_tickets >= 0", name=op.f("ck_events_available_not_negative")),
        sa.CheckConstraint(
            "available_tickets <= total_tickets", name=op.f("ck_events_available_within_total")
        ),
        sa.CheckConstraint("ticket_price_cents >= 0", name=op.f("ck_events_price_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_created_at_id", "events", ["created_at", "id"])
    op.create_index("ix_events_status_created_at_id", "events", ["status", "created_at", "id"])


def downgrade():
    op.drop_index("ix_events_status_created_at_id", table_name="events")
    op.drop_index("ix_events_created_at_id", table_name="events")
    op.drop_table("events")
