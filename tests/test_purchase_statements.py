"""How many SQL statements a purchase costs. Each one is listed in the domain's docstring; this
keeps the count from creeping up unnoticed."""

import contextlib

import sqlalchemy
from webtest import TestApp

from ticketing import main

from .conftest import app_settings
from .factories import create_event


@contextlib.contextmanager
def recorded_statements(engine):
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement.split()[0].upper())

    sqlalchemy.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", record)


def purchase(testapp, event, status):
    body = {
        "order": {
            "customer_email": "a@example.com",
            "customer_name": "A",
            "quantity": 1,
            "idempotency_key": "count-me",
        }
    }
    return testapp.post_json(f"/api/events/{event.id}/purchase", body, status=status)


def test_a_new_purchase_and_its_replay_cost_a_handful_of_statements(dbengine):
    # Jobs queued, not run inline: only the request's own statements are counted.
    testapp = TestApp(main({}, **app_settings(dbengine, **{"huey.immediate": "false"})))
    event = create_event(dbengine)

    with recorded_statements(dbengine) as new_purchase:
        purchase(testapp, event, 201)
    with recorded_statements(dbengine) as replay:
        purchase(testapp, event, 200)

    # look up the key; reserve the tickets and insert the pending order; confirm the order and
    # owe the confirmation email (the outbox row). On PostgreSQL each pair is one statement,
    # WITH ... AS (UPDATE ... RETURNING) INSERT ...; SQLite cannot, so it runs them in turn.
    if dbengine.dialect.name == "postgresql":
        assert new_purchase == ["SELECT", "WITH", "WITH"]
    else:
        assert new_purchase == ["SELECT", "UPDATE", "INSERT", "UPDATE", "INSERT"]
    assert replay == ["SELECT"]
