"""Revision 0004 (ticket types) moves the data of a database filled at the previous head: every
event gets its "General admission" type with its price and what it sold, every order one item;
the books balance after. Downgrading works while it loses nothing, and is refused otherwise.
And the ini files drive alembic, as the README says."""

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ticketing.migrations import alembic_config
from ticketing.models.meta import Base

from .conftest import DEFAULT_TEST_DATABASE_URL

REPO = Path(__file__).resolve().parent.parent
ALEMBIC = Path(sys.executable).parent / "alembic"
PREVIOUS = "0003_email_outbox"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_engine(request, tmp_path):
    """An empty database of the test's own, to migrate step by step."""
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
        yield engine
        engine.dispose()
        return
    base = sa.make_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL))
    name = f"ticketing_migration_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = sa.create_engine(base.set(database=name))
    yield engine
    engine.dispose()
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def migrate(engine, revision, direction=command.upgrade):
    with engine.begin() as connection:
        direction(alembic_config(connection), revision)


def stamp(value):
    return value.replace(tzinfo=None) if value.tzinfo else value


def fill_at_previous_head(engine):
    """Events in every status, with orders in every status, as 0003 stored them."""
    events = [
        (
            "published",
            100,
            5000,
            [("confirmed", 3), ("pending", 2), ("failed", 4), ("cancelled", 1)],
        ),
        ("draft", 10, 2500, []),
        ("completed", 50, 0, [("confirmed", 10), ("cancelled", 2)]),
    ]
    made = []
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as connection:
        for status, total, price, orders in events:
            event_id = uuid.uuid4()
            taken = sum(q for s, q in orders if s in ("confirmed", "pending"))
            connection.execute(
                sa.text(
                    "INSERT INTO events (id, name, venue, date, ticket_price_cents, currency, "
                    "total_tickets, available_tickets, status, created_at, updated_at) VALUES "
                    "(:id, 'Show', 'Hall', :date, :price, 'USD', :total, :available, :status, "
                    ":now, :now)"
                ),
                {
                    "id": event_id.hex if sqlite else event_id,
                    "date": stamp(NOW + dt.timedelta(days=30)) if sqlite else NOW,
                    "price": price,
                    "total": total,
                    "available": total - taken,
                    "status": status,
                    "now": stamp(NOW) if sqlite else NOW,
                },
            )
            for order_status, quantity in orders:
                order_id = uuid.uuid4()
                connection.execute(
                    sa.text(
                        "INSERT INTO orders (id, event_id, customer_email, customer_name, "
                        "quantity, unit_price_cents, total_amount_cents, currency, status, "
                        "created_at, updated_at) VALUES (:id, :event_id, 'a@example.com', 'A', "
                        ":quantity, :price, :total, 'USD', :status, :now, :now)"
                    ),
                    {
                        "id": order_id.hex if sqlite else order_id,
                        "event_id": event_id.hex if sqlite else event_id,
                        "quantity": quantity,
                        "price": price,
                        "total": price * quantity,
                        "status": order_status,
                        "now": stamp(NOW) if sqlite else NOW,
                    },
                )
            made.append((event_id, status, total, price, orders))
    return made


def test_upgrading_moves_every_event_and_order_and_the_books_balance(fresh_engine):
    migrate(fresh_engine, PREVIOUS)
    filled = fill_at_previous_head(fresh_engine)

    migrate(fresh_engine, "head")

    with fresh_engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        types = connection.execute(
            sa.text("SELECT event_id, name, price_cents, capacity, sold FROM ticket_types")
        ).all()
        items = connection.execute(
            sa.text(
                "SELECT o.status, o.quantity, o.total_amount_cents, i.quantity, i.subtotal_cents,"
                " i.name, t.event_id = o.event_id FROM orders o "
                "JOIN order_items i ON i.order_id = o.id "
                "JOIN ticket_types t ON t.id = i.ticket_type_id"
            )
        ).all()
        orders = connection.scalar(sa.text("SELECT count(*) FROM orders"))
        columns = {column["name"] for column in sa.inspect(connection).get_columns("events")}
    assert "ticket_price_cents" not in columns
    assert len(types) == len(filled)
    by_event = {uuid.UUID(str(row[0])): row for row in types}
    for event_id, _, _, price, event_orders in filled:
        _, name, price_cents, capacity, sold = by_event[event_id]
        taken = sum(q for s, q in event_orders if s in ("confirmed", "pending"))
        assert (name, price_cents, capacity, sold) == ("General admission", price, None, taken)
    assert len(items) == orders == 6
    for _, quantity, total, item_quantity, subtotal, name, same_event in items:
        assert (item_quantity, subtotal, name, bool(same_event)) == (
            quantity,
            total,
            "General admission",
            True,
        )


def test_a_lossless_downgrade_is_supported_and_a_lossy_one_refused(fresh_engine):
    migrate(fresh_engine, PREVIOUS)
    filled = fill_at_previous_head(fresh_engine)
    migrate(fresh_engine, "head")

    migrate(fresh_engine, PREVIOUS, command.downgrade)

    with fresh_engine.connect() as connection:
        prices = dict(
            (uuid.UUID(str(event_id)), price)
            for event_id, price in connection.execute(
                sa.text("SELECT id, ticket_price_cents FROM events")
            )
        )
        assert "ticket_types" not in sa.inspect(connection).get_table_names()
    assert prices == {event_id: price for event_id, _, _, price, _ in filled}

    migrate(fresh_engine, "head")
    event_id = filled[0][0]
    with fresh_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO ticket_types (id, event_id, name, price_cents, sold, min_per_order, "
                "max_per_order, hidden, position, created_at, updated_at) VALUES (:id, :event, "
                "'VIP', 9000, 0, 1, 10, false, 1, :now, :now)"
            ),
            {
                "id": uuid.uuid4().hex if fresh_engine.dialect.name == "sqlite" else uuid.uuid4(),
                "event": event_id.hex if fresh_engine.dialect.name == "sqlite" else event_id,
                "now": stamp(NOW) if fresh_engine.dialect.name == "sqlite" else NOW,
            },
        )
    with pytest.raises(RuntimeError, match="1 event\\(s\\) sell several ticket types"):
        migrate(fresh_engine, PREVIOUS, command.downgrade)
    with fresh_engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM ticket_types")) == 4


def test_alembic_runs_from_the_ini_files(tmp_path):
    """`alembic -c development.ini upgrade head`, and `check` finds nothing to autogenerate."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'ini.sqlite'}"}
    for arguments in (["upgrade", "head"], ["check"], ["current"]):
        result = subprocess.run(
            [str(ALEMBIC), "-c", "development.ini", *arguments],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert "0007_webhooks (head)" in result.stdout
    production = subprocess.run(
        [str(ALEMBIC), "-c", "production.ini", "heads"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert production.returncode == 0, production.stderr
    assert "0007_webhooks (head)" in production.stdout
