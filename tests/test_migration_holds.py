"""Migration 0008_holds on a database filled before it, on SQLite and PostgreSQL: every order
keeps its state, the new states and the Stripe events' table arrive, and the downgrade is
refused while an order is in a state the older schema cannot hold."""

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ticketing.models.meta import Base

from .test_migration_ticket_types import PREVIOUS, fill_at_previous_head, fresh_engine, migrate

BEFORE_HOLDS = "0007_webhooks"
HOLDS = "0008_holds"

__all__ = ["fresh_engine"]


def statuses(engine):
    with engine.connect() as connection:
        return sorted(connection.scalars(sa.text("SELECT status FROM orders")))


def test_upgrading_keeps_every_order_and_adds_the_new_states(fresh_engine):
    migrate(fresh_engine, PREVIOUS)
    fill_at_previous_head(fresh_engine)
    migrate(fresh_engine, BEFORE_HOLDS)
    before = statuses(fresh_engine)

    migrate(fresh_engine, HOLDS)

    assert statuses(fresh_engine) == before
    # The later revisions bring the schema to the models'.
    migrate(fresh_engine, "head")
    with fresh_engine.begin() as connection:
        attempts = set(connection.scalars(sa.text("SELECT payment_attempt FROM orders")))
        holds = connection.scalar(
            sa.text("SELECT count(*) FROM orders WHERE expires_at IS NOT NULL")
        )
        assert (attempts, holds) == ({1}, 0)
        connection.execute(
            sa.text("UPDATE orders SET status = 'reserved' WHERE status = 'pending'")
        )
        assert "stripe_events" in sa.inspect(connection).get_table_names()
    # The later revisions on top of it: the schema is the models' (0008 is no longer the head).
    migrate(fresh_engine, "head")
    with fresh_engine.begin() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_the_downgrade_is_refused_while_a_hold_exists_and_lossless_otherwise(fresh_engine):
    migrate(fresh_engine, PREVIOUS)
    fill_at_previous_head(fresh_engine)
    migrate(fresh_engine, HOLDS)
    with fresh_engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE orders SET status = 'awaiting_action' WHERE status = 'pending'")
        )

    with pytest.raises(RuntimeError, match="1 orders are in states"):
        migrate(fresh_engine, BEFORE_HOLDS, command.downgrade)

    with fresh_engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE orders SET status = 'pending' WHERE status = 'awaiting_action'")
        )
    before = statuses(fresh_engine)
    migrate(fresh_engine, BEFORE_HOLDS, command.downgrade)
    assert statuses(fresh_engine) == before
    with fresh_engine.connect() as connection:
        assert "stripe_events" not in sa.inspect(connection).get_table_names()
    # The older schema's CHECK is back: a new state is refused.
    with pytest.raises(sa.exc.IntegrityError), fresh_engine.begin() as connection:
        connection.execute(sa.text("UPDATE orders SET status = 'reserved'"))
    migrate(fresh_engine, HOLDS)
