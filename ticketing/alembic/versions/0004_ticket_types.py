"""ticket types and order items

Every event gets the "General admission" type it sold until now, at its price and with what it
sold; every order gets one item of that type. The event's own price column goes: an event's
prices are its types' now.

Downgrading is supported while it loses nothing (each event has one type and each order one
item); otherwise it is refused, saying why, before anything changes.

Revision ID: 0004_ticket_types
Revises: 0003_email_outbox
Create Date: 2026-12-01
"""

import uuid

import sqlalchemy as sa
from alembic import op

from ticketing.models.types import UTCDateTime

revision = "0004_ticket_types"
down_revision = "0003_email_outbox"
branch_labels = None
depends_on = None

GENERAL_ADMISSION = "General admission"
#: the per-order maximum every event had before types existed
MAX_PER_ORDER = 10
BATCH = 1000

events = sa.table(
    "events",
    sa.column("id", sa.Uuid()),
    sa.column("ticket_price_cents", sa.BigInteger()),
    sa.column("total_tickets", sa.Integer()),
    sa.column("available_tickets", sa.Integer()),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
ticket_types = sa.table(
    "ticket_types",
    sa.column("id", sa.Uuid()),
    sa.column("event_id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("price_cents", sa.BigInteger()),
    sa.column("capacity", sa.Integer()),
    sa.column("sold", sa.Integer()),
    sa.column("min_per_order", sa.Integer()),
    sa.column("max_per_order", sa.Integer()),
    sa.column("hidden", sa.Boolean()),
    sa.column("position", sa.Integer()),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
orders = sa.table(
    "orders",
    sa.column("id", sa.Uuid()),
    sa.column("event_id", sa.Uuid()),
    sa.column("quantity", sa.Integer()),
    sa.column("unit_price_cents", sa.BigInteger()),
    sa.column("total_amount_cents", sa.BigInteger()),
)
order_items = sa.table(
    "order_items",
    sa.column("order_id", sa.Uuid()),
    sa.column("ticket_type_id", sa.Uuid()),
    sa.column("line", sa.Integer()),
    sa.column("name", sa.String()),
    sa.column("quantity", sa.Integer()),
    sa.column("unit_price_cents", sa.BigInteger()),
    sa.column("subtotal_cents", sa.BigInteger()),
)


def upgrade():
    op.create_table(
        "ticket_types",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("sold", sa.Integer(), nullable=False),
        sa.Column("sales_start", UTCDateTime(), nullable=True),
        sa.Column("sales_end", UTCDateTime(), nullable=True),
        sa.Column("min_per_order", sa.Integer(), nullable=False),
        sa.Column("max_per_order", sa.Integer(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("price_cents >= 0", name=op.f("ck_ticket_types_price_not_negative")),
        sa.CheckConstraint(
            "capacity IS NULL OR capacity >= 0", name=op.f("ck_ticket_types_capacity_not_negative")
        ),
        sa.CheckConstraint("sold >= 0", name=op.f("ck_ticket_types_sold_not_negative")),
        sa.CheckConstraint(
            "capacity IS NULL OR sold <= capacity",
            name=op.f("ck_ticket_types_sold_within_capacity"),
        ),
        sa.CheckConstraint(
            "min_per_order >= 1", name=op.f("ck_ticket_types_min_per_order_positive")
        ),
        sa.CheckConstraint(
            "max_per_order >= min_per_order",
            name=op.f("ck_ticket_types_max_per_order_not_below_min"),
        ),
        sa.CheckConstraint(
            "sales_start IS NULL OR sales_end IS NULL OR sales_start < sales_end",
            name=op.f("ck_ticket_types_sales_window_ordered"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_ticket_types_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_types")),
    )
    op.create_index("ix_ticket_types_event_id_position", "ticket_types", ["event_id", "position"])
    op.create_table(
        "order_items",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_type_id", sa.Uuid(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_cents", sa.BigInteger(), nullable=False),
        sa.Column("subtotal_cents", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_order_items_quantity_positive")),
        sa.CheckConstraint(
            "unit_price_cents >= 0", name=op.f("ck_order_items_unit_price_not_negative")
        ),
        sa.CheckConstraint(
            "subtotal_cents = unit_price_cents * quantity",
            name=op.f("ck_order_items_subtotal_is_price_times_quantity"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_items_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_type_id"],
            ["ticket_types.id"],
            name=op.f("fk_order_items_ticket_type_id_ticket_types"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("order_id", "ticket_type_id", name=op.f("pk_order_items")),
    )
    op.create_index("ix_order_items_ticket_type_id", "order_items", ["ticket_type_id"])

    _give_every_event_its_general_admission()
    # One type per event so far: each order's item is of its event's type.
    op.execute(
        order_items.insert().from_select(
            list(order_items.c.keys()),
            sa.select(
                orders.c.id,
                ticket_types.c.id,
                sa.literal(1),
                ticket_types.c.name,
                orders.c.quantity,
                orders.c.unit_price_cents,
                orders.c.total_amount_cents,
            ).join(ticket_types, ticket_types.c.event_id == orders.c.event_id),
        )
    )

    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint(op.f("ck_orders_total_is_price_times_quantity"), type_="check")
        batch.alter_column("unit_price_cents", existing_type=sa.BigInteger(), nullable=True)
        batch.create_check_constraint("total_not_negative", "total_amount_cents >= 0")
        batch.create_check_constraint(
            "total_is_price_times_quantity",
            "unit_price_cents IS NULL OR total_amount_cents = unit_price_cents * quantity",
        )
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint(op.f("ck_events_price_not_negative"), type_="check")
        batch.drop_column("ticket_price_cents")


def _give_every_event_its_general_admission():
    connection = op.get_bind()
    last_id = None
    while True:
        query = sa.select(
            events.c.id,
            events.c.ticket_price_cents,
            events.c.total_tickets - events.c.available_tickets,
            events.c.created_at,
            events.c.updated_at,
        ).order_by(events.c.id)
        if last_id is not None:
            query = query.where(events.c.id > last_id)
        batch = connection.execute(query.limit(BATCH)).all()
        if not batch:
            return
        connection.execute(
            ticket_types.insert(),
            [
                {
                    "id": uuid.uuid4(),
                    "event_id": event_id,
                    "name": GENERAL_ADMISSION,
                    "price_cents": price,
                    "capacity": None,
                    "sold": sold,
                    "min_per_order": 1,
                    "max_per_order": MAX_PER_ORDER,
                    "hidden": False,
                    "position": 0,
                    "created_at": created_at,
                    "updated_at": updated_at,
                }
                for event_id, price, sold, created_at, updated_at in batch
            ],
        )
        last_id = batch[-1][0]


def downgrade():
    _refuse_a_lossy_downgrade()
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("ticket_price_cents", sa.BigInteger(), nullable=True))
    op.execute(
        events.update().values(
            ticket_price_cents=sa.select(ticket_types.c.price_cents)
            .where(ticket_types.c.event_id == events.c.id)
            .scalar_subquery()
        )
    )
    with op.batch_alter_table("events") as batch:
        batch.alter_column("ticket_price_cents", existing_type=sa.BigInteger(), nullable=False)
        batch.create_check_constraint("price_not_negative", "ticket_price_cents >= 0")
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint(op.f("ck_orders_total_is_price_times_quantity"), type_="check")
        batch.drop_constraint(op.f("ck_orders_total_not_negative"), type_="check")
        batch.alter_column("unit_price_cents", existing_type=sa.BigInteger(), nullable=False)
        batch.create_check_constraint(
            "total_is_price_times_quantity", "total_amount_cents = unit_price_cents * quantity"
        )
    op.drop_index("ix_order_items_ticket_type_id", table_name="order_items")
    op.drop_table("order_items")
    op.drop_index("ix_ticket_types_event_id_position", table_name="ticket_types")
    op.drop_table("ticket_types")


def _refuse_a_lossy_downgrade():
    connection = op.get_bind()
    events_with_several = connection.scalar(
        sa.select(sa.func.count()).select_from(
            sa.select(ticket_types.c.event_id)
            .group_by(ticket_types.c.event_id)
            .having(sa.func.count() > 1)
            .subquery()
        )
    )
    orders_with_several = connection.scalar(
        sa.select(sa.func.count()).select_from(
            sa.select(order_items.c.order_id)
            .group_by(order_items.c.order_id)
            .having(sa.func.count() > 1)
            .subquery()
        )
    )
    events_without = connection.scalar(
        sa.select(sa.func.count())
        .select_from(events)
        .where(~sa.exists().where(ticket_types.c.event_id == events.c.id))
    )
    if events_with_several or orders_with_several or events_without:
        raise RuntimeError(
            f"cannot downgrade below {revision}: {events_with_several} event(s) sell several "
            f"ticket types, {events_without} have none, and {orders_with_several} order(s) "
            "hold several items, which the older schema (one price per event) cannot "
            "represent. Restore a backup taken before the upgrade instead."
        )
