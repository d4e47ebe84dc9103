"""tickets reference their order, not its items

The foreign key from a ticket to its order's item, ``(order_id, ticket_type_id)``, made every
ticket the confirmation issued lock that item's row (FOR KEY SHARE), a row another transaction
wrote on the pages reservations are inserting into: about 160 us per ticket on a hot sale. A
ticket now references its order, whose row the confirming statement updates itself, so the
check costs no lock of another transaction's row; the tickets' types still come from the
order's items, which issue them.

Revision ID: 0012_tickets_of_orders
Revises: 0011_partial_order_indexes
Create Date: 2026-12-03
"""

from alembic import op

revision = "0012_tickets_of_orders"
down_revision = "0011_partial_order_indexes"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("fk_tickets_order_id_order_items", type_="foreignkey")
        batch.create_foreign_key(
            "fk_tickets_order_id_orders", "orders", ["order_id"], ["id"], ondelete="CASCADE"
        )


def downgrade():
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("fk_tickets_order_id_orders", type_="foreignkey")
        batch.create_foreign_key(
            "fk_tickets_order_id_order_items",
            "order_items",
            ["order_id", "ticket_type_id"],
            ["order_id", "ticket_type_id"],
            ondelete="CASCADE",
        )
