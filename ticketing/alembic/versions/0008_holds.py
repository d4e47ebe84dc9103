"""checkout holds and asynchronous payments

Orders gain three states: ``reserved`` (a hold: tickets taken until ``expires_at``, no money),
``awaiting_action`` (the buyer must authenticate the payment, 3-D Secure) and ``expired`` (a hold
not paid in time); a payment attempt number, so that a hold can be paid again with another card,
and the idempotency key of the pay that started it; and an index for the hold-expiry job.
Stripe's events are recorded by id once processed. The outbox learns the email of money
refunded because its hold expired.

Revision ID: 0008_holds
Revises: 0007_webhooks
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from ticketing.models.types import UTCDateTime

revision = "0008_holds"
down_revision = "0007_webhooks"
branch_labels = None
depends_on = None

OLD_STATUSES = ("pending", "confirmed", "failed", "cancelled")
NEW_STATUSES = (
    "reserved",
    "pending",
    "awaiting_action",
    "confirmed",
    "expired",
    "failed",
    "cancelled",
)
OLD_KINDS = ("order_confirmation", "order_cancellation")
NEW_KINDS = (*OLD_KINDS, "payment_refunded")


def _one_of(column, values):
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def upgrade():
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint(op.f("ck_orders_order_status"), type_="check")
        batch.create_check_constraint("order_status", _one_of("status", NEW_STATUSES))
        batch.add_column(sa.Column("expires_at", UTCDateTime(), nullable=True))
        batch.add_column(
            sa.Column("payment_attempt", sa.Integer(), server_default="1", nullable=False)
        )
        batch.add_column(sa.Column("payment_idempotency_key", sa.String(length=255), nullable=True))
        batch.create_index("ix_orders_status_expires_at", ["status", "expires_at"])
    with op.batch_alter_table("email_outbox") as batch:
        batch.drop_constraint(op.f("ck_email_outbox_email_kind"), type_="check")
        batch.create_check_constraint("email_kind", _one_of("kind", NEW_KINDS))
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )


def downgrade():
    connection = op.get_bind()
    orders = sa.table("orders", sa.column("status"))
    emails = sa.table("email_outbox", sa.column("kind"))
    holds = connection.scalar(
        sa.select(sa.func.count()).select_from(orders).where(orders.c.status.not_in(OLD_STATUSES))
    )
    refunds = connection.scalar(
        sa.select(sa.func.count()).select_from(emails).where(emails.c.kind.not_in(OLD_KINDS))
    )
    if holds or refunds:
        raise RuntimeError(
            f"{holds} orders are in states (reserved, awaiting_action, expired) and {refunds} "
            "emails of a kind (payment_refunded) that revision 0005 cannot represent; settle "
            "them before downgrading"
        )
    op.drop_table("stripe_events")
    with op.batch_alter_table("email_outbox") as batch:
        batch.drop_constraint(op.f("ck_email_outbox_email_kind"), type_="check")
        batch.create_check_constraint("email_kind", _one_of("kind", OLD_KINDS))
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_status_expires_at")
        batch.drop_column("payment_idempotency_key")
        batch.drop_column("payment_attempt")
        batch.drop_column("expires_at")
        batch.drop_constraint(op.f("ck_orders_order_status"), type_="check")
        batch.create_check_constraint("order_status", _one_of("status", OLD_STATUSES))
