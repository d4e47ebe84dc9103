"""Migration 0009_promo_codes on a database filled before it, on SQLite and PostgreSQL: every
order keeps its total with no discount, the check of an order's total counts the discount, and
the downgrade is refused while an order used a code and lossless otherwise."""

import uuid

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ticketing.models.meta import Base

from .test_migration_ticket_types import NOW, PREVIOUS, fill_at_previous_head, fresh_engine, migrate
from .test_migration_ticket_types import stamp as sqlite_stamp

BEFORE = "0008_holds"
PROMO_CODES = "0009_promo_codes"

__all__ = ["fresh_engine"]


def totals(engine):
    with engine.connect() as connection:
        return sorted(
            connection.execute(sa.text("SELECT id, total_amount_cents FROM orders")).all()
        )


def value(engine, raw):
    """A UUID or a timestamp as the database's driver takes it in plain SQL."""
    if engine.dialect.name != "sqlite":
        return raw
    return raw.hex if isinstance(raw, uuid.UUID) else sqlite_stamp(raw)


def add_discounted_order(engine):
    """A code, and an order of the first event that used it (10.00 off its total)."""
    code_id = uuid.uuid4()
    with engine.begin() as connection:
        event_id, order_id = connection.execute(
            sa.text("SELECT event_id, id FROM orders WHERE unit_price_cents > 1000 LIMIT 1")
        ).one()
        connection.execute(
            sa.text(
                "INSERT INTO promo_codes (id, event_id, code, code_key, discount_type, "
                "discount_value, uses, unlocks_hidden, disabled, revision, created_at, "
                "updated_at) VALUES (:id, :event, 'TEN', 'ten', 'amount', 1000, 1, false, "
                "false, 1, :now, :now)"
            ),
            {"id": value(engine, code_id), "event": event_id, "now": value(engine, NOW)},
        )
        connection.execute(
            sa.text(
                "UPDATE orders SET promo_code_id = :code, promo_code = 'TEN', "
                "discount_cents = 1000, total_amount_cents = total_amount_cents - 1000 "
                "WHERE id = :id"
            ),
            {"code": value(engine, code_id), "id": order_id},
        )
        connection.execute(
            sa.text("UPDATE order_items SET discount_cents = 1000 WHERE order_id = :id"),
            {"id": order_id},
        )
    return order_id


def test_upgrading_keeps_every_order_s_total_with_no_discount(fresh_engine):
    migrate(fresh_engine, PREVIOUS)
    fill_at_previous_head(fresh_engine)
    migrate(fresh_engine, BEFORE)
    before = totals(fresh_engine)

    migrate(fresh_engine, PROMO_CODES)

    assert totals(fresh_engine) == before
    # The later revisions on top of it: the schema is the models' (0009 is no longer the head).
    migrate(fresh_engine, "head")
    with fresh_engine.begin() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        discounts = set(connection.scalars(sa.text("SELECT discount_cents FROM orders")))
        item_discounts = set(connection.scalars(sa.text("SELECT discount_cents FROM order_items")))
        assert (discounts, item_discounts) == ({0}, {0})
    add_discounted_order(fresh_engine)
    # The total counts the discount now: one that does not add up is refused.
    with pytest.raises(sa.exc.IntegrityError), fresh_engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE orders SET discount_cents = 1 WHERE promo_code_id IS NOT NULL")
        )


def test_the_downgrade_is_refused_while_an_order_used_a_code_and_lossless_otherwise(
    fresh_engine,
):
    migrate(fresh_engine, PREVIOUS)
    fill_at_previous_head(fresh_engine)
    migrate(fresh_engine, PROMO_CODES)
    before = totals(fresh_engine)
    discounted = add_discounted_order(fresh_engine)

    with pytest.raises(RuntimeError, match="1 orders used a promo code"):
        migrate(fresh_engine, BEFORE, command.downgrade)

    with fresh_engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE orders SET promo_code_id = NULL, promo_code = NULL, discount_cents = 0, "
                "total_amount_cents = total_amount_cents + 1000 WHERE id = :id"
            ),
            {"id": discounted},
        )
        connection.execute(
            sa.text("UPDATE order_items SET discount_cents = 0 WHERE order_id = :id"),
            {"id": discounted},
        )
    migrate(fresh_engine, BEFORE, command.downgrade)
    assert totals(fresh_engine) == before
    with fresh_engine.connect() as connection:
        tables = sa.inspect(connection).get_table_names()
        columns = {column["name"] for column in sa.inspect(connection).get_columns("orders")}
    assert "promo_codes" not in tables and "promo_code_ticket_types" not in tables
    assert not {"promo_code_id", "promo_code", "discount_cents"} & columns
    migrate(fresh_engine, PROMO_CODES)
