"""3-D Secure through the whole app on the Stripe gateway, against the fake Stripe server: the
purchase or pay answers ``requires_action`` with Stripe's client secret, the buyer finishes in
the browser (the fake), and Stripe's webhook, signed as Stripe signs, settles the order. The
webhook's payload is never trusted: the intent is fetched first."""

import time
import uuid

import pytest
from webtest import TestApp

from ticketing import main

from .conftest import WEBHOOK_SECRET, app_settings
from .factories import create_event, load_event, load_order
from .fake_stripe import FakeStripe, _public
from .holds import (
    FakeStripeLedger,
    assert_books,
    confirmation_emails,
    emails_of,
    order_body,
    pay,
    post_stripe_event,
    reserve,
    stripe_event,
)

API_KEY = "sk_test_webhooks"
NEEDS_3DS = "pm_card_authenticationRequired"


@pytest.fixture
def fake():
    server = FakeStripe(api_key=API_KEY).start()
    yield server
    server.stop()


@pytest.fixture
def stripe_app(dbengine, fake):
    app = main(
        {},
        **app_settings(
            dbengine,
            **{
                "ticketing.payments": "stripe",
                "stripe.api_key": API_KEY,
                "stripe.api_base": fake.url,
                "stripe.webhook_secret": WEBHOOK_SECRET,
                "stripe.timeout_seconds": "2",
                "stripe.max_network_retries": "0",
            },
        ),
    )
    return TestApp(app, extra_environ={"HTTP_HOST": "tickets.test"})


@pytest.fixture
def ledger(fake):
    return FakeStripeLedger(fake)


def intent_event(fake, event_type, intent_id, **changes):
    """Stripe's event about an intent, its payload a snapshot of the intent now (``changes``
    make it say something else: the app must not believe it)."""
    return stripe_event(event_type, {**_public(fake.payment_intents[intent_id]), **changes})


def test_a_purchase_needing_3d_secure_is_confirmed_by_stripes_webhook(
    stripe_app, dbengine, fake, ledger
):
    event = create_event(dbengine, total_tickets=10)
    body = order_body(quantity=2, payment_method=NEEDS_3DS, idempotency_key="p-3ds")

    waiting = stripe_app.post_json(f"/api/events/{event.id}/purchase", body, status=202)

    [intent] = fake.payment_intents.values()
    assert waiting.json["data"]["status"] == "awaiting_action"
    assert waiting.json["data"]["payment_reference"] == intent["id"]
    assert waiting.json["payment"] == {
        "status": "requires_action",
        "client_secret": intent["client_secret"],
        "next_action": {"type": "use_stripe_sdk"},
    }
    assert fake.requests_to("POST", f"/v1/payment_intents/{intent['id']}/cancel") == []
    fake.complete_action(intent["id"], succeed=True)

    delivered = post_stripe_event(
        stripe_app, intent_event(fake, "payment_intent.succeeded", intent["id"])
    )

    assert delivered.json["outcome"] == "confirmed"
    order_id = uuid.UUID(waiting.json["data"]["id"])
    assert load_order(dbengine, order_id).status == "confirmed"
    # Acted on the intent fetched from Stripe.
    assert fake.requests_to("GET", f"/v1/payment_intents/{intent['id']}")
    assert confirmation_emails(dbengine, order_id) == ["order_confirmation"]
    assert load_event(dbengine, event.id).available_tickets == 8
    assert_books(dbengine, ledger)


def test_a_hold_paid_with_3d_secure_through_stripe(stripe_app, dbengine, fake, ledger):
    event = create_event(dbengine, total_tickets=10)
    hold = reserve(stripe_app, event, quantity=1).json["data"]

    waiting = pay(stripe_app, hold["id"], NEEDS_3DS, status=202)

    [intent] = fake.payment_intents.values()
    assert waiting.json["payment"]["client_secret"] == intent["client_secret"]
    fake.complete_action(intent["id"], succeed=False)
    failed = intent_event(fake, "payment_intent.payment_failed", intent["id"])
    assert post_stripe_event(stripe_app, failed).json["outcome"] == "back_to_hold"
    assert load_order(dbengine, uuid.UUID(hold["id"])).status == "reserved"

    paid = pay(stripe_app, hold["id"], "pm_card_visa").json["data"]

    assert paid["status"] == "confirmed"
    assert len(fake.payment_intents) == 2  # another card, another intent
    assert_books(dbengine, ledger)


def test_a_forged_success_is_not_believed(stripe_app, dbengine, fake, ledger):
    event = create_event(dbengine, total_tickets=10)
    body = order_body(payment_method=NEEDS_3DS)
    order_id = stripe_app.post_json(f"/api/events/{event.id}/purchase", body, status=202).json[
        "data"
    ]["id"]
    [intent] = fake.payment_intents.values()
    # Signed, but the buyer never authenticated: the payload lies about the status.
    lying = intent_event(fake, "payment_intent.succeeded", intent["id"], status="succeeded")

    assert post_stripe_event(stripe_app, lying).json["outcome"] == "ignored"

    assert load_order(dbengine, uuid.UUID(order_id)).status == "awaiting_action"
    assert_books(dbengine, ledger)


def test_duplicates_and_reversed_order_settle_once(stripe_app, dbengine, fake, ledger):
    event = create_event(dbengine, total_tickets=10)
    body = order_body(payment_method=NEEDS_3DS)
    order_id = uuid.UUID(
        stripe_app.post_json(f"/api/events/{event.id}/purchase", body, status=202).json["data"][
            "id"
        ]
    )
    [intent] = fake.payment_intents.values()
    # Stripe sends requires_action first, but it arrives after the success; then the success again.
    requires_action = intent_event(fake, "payment_intent.requires_action", intent["id"])
    fake.complete_action(intent["id"], succeed=True)
    succeeded = intent_event(fake, "payment_intent.succeeded", intent["id"])

    outcomes = [
        post_stripe_event(stripe_app, each).json["outcome"]
        for each in (succeeded, requires_action, succeeded)
    ]

    assert outcomes == ["confirmed", "duplicate", "duplicate"]
    assert load_order(dbengine, order_id).status == "confirmed"
    assert confirmation_emails(dbengine, order_id) == ["order_confirmation"]
    assert_books(dbengine, ledger)


def test_a_bad_signature_or_one_outside_the_tolerance_is_400(stripe_app, dbengine, fake, ledger):
    event = create_event(dbengine, total_tickets=10)
    body = order_body(payment_method=NEEDS_3DS)
    order_id = uuid.UUID(
        stripe_app.post_json(f"/api/events/{event.id}/purchase", body, status=202).json["data"][
            "id"
        ]
    )
    [intent] = fake.payment_intents.values()
    fake.complete_action(intent["id"], succeed=True)
    succeeded = intent_event(fake, "payment_intent.succeeded", intent["id"])

    post_stripe_event(stripe_app, succeeded, secret="whsec_wrong", status=400)
    post_stripe_event(stripe_app, succeeded, timestamp=int(time.time()) - 600, status=400)
    assert load_order(dbengine, order_id).status == "awaiting_action"

    assert post_stripe_event(stripe_app, succeeded).json["outcome"] == "confirmed"
    assert_books(dbengine, ledger)


def test_a_refund_in_stripes_dashboard_cancels_the_order(stripe_app, dbengine, fake, ledger):
    event = create_event(dbengine, total_tickets=10)
    order = stripe_app.post_json(
        f"/api/events/{event.id}/purchase",
        order_body(quantity=3, payment_method="pm_card_visa"),
        status=201,
    ).json["data"]
    charge = fake.refund_in_dashboard(order["payment_reference"])

    refunded = stripe_event("charge.refunded", charge)
    assert post_stripe_event(stripe_app, refunded).json["outcome"] == "cancelled"

    cancelled = load_order(dbengine, uuid.UUID(order["id"]))
    assert cancelled.status == "cancelled" and cancelled.refund_reference.startswith("re_fake")
    assert "order_cancellation" in emails_of(dbengine, cancelled.id)
    assert load_event(dbengine, event.id).available_tickets == 10
    assert_books(dbengine, ledger)


def test_stripe_unreachable_while_settling_is_503_for_stripe_to_retry(
    stripe_app, dbengine, fake, ledger
):
    event = create_event(dbengine, total_tickets=10)
    body = order_body(payment_method=NEEDS_3DS)
    order_id = uuid.UUID(
        stripe_app.post_json(f"/api/events/{event.id}/purchase", body, status=202).json["data"][
            "id"
        ]
    )
    [intent] = fake.payment_intents.values()
    fake.complete_action(intent["id"], succeed=True)
    succeeded = intent_event(fake, "payment_intent.succeeded", intent["id"])
    fake.fail("GET", f"/v1/payment_intents/{intent['id']}", status=500)

    assert (
        post_stripe_event(stripe_app, succeeded, status=503).json["code"] == "payment_unavailable"
    )
    assert load_order(dbengine, order_id).status == "awaiting_action"

    # Stripe delivers it again later; it was not recorded as processed.
    assert post_stripe_event(stripe_app, succeeded).json["outcome"] == "confirmed"
    assert_books(dbengine, ledger)
