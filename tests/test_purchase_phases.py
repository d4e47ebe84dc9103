"""The purchase's phases, each made to fail, and the sweep that settles what a crash left pending.
Below HTTP: the domain functions with a session, a transaction manager and the mock gateway."""

import datetime as dt

import pytest
import transaction
from sqlalchemy.exc import DataError
from sqlalchemy.orm import sessionmaker

from ticketing.adapters.payments import MockPaymentGateway
from ticketing.domain import orders
from ticketing.domain.errors import PaymentUnavailable
from ticketing.domain.tickets import TicketCodes
from ticketing.models import OrderStatus, get_tm_session

from .conftest import TEST_TICKET_SECRET
from .factories import assert_books_balance, create_event, load_event, load_order, orders_of
from .gateways import OverlongReferenceGateway

NOW = dt.datetime.now(dt.UTC)
CODES = TicketCodes(TEST_TICKET_SECRET)
LATER = NOW + orders.STALE_AFTER + dt.timedelta(seconds=1)


def session_on(engine, tm):
    return get_tm_session(sessionmaker(bind=engine, expire_on_commit=False), tm)


def a_purchase(event, **fields):
    values = {
        "event_id": event.id,
        "customer_email": "ann@example.com",
        "customer_name": "Ann",
        "quantity": 2,
        "idempotency_key": "key-1",
    }
    values.update(fields)
    return orders.PurchaseRequest(**values)


def reserve_and_crash(engine, tm, event, **fields):
    """Phase 1 commits, then the process dies before it charges or confirms."""
    dbsession = session_on(engine, tm)
    order = orders._reserve(dbsession, a_purchase(event, **fields), NOW)
    tm.commit()
    tm.begin()
    return order


def test_a_pending_order_without_a_charge_is_failed_and_released(dbengine, tm):
    gateway = MockPaymentGateway()
    event = create_event(dbengine, total_tickets=10)
    order = reserve_and_crash(dbengine, tm, event)
    assert load_event(dbengine, event.id).available_tickets == 8

    report = orders.settle_stale_pending_orders(
        session_on(dbengine, tm), tm, gateway, now=LATER, ticket_codes=CODES
    )

    assert (report.confirmed, report.failed, report.unresolved) == (0, 1, 0)
    assert load_order(dbengine, order.id).status == OrderStatus.FAILED
    assert load_event(dbengine, event.id).available_tickets == 10
    assert_books_balance(dbengine, gateway)


def test_a_pending_order_whose_charge_went_through_is_confirmed(dbengine, tm):
    gateway = MockPaymentGateway()
    event = create_event(dbengine, total_tickets=10)
    order = reserve_and_crash(dbengine, tm, event)
    charge = gateway.charge(10000, "USD", order.charge_idempotency_key, "", {})

    report = orders.settle_stale_pending_orders(
        session_on(dbengine, tm), tm, gateway, now=LATER, ticket_codes=CODES
    )

    assert (report.confirmed, report.failed) == (1, 0)
    settled = load_order(dbengine, order.id)
    assert settled.status == OrderStatus.CONFIRMED
    assert settled.payment_reference == charge.id
    assert load_event(dbengine, event.id).available_tickets == 8
    assert_books_balance(dbengine, gateway)


def test_a_pending_order_whose_charge_was_refunded_is_released(dbengine, tm):
    gateway = MockPaymentGateway()
    event = create_event(dbengine, total_tickets=10)
    order = reserve_and_crash(dbengine, tm, event)
    charge = gateway.charge(10000, "USD", order.charge_idempotency_key, "", {})
    gateway.refund(charge.id, order.refund_idempotency_key)

    orders.settle_stale_pending_orders(
        session_on(dbengine, tm), tm, gateway, now=LATER, ticket_codes=CODES
    )

    assert load_order(dbengine, order.id).status == OrderStatus.FAILED
    assert_books_balance(dbengine, gateway)


def test_the_sweep_leaves_what_the_gateway_cannot_answer_for_and_fresh_orders(dbengine, tm):
    gateway = MockPaymentGateway(lookup_failure_mode="timeout")
    event = create_event(dbengine, total_tickets=10)
    stale = reserve_and_crash(dbengine, tm, event)

    report = orders.settle_stale_pending_orders(
        session_on(dbengine, tm), tm, gateway, now=LATER, ticket_codes=CODES
    )
    assert report.unresolved == 1
    assert load_order(dbengine, stale.id).status == OrderStatus.PENDING

    gateway.configure()
    fresh_report = orders.settle_stale_pending_orders(
        session_on(dbengine, tm), tm, gateway, now=NOW, ticket_codes=CODES
    )
    assert (fresh_report.confirmed, fresh_report.failed) == (0, 0)
    assert load_order(dbengine, stale.id).status == OrderStatus.PENDING

    orders.settle_stale_pending_orders(
        session_on(dbengine, tm), tm, gateway, now=LATER, ticket_codes=CODES
    )
    assert load_order(dbengine, stale.id).status == OrderStatus.FAILED
    assert_books_balance(dbengine, gateway)


def test_a_confirmation_that_fails_after_the_charge_is_refunded(pg_engine, tm):
    # PostgreSQL refuses the over-long payment reference, so the confirm phase fails after the
    # money was taken.
    gateway = OverlongReferenceGateway()
    event = create_event(pg_engine, total_tickets=10)

    with pytest.raises(DataError):
        orders.purchase_tickets(
            session_on(pg_engine, tm), tm, gateway, a_purchase(event), now=NOW, ticket_codes=CODES
        )

    [order] = orders_of(pg_engine)
    assert order.status == OrderStatus.FAILED
    assert order.failure_code == "confirmation_failed"
    assert gateway.kept_charges() == []
    assert load_event(pg_engine, event.id).available_tickets == 10
    assert_books_balance(pg_engine, gateway)


def test_an_order_settled_by_the_sweep_during_its_charge_is_refunded(dbengine, tm):
    event = create_event(dbengine, total_tickets=10)
    dbsession = session_on(dbengine, tm)

    class SweepDuringChargeGateway(MockPaymentGateway):
        def charge(self, *args, **kwargs):
            # The sweep runs (with a clock far ahead) while this charge is under way.
            sweep_tm = transaction.TransactionManager(explicit=True)
            sweep_tm.begin()
            orders.settle_stale_pending_orders(
                session_on(dbengine, sweep_tm),
                sweep_tm,
                MockPaymentGateway(),
                now=LATER,
                ticket_codes=CODES,
            )
            sweep_tm.abort()
            return super().charge(*args, **kwargs)

    gateway = SweepDuringChargeGateway()
    with pytest.raises(PaymentUnavailable):
        orders.purchase_tickets(
            dbsession, tm, gateway, a_purchase(event), now=NOW, ticket_codes=CODES
        )

    [order] = orders_of(dbengine)
    assert order.status == OrderStatus.FAILED
    assert gateway.kept_charges() == []
    assert load_event(dbengine, event.id).available_tickets == 10
    assert_books_balance(dbengine, gateway)
