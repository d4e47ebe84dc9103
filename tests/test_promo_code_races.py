"""Promo codes under concurrency, on PostgreSQL with real threads: a code's uses are never
exceeded, taken in the same statement as the tickets; and what a purchase with a code costs in
statements (one more than without: the code's look-up)."""

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from webtest import TestApp

from ticketing import main
from ticketing.interfaces import IPaymentGateway
from ticketing.models import Order, OrderStatus, PromoCode

from .conftest import app_settings
from .factories import create_event
from .holds import assert_books
from .test_purchase_concurrency import buy, run_at_once
from .test_purchase_statements import recorded_statements


@pytest.fixture
def app(pg_engine):
    # Emails queued, not sent inline (as tests/test_ticket_type_concurrency.py says why).
    return main({}, **app_settings(pg_engine, **{"huey.immediate": "false"}))


@pytest.fixture
def gateway(app):
    return app.registry.getUtility(IPaymentGateway)


def add_code(app, event, **fields):
    body = {"code": "FIVE", "discount": {"type": "percent", "value": "20"}, **fields}
    return TestApp(app).post_json(f"/api/events/{event.id}/promo-codes", {"promo_code": body})


def uses_of(engine, code_id):
    with Session(engine) as session:
        return session.get(PromoCode, code_id).uses


def test_thirty_buyers_for_a_code_of_five_uses_make_exactly_five_discounted_orders(
    app, pg_engine, gateway
):
    event = create_event(pg_engine, total_tickets=100)
    code_id = add_code(app, event, max_uses=5).json["data"]["id"]

    responses = run_at_once(
        30, lambda n: buy(app, event, idempotency_key=f"buyer-{n}", promo_code="five")
    )

    statuses = [response.status_int for response in responses]
    assert statuses.count(201) == 5
    assert statuses.count(409) == 25
    assert {r.json["code"] for r in responses if r.status_int == 409} == {"promo_code_exhausted"}
    with Session(pg_engine) as session:
        discounted = session.scalars(
            select(Order.total_amount_cents).where(Order.status == OrderStatus.CONFIRMED)
        ).all()
    assert discounted == [4000] * 5
    assert uses_of(pg_engine, uuid.UUID(code_id)) == 5
    assert_books(pg_engine, gateway)


def test_holds_racing_purchases_for_the_last_uses_never_exceed_them(app, pg_engine, gateway):
    event = create_event(pg_engine, total_tickets=100)
    add_code(app, event, max_uses=4)

    def one_buyer(number):
        path = "orders" if number % 2 else "purchase"
        order = {
            "customer_email": "buyer@example.com",
            "customer_name": "Buyer",
            "quantity": 1,
            "promo_code": "FIVE",
        }
        return TestApp(app).post_json(
            f"/api/events/{event.id}/{path}", {"order": order}, status="*"
        )

    responses = run_at_once(20, one_buyer)

    assert sorted(r.status_int for r in responses).count(201) == 4
    assert_books(pg_engine, gateway)


def purchase_with_code(testapp, event, key):
    order = {
        "customer_email": "a@example.com",
        "customer_name": "A",
        "quantity": 1,
        "idempotency_key": key,
        "promo_code": "five",
    }
    return testapp.post_json(f"/api/events/{event.id}/purchase", {"order": order}, status=201)


def test_a_purchase_with_a_code_reads_its_key_and_its_code_first(dbengine):
    testapp = TestApp(main({}, **app_settings(dbengine, **{"huey.immediate": "false"})))
    event, another = create_event(dbengine), create_event(dbengine)
    for each in (event, another):
        add_code(testapp.app, each)
    purchase_with_code(testapp, another, "the-process-s-first")

    in_autocommit = []
    with recorded_statements(dbengine, in_autocommit) as new_purchase:
        bought = purchase_with_code(testapp, event, "count-me")

    # look up the key (a retry must replay though its first attempt took the code's last use);
    # look up the code; take the tickets and the code's use (a conditional UPDATE of its row
    # inside the reserving statement) and insert the order; confirm it.
    if dbengine.dialect.name == "postgresql":
        assert new_purchase == ["SELECT", "SELECT", "WITH", "WITH"]
        assert in_autocommit == [True] * 4
    else:
        assert new_purchase == [
            "SELECT",
            "SELECT",
            "SELECT",
            "UPDATE",
            "UPDATE",
            "UPDATE",
            "INSERT",
            "INSERT",
            "UPDATE",
            "INSERT",
            "INSERT",
            "INSERT",
        ]
    assert bought.json["data"]["discount_total"] == "10.00"


def test_purchases_racing_an_organiser_s_change_to_their_code_all_go_through(
    app, pg_engine, gateway
):
    event = create_event(pg_engine, total_tickets=100)
    code_id = add_code(app, event).json["data"]["id"]
    organiser = TestApp(app)

    def one_request(number):
        if number == 0:
            body = {"promo_code": {"discount": {"type": "percent", "value": "25"}}}
            return organiser.put_json(
                f"/api/events/{event.id}/promo-codes/{code_id}", body, status="*"
            )
        return buy(app, event, idempotency_key=f"buyer-{number}", promo_code="five")

    responses = run_at_once(30, one_request)

    assert sorted({r.status_int for r in responses}) == [200, 201]
    with Session(pg_engine) as session:
        totals = set(
            session.scalars(
                select(Order.total_amount_cents).where(Order.status == OrderStatus.CONFIRMED)
            )
        )
    assert totals <= {4000, 3750}
    assert uses_of(pg_engine, uuid.UUID(code_id)) == 29
    assert_books(pg_engine, gateway)
