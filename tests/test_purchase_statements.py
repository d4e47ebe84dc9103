"""How many SQL statements a purchase costs. Each one is listed in the domain's docstring; this
keeps the count from creeping up unnoticed."""

import contextlib

import sqlalchemy
from webtest import TestApp

from ticketing import main

from .conftest import app_settings
from .factories import create_event


@contextlib.contextmanager
def recorded_statements(engine, in_autocommit=None):
    """The first word of each statement; ``in_autocommit`` gets whether each one ran so."""
    statements = []
    in_autocommit = [] if in_autocommit is None else in_autocommit

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement.split()[0].upper())
        in_autocommit.append(getattr(conn.connection.dbapi_connection, "autocommit", False))

    sqlalchemy.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", record)


def purchase(testapp, event, status, key="count-me"):
    body = {
        "order": {
            "customer_email": "a@example.com",
            "customer_name": "A",
            "quantity": 1,
            "idempotency_key": key,
        }
    }
    return testapp.post_json(f"/api/events/{event.id}/purchase", body, status=status)


def test_a_new_purchase_and_its_replay_cost_a_handful_of_statements(dbengine):
    # Jobs queued, not run inline: only the request's own statements are counted.
    testapp = TestApp(main({}, **app_settings(dbengine, **{"huey.immediate": "false"})))
    event, another = create_event(dbengine), create_event(dbengine)
    with recorded_statements(dbengine) as first_of_the_process:
        purchase(testapp, another, 201, key="the-process-s-first")

    in_autocommit = []
    with recorded_statements(dbengine, in_autocommit) as new_purchase:
        purchase(testapp, event, 201)
    with recorded_statements(dbengine) as replay:
        purchase(testapp, event, 200)

    # take the tickets from the event and its type and insert the pending order with its item
    # (the key is not looked up first: the orders' unique key refuses a second order of it);
    # confirm the order, issue its tickets, owe the confirmation email (the outbox row) and log
    # order.confirmed (the event log's row, ticketing.events). On PostgreSQL each phase is one
    # statement, WITH ... AS (UPDATE ... RETURNING) INSERT ...; SQLite cannot, so it runs them
    # in turn (and first finds the event's only type on sale).
    if dbengine.dialect.name == "postgresql":
        assert new_purchase == ["WITH", "WITH"]
        # Each is its own transaction, committed by the server before it answers: the event
        # row's lock is never held while the worker waits to send a COMMIT.
        assert in_autocommit == [True, True]
        # The replay's reservation is refused by the key, whole, and the key's order is read.
        assert replay == ["WITH", "SELECT"]
    else:
        assert new_purchase == [
            "SELECT",
            "UPDATE",
            "UPDATE",
            "INSERT",
            "INSERT",
            "UPDATE",
            "INSERT",
            "INSERT",
            "INSERT",
        ]
        assert replay == ["SELECT", "UPDATE", "UPDATE", "INSERT", "SELECT"]
    # (The webhooks plugin reads which event types webhooks want on an engine of its own, at most
    # once every webhooks.subscriptions_ttl_seconds: tests/test_webhooks_delivery.py.)
    assert first_of_the_process == new_purchase
