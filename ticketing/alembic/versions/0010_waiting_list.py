"""the waiting list

Entries of people waiting for a sold-out ticket type, each with the offer (a hold) made for it
once tickets come back; a type's ``set_aside``: tickets given back while people wait, kept out
of public sale for them; the outbox learns the offer's email.

Revision ID: 0010_waiting_list
Revises: 0009_promo_codes
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from ticketing.models.types import UTCDateTime

revision = "0010_waiting_list"
down_revision = "0009_promo_codes"
branch_labels = None
depends_on = None

OLD_KINDS = ("order_confirmation", "order_cancellation", "payment_refunded")
NEW_KINDS = (*OLD_KINDS, "waiting_list_offer")
ENTRY_STATUSES = ("waiting", "offered", "purchased", "expired", "left")
ACTIVE = "status IN ('waiting', 'offered')"


def _one_of(column, values):
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def upgrade():
    with op.batch_alter_table("ticket_types") as batch:
        batch.add_column(sa.Column("set_aside", sa.Integer(), server_default="0", nullable=False))
        batch.create_check_constraint(
            "set_aside_within_sold", "set_aside >= 0 AND set_aside <= sold"
        )
    with op.batch_alter_table("email_outbox") as batch:
        batch.drop_constraint(op.f("ck_email_outbox_email_kind"), type_="check")
        batch.create_check_constraint("email_kind", _one_of("kind", NEW_KINDS))
    op.create_table(
        "waiting_list_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_type_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                *ENTRY_STATUSES,
                name="waiting_list_entry_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("offered_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_waiting_list_entries_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_waiting_list_entries_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_type_id"],
            ["ticket_types.id"],
            name=op.f("fk_waiting_list_entries_ticket_type_id_ticket_types"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_waiting_list_entries_order_id_orders"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waiting_list_entries")),
        sa.UniqueConstraint("order_id", name=op.f("uq_waiting_list_entries_order_id")),
    )
    op.create_index(
        "ix_waiting_list_entries_ticket_type_id_status_created_at_id",
        "waiting_list_entries",
        ["ticket_type_id", "status", "created_at", "id"],
    )
    op.create_index(
        "ix_waiting_list_entries_event_id_created_at_id",
        "waiting_list_entries",
        ["event_id", "created_at", "id"],
    )
    op.create_index(
        "uq_waiting_list_entries_active_email",
        "waiting_list_entries",
        ["ticket_type_id", "email"],
        unique=True,
        postgresql_where=sa.text(ACTIVE),
        sqlite_where=sa.text(ACTIVE),
    )


def downgrade():
    connection = op.get_bind()
    types = sa.table("ticket_types", sa.column("set_aside"))
    emails = sa.table("email_outbox", sa.column("kind"))
    set_aside = connection.scalar(sa.select(sa.func.coalesce(sa.func.sum(types.c.set_aside), 0)))
    offers = connection.scalar(
        sa.select(sa.func.count()).select_from(emails).where(emails.c.kind.not_in(OLD_KINDS))
    )
    if set_aside or offers:
        raise RuntimeError(
            f"{set_aside} tickets are set aside for waiting lists and {offers} emails are of a "
            "kind (waiting_list_offer) that revision 0008 cannot represent; let the matching job "
            "offer or release them, and the emails be sent and removed, before downgrading"
        )
    op.drop_index("uq_waiting_list_entries_active_email", table_name="waiting_list_entries")
    op.drop_index(
        "ix_waiting_list_entries_event_id_created_at_id", table_name="waiting_list_entries"
    )
    op.drop_index(
        "ix_waiting_list_entries_ticket_type_id_status_created_at_id",
        table_name="waiting_list_entries",
    )
    op.drop_table("waiting_list_entries")
    with op.batch_alter_table("email_outbox") as batch:
        batch.drop_constraint(op.f("ck_email_outbox_email_kind"), type_="check")
        batch.create_check_constraint("email_kind", _one_of("kind", OLD_KINDS))
    with op.batch_alter_table("ticket_types") as batch:
        batch.drop_constraint(op.f("ck_ticket_types_set_aside_within_sold"), type_="check")
        batch.drop_column("set_aside")
