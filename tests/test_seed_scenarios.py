"""The scenarios the original system names, each ending with the books balanced. (Event
completion belongs to the background jobs and is tested with them.)"""

import pytest
from webtest import TestApp

from ticketing import main
from ticketing.interfaces import IPaymentGateway

from .conftest import app_settings
from .factories import assert_books_balance, create_event, load_event
from .test_purchase_concurrency import run_at_once


def buy(testapp, event, status, **fields):
    order = {"customer_email": "a@example.com", "customer_name": "A", "quantity": 1}
    order.update(fields)
    return testapp.post_json(f"/api/events/{event.id}/purchase", {"order": order}, status=status)


def test_scenario_concurrent_purchase(pg_engine):
    """Two users try to buy the last ticket at the same moment: one gets it."""
    app = main({}, **app_settings(pg_engine))
    gateway = app.registry.getUtility(IPaymentGateway)
    event = create_event(pg_engine, total_tickets=1)

    responses = run_at_once(2, lambda n: buy(TestApp(app), event, "*", idempotency_key=f"u{n}"))

    assert sorted(r.status_int for r in responses) == [201, 409]
    refused = next(r for r in responses if r.status_int == 409)
    assert refused.json["code"] == "insufficient_tickets"
    assert load_event(pg_engine, event.id).available_tickets == 0
    assert_books_balance(pg_engine, gateway)


def test_scenario_failed_notification(testapp, dbengine, gateway, mailer):
    """The email service is down when the order is placed. Unlike the original, which rolled the
    whole purchase back, the paid order stands: the confirmation email is the background job's
    to deliver, with retries, and a mail outage must not cancel a sale that was paid for."""
    mailer.configure(failure_mode="server_error")
    event = create_event(dbengine, total_tickets=10)

    order = buy(testapp, event, 201, quantity=2).json["data"]

    assert order["status"] == "confirmed"
    assert load_event(dbengine, event.id).available_tickets == 8
    assert mailer.outbox == []
    assert_books_balance(dbengine, gateway)


def test_scenario_invalid_purchase(testapp, dbengine, gateway):
    """More tickets than are left: a clear error, nothing reserved, nothing charged."""
    event = create_event(dbengine, total_tickets=5)

    too_many = buy(testapp, event, 409, quantity=6)
    assert too_many.json["code"] == "insufficient_tickets"
    over_the_limit = buy(testapp, event, 400, quantity=1000)
    assert over_the_limit.json["errors"][0]["field"] == "order.quantity"

    assert load_event(dbengine, event.id).available_tickets == 5
    assert gateway.calls == []
    assert_books_balance(dbengine, gateway)


@pytest.mark.parametrize("mode", ["timeout", "server_error"])
def test_scenario_external_service_timeout(testapp, dbengine, gateway, mode):
    """The payment service times out: the tickets come back and no money is kept."""
    gateway.configure(failure_mode=mode)
    event = create_event(dbengine, total_tickets=10)

    response = buy(testapp, event, 503, quantity=3)

    assert response.json["code"] == "payment_unavailable"
    assert load_event(dbengine, event.id).available_tickets == 10
    assert_books_balance(dbengine, gateway)
