"""tickets and check-ins

One ticket per unit of a confirmed order, with the SHA-256 of its code (the code itself is
derived from the ticket's id with the server's ticket secret and never stored), and the scans
that admitted tickets at the door, kept when undone. Orders confirmed before this revision have
no tickets; nothing is issued for them here, since their codes would need the secret, which a
migration does not hold.

Revision ID: 0006_tickets
Revises: 0005_api_keys
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from ticketing.models.types import UTCDateTime

revision = "0006_tickets"
down_revision = "0005_api_keys"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "tickets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_type_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("attendee_name", sa.String(length=200), nullable=False),
        sa.Column("attendee_email", sa.String(length=254), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "valid",
                "void",
                name="ticket_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("checked_in_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        # Of one of its order's items (see ticketing.models.ticket for why not the hot rows).
        sa.ForeignKeyConstraint(
            ["order_id", "ticket_type_id"],
            ["order_items.order_id", "order_items.ticket_type_id"],
            name=op.f("fk_tickets_order_id_order_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint("code_hash", name="uq_tickets_code_hash"),
    )
    op.create_index(
        "ix_tickets_event_id_created_at_id", "tickets", ["event_id", "created_at", "id"]
    )
    op.create_index(
        "ix_tickets_order_id_created_at_id", "tickets", ["order_id", "created_at", "id"]
    )
    op.create_table(
        "check_ins",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("nonce", sa.String(length=100), nullable=True),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("key_name", sa.String(length=200), nullable=False),
        sa.Column("checked_in_at", UTCDateTime(), nullable=False),
        sa.Column("undone_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_check_ins_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_check_ins_event_id_events"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_check_ins_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_ins")),
        sa.UniqueConstraint("event_id", "nonce", name="uq_check_ins_event_id_nonce"),
    )
    op.create_index("ix_check_ins_ticket_id", "check_ins", ["ticket_id"])


def downgrade():
    op.drop_index("ix_check_ins_ticket_id", table_name="check_ins")
    op.drop_table("check_ins")
    op.drop_index("ix_tickets_order_id_created_at_id", table_name="tickets")
    op.drop_index("ix_tickets_event_id_created_at_id", table_name="tickets")
    op.drop_table("tickets")
