"""Concurrency on PostgreSQL with real threads: no oversell, no double charge, no double refund,
and no inventory lock held across the payment call."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from webtest import TestApp

from ticketing import main
from ticketing.interfaces import IPaymentGateway
from ticketing.models import OrderStatus

from .conftest import app_settings
from .factories import assert_books_balance, create_event, load_event, orders_of
from .gateways import GatedPaymentGateway


@pytest.fixture
def app(pg_engine):
    return main({}, **app_settings(pg_engine))


@pytest.fixture
def gateway(app):
    return app.registry.getUtility(IPaymentGateway)


def run_at_once(count, request):
    """Run ``request(number)`` on ``count`` threads released together; return the responses."""
    barrier = threading.Barrier(count)

    def go(number):
        barrier.wait()
        return request(number)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(go, range(count)))


def buy(app, event, status="*", **fields):
    order = {"customer_email": "buyer@example.com", "customer_name": "Buyer", "quantity": 1}
    order.update(fields)
    return TestApp(app).post_json(
        f"/api/events/{event.id}/purchase", {"order": order}, status=status
    )


def test_fifty_buyers_for_the_last_ten_tickets(app, pg_engine, gateway):
    event = create_event(pg_engine, total_tickets=10)
    responses = run_at_once(50, lambda n: buy(app, event, idempotency_key=f"buyer-{n}"))

    statuses = sorted(response.status_int for response in responses)
    assert statuses.count(201) == 10
    assert statuses.count(409) == 40
    assert all(r.json["code"] == "insufficient_tickets" for r in responses if r.status_int == 409)
    assert load_event(pg_engine, event.id).available_tickets == 0
    confirmed = [o for o in orders_of(pg_engine) if o.status == OrderStatus.CONFIRMED]
    assert len(confirmed) == 10
    assert_books_balance(pg_engine, gateway)


def test_twenty_simultaneous_requests_with_one_key_make_one_order(app, pg_engine, gateway):
    event = create_event(pg_engine, total_tickets=50)
    responses = run_at_once(20, lambda n: buy(app, event, quantity=2, idempotency_key="same"))

    statuses = [response.status_int for response in responses]
    assert statuses.count(201) == 1
    assert set(statuses) <= {201, 200, 409}
    for response in responses:
        if response.status_int == 409:
            assert response.json["code"] == "request_in_progress"
            assert response.headers["Retry-After"]
        if response.status_int == 200:
            assert response.headers["Idempotent-Replayed"] == "true"
    assert len(orders_of(pg_engine)) == 1
    assert [call[0] for call in gateway.calls].count("charge") == 1
    assert load_event(pg_engine, event.id).available_tickets == 48
    assert_books_balance(pg_engine, gateway)


def test_ten_simultaneous_cancels_refund_once(app, pg_engine, gateway):
    event = create_event(pg_engine, total_tickets=10)
    order = buy(app, event, quantity=4, status=201).json["data"]

    responses = run_at_once(
        10, lambda n: TestApp(app).post(f"/api/orders/{order['id']}/cancel", status="*")
    )

    statuses = sorted(response.status_int for response in responses)
    assert statuses == [200] + [409] * 9
    assert [call[0] for call in gateway.calls].count("refund") == 1
    assert load_event(pg_engine, event.id).available_tickets == 10
    assert_books_balance(pg_engine, gateway)


def test_a_slow_payment_does_not_hold_the_inventory_lock(app, pg_engine):
    gated = GatedPaymentGateway()
    app.registry.registerUtility(gated, IPaymentGateway)
    event = create_event(pg_engine, total_tickets=10)

    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(buy, app, event, idempotency_key="slow", status=201)
        assert gated.holding.wait(timeout=10), "the first purchase never reached the gateway"
        # The first purchase is inside its payment call; the event row must be free.
        fast = buy(app, event, quantity=2, idempotency_key="fast", status=201)
        assert not slow.done()
        gated.release.set()
        slow_response = slow.result(timeout=10)

    assert fast.json["data"]["status"] == "confirmed"
    assert slow_response.json["data"]["status"] == "confirmed"
    assert load_event(pg_engine, event.id).available_tickets == 7
    assert_books_balance(pg_engine, gated)
