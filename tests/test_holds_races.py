"""Races of asynchronous payments on PostgreSQL, with real threads, each with its own session
(requests through the app, the job in a transaction of its own): one outcome every time, and
the books balanced."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from webtest import TestApp

from ticketing import main
from ticketing.domain import holds
from ticketing.interfaces import IPaymentGateway
from ticketing.jobs.tasks import job_transaction
from ticketing.models import StripeEvent

from .conftest import app_settings
from .factories import create_event, load_event, load_order
from .holds import (
    THREE_D_SECURE,
    assert_books,
    confirmation_emails,
    later,
    pay,
    post_stripe_event,
    reserve,
)
from .test_holds import _awaiting_then_paid_at_the_gateway
from .test_purchase_concurrency import run_at_once

ROUNDS = 5


@pytest.fixture
def app(pg_engine):
    return main({}, **app_settings(pg_engine))


@pytest.fixture
def gateway(app):
    return app.registry.getUtility(IPaymentGateway)


def expire_now(app):
    with job_transaction(app.registry["dbsession_factory"]) as (dbsession, tm):
        return holds.expire_holds(
            dbsession, tm, app.registry.getUtility(IPaymentGateway), now=later(16),
            hold_for=app.registry["hold_for"], ticket_codes=app.registry["ticket_codes"],
        )  # fmt: skip


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_succeeded_webhook_against_the_expiry_job_has_one_outcome(
    app, pg_engine, gateway, round_
):
    event = create_event(pg_engine, total_tickets=4)
    order_id, succeeded = _awaiting_then_paid_at_the_gateway(app, TestApp(app), gateway, event, 2)

    def race(number):
        if number == 0:
            return post_stripe_event(TestApp(app), succeeded).json["outcome"]
        return expire_now(app)

    run_at_once(2, race)

    # The tickets were still there: whoever came first, the money buys them.
    assert load_order(pg_engine, order_id).status == "confirmed"
    assert confirmation_emails(pg_engine, order_id) == ["order_confirmation"]
    assert load_event(pg_engine, event.id).available_tickets == 2
    assert_books(pg_engine, gateway)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_succeeded_webhook_against_the_job_when_the_tickets_go_meanwhile(
    app, pg_engine, gateway, round_
):
    """The job expires the hold and another buyer takes the tickets at once: the money is
    refunded, or the order confirmed if the webhook won; never both, never neither."""
    event = create_event(pg_engine, total_tickets=2)
    order_id, succeeded = _awaiting_then_paid_at_the_gateway(app, TestApp(app), gateway, event, 2)

    def race(number):
        if number == 0:
            return post_stripe_event(TestApp(app), succeeded).json["outcome"]
        if number == 1:
            return expire_now(app)
        return reserve(TestApp(app), event, "*", quantity=2).status_int

    run_at_once(3, race)

    order = load_order(pg_engine, order_id)
    assert (order.status, order.failure_code) in {
        ("confirmed", None),
        ("failed", "hold_expired_refunded"),
    }
    assert_books(pg_engine, gateway)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_copies_of_one_webhook_at_once_confirm_once_and_email_once(
    app, pg_engine, gateway, round_
):
    event = create_event(pg_engine, total_tickets=4)
    order_id, succeeded = _awaiting_then_paid_at_the_gateway(app, TestApp(app), gateway, event, 1)

    outcomes = run_at_once(3, lambda _: post_stripe_event(TestApp(app), succeeded).json["outcome"])

    assert outcomes.count("confirmed") == 1
    assert load_order(pg_engine, order_id).status == "confirmed"
    assert confirmation_emails(pg_engine, order_id) == ["order_confirmation"]
    with Session(pg_engine) as session:
        assert session.scalar(select(func.count()).select_from(StripeEvent)) == 1
    assert_books(pg_engine, gateway)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_pay_retried_while_the_webhook_lands_keeps_one_charge(app, pg_engine, gateway, round_):
    event = create_event(pg_engine, total_tickets=4)
    order_id, succeeded = _awaiting_then_paid_at_the_gateway(app, TestApp(app), gateway, event, 2)

    def race(number):
        if number == 0:
            return post_stripe_event(TestApp(app), succeeded).status_int
        return pay(TestApp(app), order_id, THREE_D_SECURE, status="*").status_int

    statuses = run_at_once(3, race)

    assert set(statuses) <= {200, 409}  # a pay that meets the webhook mid-way: try again
    assert pay(TestApp(app), order_id, THREE_D_SECURE).json["data"]["status"] == "confirmed"
    assert confirmation_emails(pg_engine, order_id) == ["order_confirmation"]
    assert len(gateway.kept_charges()) == 1
    assert_books(pg_engine, gateway)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_paying_one_hold_twice_at_once_charges_once(app, pg_engine, gateway, round_):
    event = create_event(pg_engine, total_tickets=4)
    hold = reserve(TestApp(app), event, quantity=2).json["data"]

    statuses = run_at_once(3, lambda _: pay(TestApp(app), hold["id"], status="*").status_int)

    assert 200 in statuses and set(statuses) <= {200, 409}
    assert [call[0] for call in gateway.calls].count("charge") == 1
    assert_books(pg_engine, gateway)
