"""promo codes

Events gain promo codes (a discount in percent or per ticket, a number of uses, a validity, the
ticket types they apply to, perhaps unlocking hidden ones). Orders record the code they hold a
use of, its text and the discount; each item its own discount. An order's total stays what its
buyer pays, so its check says total + discount = list price x quantity.

Downgrading is refused while an order used a code (its price would no longer add up), and
loses only the codes otherwise.

Revision ID: 0009_promo_codes
Revises: 0008_holds
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from ticketing.models.types import UTCDateTime

revision = "0009_promo_codes"
down_revision = "0008_holds"
branch_labels = None
depends_on = None

OLD_TOTAL = "unit_price_cents IS NULL OR total_amount_cents = unit_price_cents * quantity"
NEW_TOTAL = (
    "unit_price_cents IS NULL OR total_amount_cents + discount_cents = unit_price_cents * quantity"
)


def upgrade():
    op.create_table(
        "promo_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("code_key", sa.String(length=64), nullable=False),
        sa.Column(
            "discount_type",
            sa.Enum(
                "percent",
                "amount",
                name="discount_type",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("discount_value", sa.BigInteger(), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=True),
        sa.Column("valid_until", UTCDateTime(), nullable=True),
        sa.Column("unlocks_hidden", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("uses >= 0", name=op.f("ck_promo_codes_uses_not_negative")),
        sa.CheckConstraint(
            "max_uses IS NULL OR uses <= max_uses", name=op.f("ck_promo_codes_uses_within_max")
        ),
        sa.CheckConstraint(
            "discount_type != 'percent' OR discount_value BETWEEN 1 AND 10000",
            name=op.f("ck_promo_codes_percent_in_range"),
        ),
        sa.CheckConstraint("discount_value > 0", name=op.f("ck_promo_codes_discount_positive")),
        sa.CheckConstraint(
            "valid_from IS NULL OR valid_until IS NULL OR valid_from < valid_until",
            name=op.f("ck_promo_codes_validity_ordered"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_promo_codes_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promo_codes")),
        sa.UniqueConstraint("event_id", "code_key", name=op.f("uq_promo_codes_event_id")),
    )
    op.create_table(
        "promo_code_ticket_types",
        sa.Column("promo_code_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_type_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["promo_code_id"],
            ["promo_codes.id"],
            name=op.f("fk_promo_code_ticket_types_promo_code_id_promo_codes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_type_id"],
            ["ticket_types.id"],
            name=op.f("fk_promo_code_ticket_types_ticket_type_id_ticket_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "promo_code_id", "ticket_type_id", name=op.f("pk_promo_code_ticket_types")
        ),
    )
    with op.batch_alter_table("orders") as batch:
        batch.add_column(
            sa.Column("discount_cents", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("promo_code_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("promo_code", sa.String(length=64), nullable=True))
        batch.create_foreign_key(
            op.f("fk_orders_promo_code_id_promo_codes"),
            "promo_codes",
            ["promo_code_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch.create_index("ix_orders_promo_code_id", ["promo_code_id"])
        batch.create_check_constraint("discount_not_negative", "discount_cents >= 0")
        batch.drop_constraint(op.f("ck_orders_total_is_price_times_quantity"), type_="check")
        batch.create_check_constraint("total_is_price_times_quantity", NEW_TOTAL)
    with op.batch_alter_table("order_items") as batch:
        batch.add_column(
            sa.Column("discount_cents", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.create_check_constraint(
            "discount_in_subtotal", "discount_cents >= 0 AND discount_cents <= subtotal_cents"
        )


def downgrade():
    connection = op.get_bind()
    orders = sa.table("orders", sa.column("promo_code_id"), sa.column("discount_cents"))
    discounted = connection.scalar(
        sa.select(sa.func.count())
        .select_from(orders)
        .where(sa.or_(orders.c.promo_code_id.is_not(None), orders.c.discount_cents != 0))
    )
    if discounted:
        raise RuntimeError(
            f"{discounted} orders used a promo code; revision 0008 cannot represent their "
            "discounts, so the downgrade is refused"
        )
    with op.batch_alter_table("order_items") as batch:
        batch.drop_constraint(op.f("ck_order_items_discount_in_subtotal"), type_="check")
        batch.drop_column("discount_cents")
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint(op.f("ck_orders_total_is_price_times_quantity"), type_="check")
        batch.create_check_constraint("total_is_price_times_quantity", OLD_TOTAL)
        batch.drop_constraint(op.f("ck_orders_discount_not_negative"), type_="check")
        batch.drop_index("ix_orders_promo_code_id")
        batch.drop_constraint(op.f("fk_orders_promo_code_id_promo_codes"), type_="foreignkey")
        batch.drop_column("promo_code")
        batch.drop_column("promo_code_id")
        batch.drop_column("discount_cents")
    op.drop_table("promo_code_ticket_types")
    op.drop_table("promo_codes")
