"""partial indexes for the orders' expiries and promo codes

Only holds and orders awaiting authentication have an expiry, and only some orders a promo
code: the two indexes keep entries for those alone, so that a one-step purchase (its insert and
its confirmation, an UPDATE of the indexed ``status``) writes two index entries fewer.

Revision ID: 0011_partial_order_indexes
Revises: 0010_waiting_list
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_partial_order_indexes"
down_revision = "0010_waiting_list"
branch_labels = None
depends_on = None

PARTIAL = {
    "ix_orders_status_expires_at": (["status", "expires_at"], "expires_at IS NOT NULL"),
    "ix_orders_promo_code_id": (["promo_code_id"], "promo_code_id IS NOT NULL"),
}


def upgrade():
    for name, (columns, predicate) in PARTIAL.items():
        op.drop_index(name, table_name="orders")
        op.create_index(
            name,
            "orders",
            columns,
            postgresql_where=sa.text(predicate),
            sqlite_where=sa.text(predicate),
        )


def downgrade():
    for name, (columns, _) in PARTIAL.items():
        op.drop_index(name, table_name="orders")
        op.create_index(name, "orders", columns)
