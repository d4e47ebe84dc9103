"""Holds and asynchronous payments with the mock gateway, on SQLite and PostgreSQL: reserve,
pay (at once, or after 3-D Secure confirmed by the webhook), release, expire, pay late; each
test ends with the books checked (tests/holds.py)."""

import datetime as dt
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.adapters import mock_webhooks
from ticketing.domain import holds, orders, payments_async
from ticketing.interfaces import IPaymentGateway
from ticketing.jobs.tasks import job_transaction
from ticketing.models import EmailKind, StripeEvent
from ticketing.models.types import utcnow

from .factories import create_event, create_ticket_type, load_event, load_order
from .holds import (
    THREE_D_SECURE,
    assert_books,
    complete_payment_action,
    confirmation_emails,
    emails_of,
    later,
    logged_events,
    order_body,
    pay,
    post_stripe_event,
    reserve,
)


def run_expiry(app, now):
    """The hold-expiry job's work at ``now``, in a transaction of its own as the job's."""
    with job_transaction(app.registry["dbsession_factory"]) as (dbsession, tm):
        return holds.expire_holds(
            dbsession,
            tm,
            gateway_of(app),
            now=now,
            hold_for=app.registry["hold_for"],
            ticket_codes=app.registry["ticket_codes"],
        )


def gateway_of(app):
    return app.registry.getUtility(IPaymentGateway)


# --- reserving ------------------------------------------------------------------------------------


def test_a_hold_takes_the_tickets_until_it_expires_and_charges_nothing(testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=10)
    before = utcnow()

    response = reserve(testapp, event, quantity=3, idempotency_key="hold-1")

    hold = response.json["data"]
    assert hold["status"] == "reserved"
    assert response.location.endswith(f"/api/orders/{hold['id']}")
    expires_at = dt.datetime.fromisoformat(hold["expires_at"])
    assert before + dt.timedelta(minutes=15) <= expires_at <= utcnow() + dt.timedelta(minutes=15)
    left = testapp.get(f"/api/events/{event.id}/availability").json["data"]
    assert left["event"] == {
        "capacity": 10,
        "sold": 0,
        "held": 3,
        "set_aside": 0,
        "offered": 0,
        "waiting": 0,
        "available": 7,
    }
    assert left["ticket_types"][0]["held"] == 3
    assert gateway.calls == []
    assert testapp.get(f"/api/orders/{hold['id']}").json["data"]["expires_at"] == hold["expires_at"]
    assert_books(dbengine, gateway)


def test_a_hold_replays_with_its_key(testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=10)
    first = reserve(testapp, event, quantity=2, idempotency_key="hold-1").json["data"]

    again = reserve(testapp, event, 200, quantity=2, idempotency_key="hold-1")

    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["data"]["id"] == first["id"]
    # The same key for a purchase is another request.
    body = order_body(quantity=2, idempotency_key="hold-1")
    reused = testapp.post_json(f"/api/events/{event.id}/purchase", body, status=422)
    assert reused.json["code"] == "idempotency_key_reused"
    assert load_event(dbengine, event.id).available_tickets == 8
    assert_books(dbengine, gateway)


def test_the_hold_length_is_a_setting(dbengine):
    from webtest import TestApp

    from ticketing import main

    from .conftest import app_settings

    app = main({}, **app_settings(dbengine, **{"ticketing.hold_minutes": "30"}))
    event = create_event(dbengine)
    hold = reserve(TestApp(app), event).json["data"]
    expires_at = dt.datetime.fromisoformat(hold["expires_at"])
    assert expires_at - utcnow() > dt.timedelta(minutes=29)
    assert_books(dbengine, gateway_of(app))


def test_a_hold_of_more_than_is_left_is_refused(testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=2)
    refused = reserve(testapp, event, 409, quantity=3)
    assert refused.json["code"] == "insufficient_tickets"
    assert_books(dbengine, gateway)


# --- paying ---------------------------------------------------------------------------------------


def test_paying_a_hold_confirms_it_and_owes_one_email(testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=10)
    hold = reserve(testapp, event, quantity=2).json["data"]

    paid = pay(testapp, hold["id"]).json["data"]

    assert paid["status"] == "confirmed" and paid["expires_at"] is None
    assert confirmation_emails(dbengine, uuid.UUID(hold["id"])) == ["order_confirmation"]
    # Paying again is an answer, not a second charge.
    again = pay(testapp, hold["id"])
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [call[0] for call in gateway.calls] == ["charge"]
    left = testapp.get(f"/api/events/{event.id}/availability").json["data"]["event"]
    assert left == {
        "capacity": 10,
        "sold": 2,
        "held": 0,
        "set_aside": 0,
        "offered": 0,
        "waiting": 0,
        "available": 8,
    }
    assert_books(dbengine, gateway)


def test_a_declined_card_leaves_the_hold_for_another_card(testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=10)
    hold = reserve(testapp, event, quantity=2).json["data"]
    gateway.configure(failure_mode="card_declined")

    declined = pay(testapp, hold["id"], status=402)

    assert declined.json["code"] == "payment_declined"
    order = load_order(dbengine, uuid.UUID(hold["id"]))
    assert (order.status, order.failure_code) == ("reserved", "payment_declined")
    assert load_event(dbengine, event.id).available_tickets == 8
    gateway.configure()
    assert pay(testapp, hold["id"]).json["data"]["status"] == "confirmed"
    # Each attempt its own charge key: the second card is a payment of its own.
    keys = [call[1] for call in gateway.calls if call[0] == "charge"]
    assert keys == [f"order-{hold['id']}-charge", f"order-{hold['id']}-charge-2"]
    assert_books(dbengine, gateway)


def test_a_card_needing_3d_secure_awaits_the_buyer_then_the_webhook_confirms(
    app, testapp, dbengine, gateway
):
    event = create_event(dbengine, total_tickets=10)
    hold = reserve(testapp, event, quantity=2).json["data"]

    waiting = pay(testapp, hold["id"], THREE_D_SECURE, status=202)

    assert waiting.json["data"]["status"] == "awaiting_action"
    payment = waiting.json["payment"]
    assert payment["status"] == "requires_action"
    assert payment["client_secret"] and payment["next_action"] == {"type": "use_stripe_sdk"}
    # Asked again (the buyer's page reloaded), the same payment to finish.
    assert pay(testapp, hold["id"], THREE_D_SECURE, status=202).json["payment"] == payment
    assert testapp.get(f"/api/events/{event.id}/availability").json["data"]["event"]["held"] == 2
    assert gateway.kept_charges() == []

    delivered = complete_payment_action(app, gateway, hold["id"])

    assert delivered.status_int == 200 and delivered.json["outcome"] == "confirmed"
    order = load_order(dbengine, uuid.UUID(hold["id"]))
    assert order.status == "confirmed" and order.confirmed_at is not None
    assert confirmation_emails(dbengine, order.id) == ["order_confirmation"]
    assert logged_events(dbengine, order.id) == [("order.confirmed", "confirmed")]
    assert_books(dbengine, gateway)


def test_a_failed_authentication_leaves_the_hold_for_another_card(app, testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=10)
    hold = reserve(testapp, event, quantity=1).json["data"]
    pay(testapp, hold["id"], THREE_D_SECURE, status=202)

    delivered = complete_payment_action(app, gateway, hold["id"], succeed=False)

    assert delivered.json["outcome"] == "back_to_hold"
    order = load_order(dbengine, uuid.UUID(hold["id"]))
    assert (order.status, order.failure_code) == ("reserved", "payment_failed")
    assert load_event(dbengine, event.id).available_tickets == 9
    assert pay(testapp, hold["id"]).json["data"]["status"] == "confirmed"
    assert_books(dbengine, gateway)


def test_the_one_step_purchase_answers_202_when_the_card_needs_3d_secure(
    app, testapp, dbengine, gateway
):
    event = create_event(dbengine, total_tickets=5)
    body = order_body(quantity=2, payment_method=THREE_D_SECURE, idempotency_key="p-1")

    waiting = testapp.post_json(f"/api/events/{event.id}/purchase", body, status=202)

    order = waiting.json["data"]
    assert order["status"] == "awaiting_action" and order["expires_at"] is not None
    assert waiting.json["payment"]["client_secret"]
    # A retry with its key answers the same.
    retried = testapp.post_json(f"/api/events/{event.id}/purchase", body, status=202)
    assert retried.json["payment"] == waiting.json["payment"]
    complete_payment_action(app, gateway, order["id"])
    assert load_order(dbengine, uuid.UUID(order["id"])).status == "confirmed"
    replay = testapp.post_json(f"/api/events/{event.id}/purchase", body, status=200)
    assert replay.json["data"]["status"] == "confirmed"
    assert_books(dbengine, gateway)


# --- releasing and expiring -----------------------------------------------------------------------


def test_releasing_a_hold_gives_its_tickets_back(testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=10)
    hold = reserve(testapp, event, quantity=4).json["data"]

    released = testapp.post(f"/api/orders/{hold['id']}/release").json["data"]

    assert released["status"] == "cancelled" and released["refund_reference"] is None
    assert logged_events(dbengine, hold["id"]) == [("order.cancelled", "cancelled")]
    assert load_event(dbengine, event.id).available_tickets == 10
    again = testapp.post(f"/api/orders/{hold['id']}/release", status=409)
    assert again.json["code"] == "order_not_releasable"
    assert pay(testapp, hold["id"], status=409).json["code"] == "order_not_payable"
    assert gateway.calls == []
    assert_books(dbengine, gateway)


def test_releasing_a_hold_awaiting_3d_secure_cancels_its_payment(app, testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=10)
    hold = reserve(testapp, event, quantity=1).json["data"]
    pay(testapp, hold["id"], THREE_D_SECURE, status=202)

    testapp.post(f"/api/orders/{hold['id']}/release")

    order = load_order(dbengine, uuid.UUID(hold["id"]))
    assert order.status == "cancelled"
    assert gateway.retrieve_payment(order.payment_reference).status == "canceled"
    assert_books(dbengine, gateway)


def test_the_expiry_job_gives_expired_holds_back(app, testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=10)
    hold = reserve(testapp, event, quantity=3).json["data"]
    fresh = reserve(testapp, event, quantity=1).json["data"]
    expires_at = dt.datetime.fromisoformat(hold["expires_at"])

    assert run_expiry(app, expires_at - dt.timedelta(seconds=1)).expired == 0
    report = run_expiry(app, later(16))

    assert report.expired == 2
    for order in (hold, fresh):
        expired = load_order(dbengine, uuid.UUID(order["id"]))
        assert (expired.status, expired.failure_code) == ("expired", "hold_expired")
        assert logged_events(dbengine, expired.id) == [("order.expired", "expired")]
    assert load_event(dbengine, event.id).available_tickets == 10
    assert run_expiry(app, later(17)).expired == 0
    assert_books(dbengine, gateway)


def test_the_expiry_job_runs_every_minute(app, testapp, dbengine, gateway):
    task = app.registry["jobs"].tasks.expire_holds
    assert all(
        task.task_class().validate_datetime(dt.datetime(2030, 1, 1, hour, minute))
        for hour in (0, 13)
        for minute in range(60)
    )
    event = create_event(dbengine, total_tickets=2)
    reserve(testapp, event)
    assert task.call_local() == (0, 0)  # not yet past its time
    assert_books(dbengine, gateway)


def test_an_expired_hold_paid_takes_its_tickets_again_if_they_are_there(
    app, testapp, dbengine, gateway
):
    event = create_event(dbengine, total_tickets=10)
    hold = reserve(testapp, event, quantity=3).json["data"]
    run_expiry(app, later(16))

    paid = pay(testapp, hold["id"]).json["data"]

    assert paid["status"] == "confirmed"
    assert load_event(dbengine, event.id).available_tickets == 7
    assert_books(dbengine, gateway)


def test_an_expired_hold_whose_tickets_are_gone_is_409_and_charges_nothing(
    app, testapp, dbengine, gateway
):
    event = create_event(dbengine, total_tickets=3)
    hold = reserve(testapp, event, quantity=3).json["data"]
    run_expiry(app, later(16))
    reserve(testapp, event, quantity=2)

    refused = pay(testapp, hold["id"], status=409)

    assert refused.json["code"] == "hold_expired"
    assert load_order(dbengine, uuid.UUID(hold["id"])).status == "expired"
    assert [call for call in gateway.calls if call[0] == "charge"] == []
    assert_books(dbengine, gateway)


def test_a_hold_past_its_time_is_expired_by_its_pay_before_the_job_runs(app, dbengine, gateway):
    event = create_event(dbengine, total_tickets=3, ticket_price_cents=1000)
    hold_for = dt.timedelta(minutes=15)
    purchase = orders.PurchaseRequest(
        event_id=event.id, customer_email="a@example.com", customer_name="A", quantity=3, hold=True
    )
    with job_transaction(app.registry["dbsession_factory"]) as (dbsession, tm):
        hold = holds.reserve(dbsession, tm, purchase, now=later(-20), hold_for=hold_for).order
        result = payments_async.pay_hold(
            dbsession,
            tm,
            gateway,
            hold.id,
            None,
            now=utcnow(),
            hold_for=hold_for,
            ticket_codes=app.registry["ticket_codes"],
        )
    assert result.order.status == "confirmed"
    assert load_order(dbengine, hold.id).status == "confirmed"
    assert_books(dbengine, gateway)


# --- money that arrives late ----------------------------------------------------------------------


def _awaiting_then_paid_at_the_gateway(app, testapp, gateway, event, quantity):
    """An order awaiting 3-D Secure whose buyer finished it (the money is taken) but whose
    webhook has not arrived yet; returns (order id, the webhook event to deliver)."""
    hold = reserve(testapp, event, quantity=quantity).json["data"]
    pay(testapp, hold["id"], THREE_D_SECURE, status=202)
    order = load_order(app.registry["dbengine"], uuid.UUID(hold["id"]))
    payment = gateway.complete_action(order.payment_reference, succeed=True)
    return order.id, mock_webhooks.payment_intent_event("payment_intent.succeeded", payment)


def _expire_without_the_job(app, order_id):
    with job_transaction(app.registry["dbsession_factory"]) as (dbsession, _):
        assert holds.expire_hold(dbsession, order_id, now=later(16)) is not None


def test_money_after_expiry_takes_the_tickets_again_when_they_are_there(
    app, testapp, dbengine, gateway
):
    event = create_event(dbengine, total_tickets=5)
    order_id, succeeded = _awaiting_then_paid_at_the_gateway(app, testapp, gateway, event, 2)
    _expire_without_the_job(app, order_id)

    delivered = post_stripe_event(testapp, succeeded)

    assert delivered.json["outcome"] == "confirmed"
    assert load_order(dbengine, order_id).status == "confirmed"
    assert load_event(dbengine, event.id).available_tickets == 3
    assert_books(dbengine, gateway)


def test_money_after_expiry_for_tickets_gone_is_refunded_and_the_buyer_told(
    app, testapp, dbengine, gateway
):
    event = create_event(dbengine, total_tickets=2)
    order_id, succeeded = _awaiting_then_paid_at_the_gateway(app, testapp, gateway, event, 2)
    _expire_without_the_job(app, order_id)
    reserve(testapp, event, quantity=2)  # someone else holds them now

    delivered = post_stripe_event(testapp, succeeded)

    assert delivered.json["outcome"] == "refunded"
    order = load_order(dbengine, order_id)
    assert (order.status, order.failure_code) == ("failed", "hold_expired_refunded")
    assert order.refund_reference is not None
    assert emails_of(dbengine, order_id) == [EmailKind.PAYMENT_REFUNDED]
    # (The expiry is logged at the test's later time, after the refund's.)
    assert sorted(logged_events(dbengine, order_id)) == [
        ("order.expired", "expired"),
        ("order.failed", "failed"),
    ]
    assert gateway.retrieve_payment(order.payment_reference).refunded
    # Delivered again, nothing more happens.
    assert post_stripe_event(testapp, succeeded).json["outcome"] == "duplicate"
    assert_books(dbengine, gateway)


def test_the_expiry_job_settles_a_payment_that_took_money_before_its_cancel(
    app, testapp, dbengine, gateway
):
    event = create_event(dbengine, total_tickets=5)
    order_id, _ = _awaiting_then_paid_at_the_gateway(app, testapp, gateway, event, 2)

    report = run_expiry(app, later(16))

    assert (report.expired, report.paid_meanwhile) == (1, 1)
    assert load_order(dbengine, order_id).status == "confirmed"
    assert_books(dbengine, gateway)


# --- the webhook ----------------------------------------------------------------------------------


def test_a_webhook_with_a_bad_or_old_signature_is_400_and_changes_nothing(
    app, testapp, dbengine, gateway
):
    event = create_event(dbengine, total_tickets=5)
    order_id, succeeded = _awaiting_then_paid_at_the_gateway(app, testapp, gateway, event, 1)

    wrong = post_stripe_event(testapp, succeeded, secret="whsec_someone_else", status=400)
    old = post_stripe_event(
        testapp, succeeded, timestamp=int(utcnow().timestamp()) - 301, status=400
    )
    unsigned = testapp.post("/api/webhooks/stripe", "{}", status=400)

    for refused in (wrong, old, unsigned):
        assert refused.json["code"] == "webhook_signature_invalid"
    assert load_order(dbengine, order_id).status == "awaiting_action"
    with Session(dbengine) as session:
        assert session.scalars(select(StripeEvent)).all() == []
    assert post_stripe_event(testapp, succeeded).json["outcome"] == "confirmed"
    assert_books(dbengine, gateway)


def test_a_redelivered_webhook_does_nothing_more(app, testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=5)
    order_id, succeeded = _awaiting_then_paid_at_the_gateway(app, testapp, gateway, event, 1)

    first = post_stripe_event(testapp, succeeded)
    second = post_stripe_event(testapp, succeeded)

    assert (first.json["outcome"], second.json["outcome"]) == ("confirmed", "duplicate")
    assert confirmation_emails(dbengine, order_id) == ["order_confirmation"]
    assert_books(dbengine, gateway)


def test_events_out_of_order_cannot_walk_an_order_backwards(app, testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=5)
    order_id, succeeded = _awaiting_then_paid_at_the_gateway(app, testapp, gateway, event, 1)
    payment = gateway.retrieve_payment(load_order(dbengine, order_id).payment_reference)
    # A failure event, late (or forged with a valid signature): its payload says failed.
    failed = mock_webhooks.payment_intent_event("payment_intent.payment_failed", payment)
    failed["data"]["object"]["status"] = "requires_payment_method"
    canceled = mock_webhooks.payment_intent_event("payment_intent.canceled", payment)

    post_stripe_event(testapp, succeeded)
    post_stripe_event(testapp, failed)
    post_stripe_event(testapp, canceled)

    assert load_order(dbengine, order_id).status == "confirmed"
    assert_books(dbengine, gateway)


def test_a_refund_in_the_gateways_dashboard_cancels_the_order(app, testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=5)
    body = order_body(quantity=2)
    order = testapp.post_json(f"/api/events/{event.id}/purchase", body, status=201).json["data"]
    refund_id = gateway.refund(order["payment_reference"], "dashboard-refund")
    refunded = mock_webhooks.payment_intent_event(
        "charge.refunded", gateway.retrieve_payment(order["payment_reference"])
    )
    refunded["data"]["object"] = {
        "id": "ch_x",
        "object": "charge",
        "payment_intent": order["payment_reference"],
        "refunded": True,
    }

    assert post_stripe_event(testapp, refunded).json["outcome"] == "cancelled"

    cancelled = load_order(dbengine, uuid.UUID(order["id"]))
    assert (cancelled.status, cancelled.refund_reference) == ("cancelled", refund_id)
    assert load_event(dbengine, event.id).available_tickets == 5
    assert EmailKind.ORDER_CANCELLATION in emails_of(dbengine, cancelled.id)
    assert logged_events(dbengine, cancelled.id) == [
        ("order.confirmed", "confirmed"),
        ("order.cancelled", "cancelled"),
    ]
    assert_books(dbengine, gateway)


def test_events_the_app_does_not_handle_are_acknowledged(testapp, dbengine, gateway):
    event = {"id": "evt_1", "object": "event", "type": "customer.created", "data": {"object": {}}}
    assert post_stripe_event(testapp, event).json == {"received": True, "outcome": "ignored"}
    assert_books(dbengine, gateway)


# --- with ticket types ----------------------------------------------------------------------------


def test_holds_count_per_type(testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=10)
    vip = create_ticket_type(dbengine, event, name="VIP", capacity=3, price_cents=9000)
    general = testapp.get(f"/api/events/{event.id}/ticket-types").json["data"][0]["id"]
    items = [
        {"ticket_type_id": str(vip.id), "quantity": 2},
        {"ticket_type_id": general, "quantity": 1},
    ]
    hold = reserve(testapp, event, quantity=None, items=items).json["data"]

    left = {
        row["name"]: row
        for row in testapp.get(f"/api/events/{event.id}/availability").json["data"]["ticket_types"]
    }

    assert (left["VIP"]["held"], left["VIP"]["available"]) == (2, 1)
    assert left["General admission"]["held"] == 1
    assert_books(dbengine, gateway)
    pay(testapp, hold["id"])
    assert_books(dbengine, gateway)


@pytest.mark.parametrize("succeed", [True, False])
def test_the_stale_order_sweep_settles_a_pay_left_pending(app, testapp, dbengine, gateway, succeed):
    """A crash between starting a hold's payment and settling it: the sweep asks the gateway."""
    event = create_event(dbengine, total_tickets=5)
    hold = reserve(testapp, event, quantity=1).json["data"]
    gateway.configure(failure_mode="timeout_after_charge" if succeed else "timeout")
    gateway.configure(lookup_failure_mode="server_error", failure_mode=gateway.failure_mode)
    pay(testapp, hold["id"], status=503)
    gateway.configure()
    order = load_order(dbengine, uuid.UUID(hold["id"]))
    assert order.status == "pending"

    with job_transaction(app.registry["dbsession_factory"]) as (dbsession, tm):
        orders.settle_stale_pending_orders(
            dbsession, tm, gateway, now=later(10), ticket_codes=app.registry["ticket_codes"]
        )

    assert load_order(dbengine, order.id).status == ("confirmed" if succeed else "failed")
    assert_books(dbengine, gateway)


def test_the_stale_order_sweep_counts_a_hold_s_payment_from_when_it_started(app, dbengine, gateway):
    """A hold reserved long ago whose payment just started is not stale: the sweep must not
    fail it under the buyer's charge."""
    event = create_event(dbengine, total_tickets=5)
    purchase = orders.PurchaseRequest(
        event_id=event.id, customer_email="a@example.com", customer_name="A", quantity=1, hold=True
    )
    factory = app.registry["dbsession_factory"]
    with job_transaction(factory) as (dbsession, tm):
        hold = holds.reserve(
            dbsession, tm, purchase, now=later(-20), hold_for=dt.timedelta(minutes=30)
        ).order
        payments_async._start_attempt(dbsession, tm, hold.id, now=utcnow())

    with job_transaction(factory) as (dbsession, tm):
        soon = orders.settle_stale_pending_orders(
            dbsession, tm, gateway, now=later(1), ticket_codes=app.registry["ticket_codes"]
        )
    assert (soon.confirmed, soon.failed) == (0, 0)
    assert load_order(dbengine, hold.id).status == "pending"

    with job_transaction(factory) as (dbsession, tm):
        late = orders.settle_stale_pending_orders(
            dbsession, tm, gateway, now=later(6), ticket_codes=app.registry["ticket_codes"]
        )
    assert late.failed == 1  # no charge was ever made: its tickets go back
    assert_books(dbengine, gateway)


def test_a_pay_retried_with_its_key_answers_as_it_did(testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=10)
    hold = reserve(testapp, event, quantity=2).json["data"]
    url = f"/api/orders/{hold['id']}/pay"
    gateway.configure(failure_mode="card_declined")

    testapp.post_json(url, {"payment": {"idempotency_key": "pay-1"}}, status=402)
    gateway.configure()
    again = testapp.post_json(
        url, {"payment": {}}, headers={"Idempotency-Key": "pay-1"}, status=402
    )

    assert again.headers["Idempotent-Replayed"] == "true"
    assert [call[0] for call in gateway.calls] == ["charge"]  # the retry charged nothing
    paid = testapp.post_json(url, {"payment": {"idempotency_key": "pay-2"}}, status=200)
    assert paid.json["data"]["status"] == "confirmed"
    replay = testapp.post_json(url, {"payment": {"idempotency_key": "pay-2"}}, status=200)
    assert replay.headers["Idempotent-Replayed"] == "true"
    mismatch = testapp.post_json(
        url,
        {"payment": {"idempotency_key": "pay-2"}},
        headers={"Idempotency-Key": "pay-3"},
        status=422,
    )
    assert mismatch.json["code"] == "idempotency_key_mismatch"
    assert [call[0] for call in gateway.calls] == ["charge", "charge"]
    assert_books(dbengine, gateway)


@pytest.mark.parametrize("minutes", ["0", "soon"])
def test_a_bad_hold_length_fails_at_startup_naming_it(dbengine, minutes):
    from pyramid.exceptions import ConfigurationError

    from ticketing import main

    from .conftest import app_settings

    with pytest.raises(ConfigurationError, match="ticketing.hold_minutes"):
        main({}, **app_settings(dbengine, **{"ticketing.hold_minutes": minutes}))
