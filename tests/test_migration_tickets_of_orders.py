"""Migration 0012_tickets_of_orders on a database with tickets, on SQLite and PostgreSQL: each
ticket's foreign key goes from its order's item to its order and back, and no ticket is lost
either way."""

import sqlalchemy as sa
from alembic import command

from .factories import create_event, create_order
from .test_migration_ticket_types import fresh_engine, migrate

BEFORE = "0011_partial_order_indexes"
TICKETS_OF_ORDERS = "0012_tickets_of_orders"

__all__ = ["fresh_engine"]


def tickets_keys(engine):
    with engine.connect() as connection:
        keys = sa.inspect(connection).get_foreign_keys("tickets")
        tickets = sorted(
            connection.execute(sa.text("SELECT id, order_id, ticket_type_id FROM tickets")).all()
        )
    return [(key["constrained_columns"], key["referred_table"]) for key in keys], tickets


def test_tickets_reference_their_order_after_the_upgrade_and_its_item_after_the_downgrade(
    fresh_engine,
):
    migrate(fresh_engine, BEFORE)
    event = create_event(fresh_engine)
    create_order(fresh_engine, event, quantity=3)
    create_order(fresh_engine, event, status="cancelled")
    to_items = [(["order_id", "ticket_type_id"], "order_items")]
    keys, tickets = tickets_keys(fresh_engine)
    assert keys == to_items
    assert len(tickets) == 5

    migrate(fresh_engine, TICKETS_OF_ORDERS)
    assert tickets_keys(fresh_engine) == ([(["order_id"], "orders")], tickets)

    migrate(fresh_engine, BEFORE, command.downgrade)
    assert tickets_keys(fresh_engine) == (to_items, tickets)
