"""Ticket types under concurrency, on PostgreSQL with real threads: no type sold past its own
capacity, no event past its own, never a partial order, books balanced per type and event."""

import pytest
from sqlalchemy.orm import Session
from webtest import TestApp

from ticketing import main
from ticketing.interfaces import IPaymentGateway
from ticketing.models import OrderStatus, TicketType

from .conftest import app_settings
from .factories import (
    assert_books_balance,
    create_event,
    create_ticket_type,
    load_event,
    orders_of,
)
from .test_purchase_concurrency import buy, run_at_once


@pytest.fixture
def app(pg_engine):
    # Emails queued, not sent inline: an inline job wants a second connection while its request
    # holds one, and 30 such threads would drain the test engine's pool of 15.
    return main({}, **app_settings(pg_engine, **{"huey.immediate": "false"}))


@pytest.fixture
def gateway(app):
    return app.registry.getUtility(IPaymentGateway)


def buy_items(wsgi_app, event, items, idempotency_key):
    order = {
        "customer_email": "buyer@example.com",
        "customer_name": "Buyer",
        "items": [{"ticket_type_id": str(t.id), "quantity": quantity} for t, quantity in items],
        "idempotency_key": idempotency_key,
    }
    return TestApp(wsgi_app).post_json(
        f"/api/events/{event.id}/purchase", {"order": order}, status="*"
    )


def sold_of(engine, ticket_type):
    with Session(engine) as session:
        return session.get(TicketType, ticket_type.id).sold


def test_sixty_buyers_over_two_types_sell_exactly_the_event(app, pg_engine, gateway):
    event = create_event(pg_engine, total_tickets=10)
    capped = create_ticket_type(pg_engine, event, name="A", capacity=6)
    open_ended = event.ticket_types[0]  # capacity None: limited by the event alone

    def one_buyer(number):
        chosen = capped if number % 2 else open_ended
        return buy(app, event, ticket_type_id=str(chosen.id), idempotency_key=f"b-{number}")

    responses = run_at_once(60, one_buyer)

    statuses = [response.status_int for response in responses]
    assert statuses.count(201) == 10
    assert statuses.count(409) == 50
    assert {r.json["code"] for r in responses if r.status_int == 409} == {"insufficient_tickets"}
    assert sold_of(pg_engine, capped) <= 6
    assert sold_of(pg_engine, capped) + sold_of(pg_engine, open_ended) == 10
    assert load_event(pg_engine, event.id).available_tickets == 0
    assert_books_balance(pg_engine, gateway)


def test_multi_item_orders_racing_single_ones_are_never_partial(app, pg_engine, gateway):
    event = create_event(pg_engine, total_tickets=20)
    vip = create_ticket_type(pg_engine, event, name="VIP", capacity=5)
    standard = event.ticket_types[0]
    balcony = create_ticket_type(pg_engine, event, name="Balcony", capacity=8)
    kinds = [
        [(vip, 2), (standard, 2)],
        [(balcony, 3), (vip, 1)],
        [(standard, 1), (balcony, 2), (vip, 1)],
        [(vip, 1)],
        [(balcony, 2)],
        [(standard, 3)],
    ]

    def one_buyer(number):
        return buy_items(app, event, kinds[number % len(kinds)], f"m-{number}")

    responses = run_at_once(40, one_buyer)

    assert {response.status_int for response in responses} <= {201, 409}
    confirmed = [o for o in orders_of(pg_engine) if o.status == OrderStatus.CONFIRMED]
    assert len(confirmed) == [r.status_int for r in responses].count(201) > 0
    for order in confirmed:
        wanted = kinds[int(order.idempotency_key.split("-")[1]) % len(kinds)]
        assert {(i.ticket_type_id, i.quantity) for i in order.items} == {
            (ticket_type.id, quantity) for ticket_type, quantity in wanted
        }
    assert sold_of(pg_engine, vip) <= 5 and sold_of(pg_engine, balcony) <= 8
    assert_books_balance(pg_engine, gateway)


@pytest.mark.parametrize("first", ["vip", "standard"])
def test_opposite_item_orders_do_not_deadlock(app, pg_engine, gateway, first):
    """Orders naming the same two types in opposite orders: locks are always taken event first,
    then types by id, so none waits on another for ever."""
    event = create_event(pg_engine, total_tickets=200)
    vip = create_ticket_type(pg_engine, event, name="VIP")
    standard = event.ticket_types[0]
    pair = [vip, standard] if first == "vip" else [standard, vip]

    def one_buyer(number):
        ordered = pair if number % 2 else pair[::-1]
        return buy_items(app, event, [(t, 1) for t in ordered], f"d-{number}")

    responses = run_at_once(30, one_buyer)

    assert [response.status_int for response in responses] == [201] * 30
    assert load_event(pg_engine, event.id).available_tickets == 140
    assert_books_balance(pg_engine, gateway)
