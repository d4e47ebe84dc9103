"""Migration 0010_waiting_list on a database filled before it, on SQLite and PostgreSQL: every
type keeps what it sold (nothing set aside), the entries' table and the offer's email kind
arrive, and the downgrade is refused while tickets are set aside for a line."""

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ticketing.models.meta import Base

from .test_migration_ticket_types import PREVIOUS, fill_at_previous_head, fresh_engine, migrate

BEFORE = "0009_promo_codes"
WAITING_LIST = "0010_waiting_list"

__all__ = ["fresh_engine"]


def sold(engine):
    with engine.connect() as connection:
        return sorted(connection.execute(sa.text("SELECT id, sold FROM ticket_types")).all())


def test_upgrading_keeps_what_every_type_sold_and_sets_nothing_aside(fresh_engine):
    migrate(fresh_engine, PREVIOUS)
    fill_at_previous_head(fresh_engine)
    migrate(fresh_engine, BEFORE)
    before = sold(fresh_engine)

    migrate(fresh_engine, WAITING_LIST)

    assert sold(fresh_engine) == before
    with fresh_engine.begin() as connection:
        assert set(connection.scalars(sa.text("SELECT set_aside FROM ticket_types"))) == {0}
        assert "waiting_list_entries" in sa.inspect(connection).get_table_names()
    # The later revisions on top of it: the schema is the models' (0010 is no longer the head).
    migrate(fresh_engine, "head")
    with fresh_engine.begin() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    # A type never sets aside more than it took.
    with pytest.raises(sa.exc.IntegrityError), fresh_engine.begin() as connection:
        connection.execute(sa.text("UPDATE ticket_types SET set_aside = sold + 1"))


def test_the_downgrade_is_refused_while_tickets_are_set_aside_and_lossless_otherwise(
    fresh_engine,
):
    migrate(fresh_engine, PREVIOUS)
    fill_at_previous_head(fresh_engine)
    migrate(fresh_engine, WAITING_LIST)
    with fresh_engine.begin() as connection:
        connection.execute(sa.text("UPDATE ticket_types SET set_aside = 1 WHERE sold > 0"))

    with pytest.raises(RuntimeError, match="tickets are set aside"):
        migrate(fresh_engine, BEFORE, command.downgrade)

    with fresh_engine.begin() as connection:
        connection.execute(sa.text("UPDATE ticket_types SET set_aside = 0"))
    before = sold(fresh_engine)
    migrate(fresh_engine, BEFORE, command.downgrade)
    assert sold(fresh_engine) == before
    with fresh_engine.connect() as connection:
        assert "waiting_list_entries" not in sa.inspect(connection).get_table_names()
        columns = {column["name"] for column in sa.inspect(connection).get_columns("ticket_types")}
        assert "set_aside" not in columns
    migrate(fresh_engine, WAITING_LIST)
