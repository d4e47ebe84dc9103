"""The Stripe gateway against a fake Stripe served on 127.0.0.1 (tests/fake_stripe.py): the exact
requests it makes, how Stripe's answers and failures map to the domain's errors, the lookup the
stale-order sweep relies on, and purchases through the whole app. No test touches the network."""

import logging
import socket
import time
import uuid

import pytest
from pyramid.exceptions import ConfigurationError
from webtest import TestApp
from zope.interface.verify import verifyClass, verifyObject

from ticketing import main
from ticketing.adapters import PAYMENT_GATEWAYS
from ticketing.adapters.payments import Charge
from ticketing.adapters.stripe_gateway import StripePaymentGateway
from ticketing.domain.errors import PaymentDeclined, PaymentUnavailable
from ticketing.interfaces import IPaymentGateway
from ticketing.models import OrderStatus

from .conftest import WEBHOOK_SECRET, app_settings
from .factories import create_event, load_event, load_order
from .fake_stripe import FakeStripe

API_KEY = "sk_test_x"
KEY = "order-1-charge"
METADATA = {"order_id": "o-1", "event_id": "e-1"}


@pytest.fixture
def fake():
    server = FakeStripe(api_key=API_KEY).start()
    yield server
    server.stop()


def stripe_settings(fake_url, **overrides):
    settings = {
        "stripe.api_key": API_KEY,
        "stripe.webhook_secret": WEBHOOK_SECRET,
        "stripe.api_base": fake_url,
        "stripe.timeout_seconds": "5",
        "stripe.max_network_retries": "0",
    }
    settings.update(overrides)
    return settings


@pytest.fixture
def stripe_gateway(fake):
    return StripePaymentGateway.from_settings(stripe_settings(fake.url))


def charge(gateway, key=KEY, amount=5000, payment_method="pm_card_visa"):
    return gateway.charge(
        amount, "USD", key, "2 ticket(s), order o-1", dict(METADATA), payment_method=payment_method
    )


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the class and its settings -------------------------------------------------------------------


def test_the_gateway_implements_the_interface(stripe_gateway):
    assert verifyClass(IPaymentGateway, StripePaymentGateway)
    assert verifyObject(IPaymentGateway, stripe_gateway)
    assert stripe_gateway.name == "stripe"
    assert PAYMENT_GATEWAYS["stripe"] == "ticketing.adapters.stripe_gateway.StripePaymentGateway"


def test_settings_reach_the_gateway(fake):
    gateway = StripePaymentGateway.from_settings(
        stripe_settings(f"{fake.url}/", **{"stripe.timeout_seconds": "2.5"})
    )
    assert (gateway.api_base, gateway.timeout_seconds, gateway.max_network_retries) == (
        fake.url,
        2.5,
        0,
    )
    assert API_KEY not in repr(gateway)


def test_defaults_are_stripe_itself_ten_seconds_and_two_retries():
    gateway = StripePaymentGateway.from_settings(
        {"stripe.api_key": API_KEY, "stripe.webhook_secret": WEBHOOK_SECRET}
    )
    assert gateway.api_base == "https://api.stripe.com"
    assert (gateway.timeout_seconds, gateway.max_network_retries) == (10.0, 2)


@pytest.mark.parametrize("api_key", [None, "", "   "])
def test_a_missing_api_key_fails_naming_the_setting(api_key):
    settings = {} if api_key is None else {"stripe.api_key": api_key}
    with pytest.raises(ConfigurationError) as raised:
        StripePaymentGateway.from_settings(settings)
    assert "stripe.api_key" in str(raised.value)
    assert "STRIPE_SECRET_KEY" in str(raised.value)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("stripe.timeout_seconds", "soon"),
        ("stripe.timeout_seconds", "0"),
        ("stripe.max_network_retries", "two"),
        ("stripe.max_network_retries", "-1"),
    ],
)
def test_bad_settings_fail_at_startup(setting, value):
    with pytest.raises(ConfigurationError) as raised:
        StripePaymentGateway.from_settings(
            {"stripe.api_key": API_KEY, "stripe.webhook_secret": WEBHOOK_SECRET, setting: value}
        )
    assert setting in str(raised.value)


def test_the_app_selects_the_stripe_gateway_by_name(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = stripe_settings(
        fake.url,
        **{
            "sqlalchemy.url": f"sqlite:///{tmp_path / 'unused.sqlite'}",
            "ticketing.payments": "stripe",
            "ticketing.require_api_key": "false",
            "ticketing.ticket_secret": "test-ticket-secret",
        },
    )
    app = main({}, **settings)
    try:
        gateway = app.registry.getUtility(IPaymentGateway)
        assert type(gateway) is StripePaymentGateway
        assert gateway.api_base == fake.url
    finally:
        app.registry["dbengine"].dispose()
    assert fake.requests == []  # building the app calls nobody


def test_the_app_refuses_to_start_without_an_api_key(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    with pytest.raises(ConfigurationError) as raised:
        main(
            {},
            **{
                "sqlalchemy.url": f"sqlite:///{tmp_path / 'unused.sqlite'}",
                "ticketing.payments": "stripe",
                "ticketing.require_api_key": "false",
                "ticketing.ticket_secret": "test-ticket-secret",
            },
        )
    assert "ticketing.payments = 'stripe'" in str(raised.value)
    assert "stripe.api_key" in str(raised.value)


# --- charges --------------------------------------------------------------------------------------


def test_a_charge_is_a_payment_intent_confirmed_at_once(fake, stripe_gateway):
    made = charge(stripe_gateway)

    assert isinstance(made, Charge)
    assert made.id.startswith("pi_")
    assert (made.amount_cents, made.currency, made.idempotency_key) == (5000, "USD", KEY)
    assert made.metadata == METADATA
    assert not made.refunded
    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/v1/payment_intents")
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Idempotency-Key"] == KEY
    assert request.headers["Stripe-Version"]
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.params == {
        "amount": "5000",
        "currency": "usd",
        "confirm": "true",
        "payment_method": "pm_card_visa",
        "description": "2 ticket(s), order o-1",
        "metadata[order_id]": "o-1",
        "metadata[event_id]": "e-1",
        "metadata[idempotency_key]": KEY,
        "automatic_payment_methods[enabled]": "true",
        "automatic_payment_methods[allow_redirects]": "never",
    }
    intent = fake.payment_intents[made.id]
    assert intent["status"] == "succeeded"


def test_a_retried_charge_with_the_same_key_is_the_same_payment_intent(fake, stripe_gateway):
    first = charge(stripe_gateway)
    second = charge(stripe_gateway)
    assert second.id == first.id
    assert len(fake.payment_intents) == 1
    assert charge(stripe_gateway, key="order-2-charge").id != first.id


def test_a_key_reused_for_another_amount_is_unavailable_not_a_second_charge(fake, stripe_gateway):
    charge(stripe_gateway)
    with pytest.raises(PaymentUnavailable):
        charge(stripe_gateway, amount=9999)
    assert len(fake.payment_intents) == 1


@pytest.mark.parametrize(
    ("payment_method", "decline_code", "message"),
    [
        ("pm_card_chargeDeclined", "generic_decline", "Your card was declined."),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "insufficient_funds",
            "Your card has insufficient funds.",
        ),
        # No decline_code from Stripe: its error code stands in.
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "Your card has expired."),
    ],
)
def test_a_card_error_is_a_decline_with_stripes_decline_code(
    fake, stripe_gateway, payment_method, decline_code, message
):
    with pytest.raises(PaymentDeclined) as raised:
        charge(stripe_gateway, payment_method=payment_method)
    assert raised.value.code == "payment_declined"
    assert raised.value.extra == {"decline_code": decline_code}
    assert raised.value.detail == message
    # Stripe keeps the failed intent; it took no money, so there is no charge to find.
    assert stripe_gateway.find_charge(KEY) is None


def test_a_charge_without_a_payment_method_is_declined_before_any_call(fake, stripe_gateway):
    with pytest.raises(PaymentDeclined) as raised:
        charge(stripe_gateway, payment_method=None)
    assert raised.value.detail == "A payment_method is required."
    assert raised.value.extra == {"decline_code": "payment_method_required"}
    assert fake.requests == []


def test_an_unknown_payment_method_is_declined_without_stripes_message(fake, stripe_gateway):
    with pytest.raises(PaymentDeclined) as raised:
        charge(stripe_gateway, payment_method="card_nonsense")
    assert raised.value.extra == {"decline_code": "invalid_payment_method"}
    assert "No such" not in raised.value.detail


def test_a_card_that_needs_authentication_answers_requires_action_with_its_client_secret(
    fake, stripe_gateway
):
    payment = charge(stripe_gateway, payment_method="pm_card_authenticationRequired")

    [intent] = fake.payment_intents.values()
    assert (payment.status, payment.id) == ("requires_action", intent["id"])
    assert payment.client_secret == intent["client_secret"]
    assert payment.next_action == {"type": "use_stripe_sdk"}
    assert not payment.kept
    assert intent["status"] == "requires_action"  # left for the buyer, not cancelled
    assert stripe_gateway.find_charge(KEY) is None  # no money yet


def test_a_payment_is_retrieved_as_stripe_has_it_now(fake, stripe_gateway):
    payment = charge(stripe_gateway, payment_method="pm_card_threeDSecure2Required")
    assert stripe_gateway.retrieve_payment(payment.id).status == "requires_action"

    fake.complete_action(payment.id, succeed=True)
    succeeded = stripe_gateway.retrieve_payment(payment.id)
    assert (succeeded.status, succeeded.kept, succeeded.idempotency_key) == ("succeeded", True, KEY)
    assert succeeded.metadata == METADATA

    fake.refund_in_dashboard(payment.id)
    refunded = stripe_gateway.retrieve_payment(payment.id)
    assert refunded.refunded and not refunded.kept


def test_a_failed_authentication_is_retrieved_as_requires_payment_method(fake, stripe_gateway):
    payment = charge(stripe_gateway, payment_method="pm_card_authenticationRequired")
    fake.complete_action(payment.id, succeed=False)
    assert stripe_gateway.retrieve_payment(payment.id).status == "requires_payment_method"


def test_cancelling_a_payment_that_succeeded_meanwhile_says_so(fake, stripe_gateway):
    waiting = charge(
        stripe_gateway, key="k-waiting", payment_method="pm_card_authenticationRequired"
    )
    assert stripe_gateway.cancel_payment(waiting.id).status == "canceled"

    paid = charge(stripe_gateway, key="k-paid", payment_method="pm_card_authenticationRequired")
    fake.complete_action(paid.id, succeed=True)
    assert stripe_gateway.cancel_payment(paid.id).status == "succeeded"


def test_a_timeout_is_unavailable_and_took_nothing(fake):
    gateway = StripePaymentGateway.from_settings(
        stripe_settings(fake.url, **{"stripe.timeout_seconds": "0.5"})
    )
    fake.hang("POST", "/v1/payment_intents", seconds=10)
    started = time.monotonic()
    with pytest.raises(PaymentUnavailable) as raised:
        charge(gateway)
    assert time.monotonic() - started < 8  # generous: gave up long before the fake answered
    assert raised.value.code == "payment_unavailable"
    assert fake.payment_intents == {}
    assert gateway.find_charge(KEY) is None


def test_a_timeout_after_stripe_charged_is_found_by_the_lookup(fake, caplog):
    gateway = StripePaymentGateway.from_settings(
        stripe_settings(fake.url, **{"stripe.timeout_seconds": "0.5"})
    )
    fake.search_lags = True  # as right after the charge: search has not indexed it yet
    fake.hang("POST", "/v1/payment_intents", seconds=10, after_processing=True)
    with pytest.raises(PaymentUnavailable):
        charge(gateway)
    [intent] = fake.payment_intents.values()

    found = gateway.find_charge(KEY)

    assert found is not None and found.id == intent["id"]
    assert (found.amount_cents, found.currency, found.metadata) == (5000, "USD", METADATA)
    assert not found.refunded
    assert [r.path for r in fake.requests[1:]] == [
        "/v1/payment_intents/search",
        "/v1/payment_intents",
    ]
    # And a retry of the charge with the same key is answered with the same intent.
    assert charge(gateway).id == intent["id"]
    assert len(fake.payment_intents) == 1


def test_a_server_error_is_unavailable_logged_and_says_nothing_of_stripe(
    fake, stripe_gateway, caplog
):
    fake.fail("POST", "/v1/payment_intents", status=500)
    with caplog.at_level(logging.ERROR, logger="ticketing.adapters.stripe_gateway"):
        with pytest.raises(PaymentUnavailable) as raised:
            charge(stripe_gateway)
    assert raised.value.detail == "The payment service failed; try again later."
    assert "Stripe" not in str(raised.value)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "APIError" in logged and "http 500" in logged and KEY in logged
    assert fake.payment_intents == {}


def test_a_server_error_is_retried_with_the_same_key(fake):
    gateway = StripePaymentGateway.from_settings(
        stripe_settings(fake.url, **{"stripe.max_network_retries": "1"})
    )
    fake.fail("POST", "/v1/payment_intents", status=500)
    made = charge(gateway)
    attempts = fake.requests_to("POST", "/v1/payment_intents")
    assert [a.headers["Idempotency-Key"] for a in attempts] == [KEY, KEY]
    assert list(fake.payment_intents) == [made.id]


def test_a_wrong_api_key_is_unavailable_and_never_shown(fake, caplog):
    secret = "sk_live_0123456789abcdefSECRET"
    gateway = StripePaymentGateway.from_settings(
        stripe_settings(fake.url, **{"stripe.api_key": secret})
    )
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(PaymentUnavailable) as raised:
            charge(gateway)
    assert secret not in str(raised.value)
    assert "API Key" not in str(raised.value)
    assert all(secret not in record.getMessage() for record in caplog.records)
    assert any("AuthenticationError" in record.getMessage() for record in caplog.records)


def test_an_unreachable_server_is_unavailable():
    gateway = StripePaymentGateway.from_settings(stripe_settings(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(PaymentUnavailable) as raised:
        charge(gateway)
    assert raised.value.detail == (
        "The payment service could not be reached or did not answer in time."
    )
    with pytest.raises(PaymentUnavailable):
        gateway.find_charge(KEY)
    with pytest.raises(PaymentUnavailable):
        gateway.refund("pi_anything", "refund-1")


# --- refunds --------------------------------------------------------------------------------------


def test_a_refund_refunds_the_payment_intent_with_its_own_key(fake, stripe_gateway):
    made = charge(stripe_gateway)
    refund_id = stripe_gateway.refund(made.id, "order-1-refund")

    assert refund_id.startswith("re_")
    [request] = fake.requests_to("POST", "/v1/refunds")
    assert request.params == {"payment_intent": made.id}
    assert request.headers["Idempotency-Key"] == "order-1-refund"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    # The same key again is the same refund; another key cannot refund twice.
    assert stripe_gateway.refund(made.id, "order-1-refund") == refund_id
    with pytest.raises(PaymentUnavailable):
        stripe_gateway.refund(made.id, "order-1-refund-again")
    assert list(fake.refunds) == [refund_id]


def test_a_refund_of_an_unknown_payment_intent_is_unavailable(fake, stripe_gateway):
    with pytest.raises(PaymentUnavailable):
        stripe_gateway.refund("pi_nothing", "refund-1")
    assert fake.refunds == {}


def test_a_refund_that_fails_on_stripes_side_is_unavailable(fake, stripe_gateway):
    made = charge(stripe_gateway)
    fake.fail("POST", "/v1/refunds", status=503)
    with pytest.raises(PaymentUnavailable):
        stripe_gateway.refund(made.id, "refund-1")
    assert fake.refunds == {}
    assert stripe_gateway.refund(made.id, "refund-1").startswith("re_")


# --- find_charge ----------------------------------------------------------------------------------


def test_find_charge_searches_by_the_key_in_the_metadata(fake, stripe_gateway):
    made = charge(stripe_gateway)
    found = stripe_gateway.find_charge(KEY)

    assert found == made
    [search] = fake.requests_to("GET", "/v1/payment_intents/search")
    assert search.params == {"query": f"metadata['idempotency_key']:'{KEY}'", "limit": "10"}
    assert search.expand == ["data.latest_charge.refunds"]
    assert search.headers["Authorization"] == f"Bearer {API_KEY}"
    assert "Idempotency-Key" not in search.headers
    # Found by search: nothing else was asked.
    assert fake.requests_to("GET", "/v1/payment_intents") == []


def test_find_charge_answers_none_only_after_searching_and_listing(fake, stripe_gateway):
    charge(stripe_gateway, key="another-order-charge")
    started = int(time.time())
    assert stripe_gateway.find_charge(KEY) is None
    [listing] = fake.requests_to("GET", "/v1/payment_intents")
    assert listing.params["limit"] == "100"
    assert started - 3600 - 5 <= int(listing.params["created[gte]"]) <= started - 3600 + 5
    assert listing.expand == ["data.latest_charge.refunds"]


def test_find_charge_sees_a_refund(fake, stripe_gateway):
    made = charge(stripe_gateway)
    refund_id = stripe_gateway.refund(made.id, "order-1-refund")
    found = stripe_gateway.find_charge(KEY)
    assert found.id == made.id
    assert found.refunded and found.refund_id == refund_id


def test_find_charge_lists_the_refund_when_stripe_did_not_expand_it(fake, stripe_gateway):
    made = charge(stripe_gateway)
    refund_id = stripe_gateway.refund(made.id, "order-1-refund")
    fake.expand_refunds = False
    found = stripe_gateway.find_charge(KEY)
    assert found.refunded and found.refund_id == refund_id
    [listing] = fake.requests_to("GET", "/v1/refunds")
    assert listing.params == {"payment_intent": made.id, "limit": "1"}


def test_find_charge_prefers_the_kept_charge(fake, stripe_gateway):
    fake.seed_intent(status="canceled", metadata={"idempotency_key": KEY})
    kept = fake.seed_intent(status="succeeded", metadata={"idempotency_key": KEY})
    fake.seed_intent(status="requires_payment_method", metadata={"idempotency_key": KEY})
    assert stripe_gateway.find_charge(KEY).id == kept


def test_find_charge_cannot_tell_while_a_payment_is_processing(fake, stripe_gateway):
    fake.seed_intent(status="processing", metadata={"idempotency_key": KEY})
    with pytest.raises(PaymentUnavailable):
        stripe_gateway.find_charge(KEY)


def test_find_charge_cannot_tell_when_too_many_recent_intents_hide_it(fake):
    gateway = StripePaymentGateway(
        API_KEY, api_base=fake.url, max_network_retries=0, lookup_max_pages=2
    )
    for _ in range(201):
        fake.seed_intent(metadata={"idempotency_key": f"other-{uuid.uuid4()}"})
    with pytest.raises(PaymentUnavailable):
        gateway.find_charge(KEY)
    assert len(fake.requests_to("GET", "/v1/payment_intents")) == 2

    # Within the pages it may list, a missing charge is a plain "none".
    roomier = StripePaymentGateway(
        API_KEY, api_base=fake.url, max_network_retries=0, lookup_max_pages=3
    )
    assert roomier.find_charge(KEY) is None


def test_find_charge_quotes_the_key_in_the_search_query(fake, stripe_gateway):
    made = charge(stripe_gateway, key="it's-a-key")
    assert stripe_gateway.find_charge("it's-a-key").id == made.id
    [search] = fake.requests_to("GET", "/v1/payment_intents/search")
    assert search.params["query"] == "metadata['idempotency_key']:'it\\'s-a-key'"


def test_find_charge_is_unavailable_when_stripe_fails(fake, stripe_gateway):
    fake.fail("GET", "/v1/payment_intents/search", status=500)
    with pytest.raises(PaymentUnavailable):
        stripe_gateway.find_charge(KEY)


# --- through the whole app ------------------------------------------------------------------------


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
                "stripe.timeout_seconds": "0.5",
                "stripe.max_network_retries": "0",
            },
        ),
    )
    return TestApp(app, extra_environ={"HTTP_HOST": "tickets.test"})


def buy(testapp, event, status, **fields):
    order = {"customer_email": "john@example.com", "customer_name": "John Doe", "quantity": 2}
    order.update(fields)
    return testapp.post_json(f"/api/events/{event.id}/purchase", {"order": order}, status=status)


def test_a_purchase_charges_through_stripe(stripe_app, dbengine, fake):
    event = create_event(dbengine, total_tickets=10)
    response = buy(stripe_app, event, 201, payment_method="pm_card_visa")

    order = response.json["data"]
    assert order["status"] == "confirmed"
    [intent] = fake.payment_intents.values()
    assert order["payment_reference"] == intent["id"]
    [request] = fake.requests
    assert request.params["amount"] == "10000"
    assert request.params["currency"] == "usd"
    assert request.params["confirm"] == "true"
    assert request.params["payment_method"] == "pm_card_visa"
    assert request.params["metadata[order_id]"] == order["id"]
    assert request.params["metadata[event_id]"] == str(event.id)
    assert request.headers["Idempotency-Key"] == f"order-{order['id']}-charge"
    assert load_event(dbengine, event.id).available_tickets == 8

    # Cancelling refunds the intent with the order's refund key.
    cancelled = stripe_app.post(f"/api/orders/{order['id']}/cancel", status=200).json["data"]
    [refund] = fake.refunds.values()
    assert cancelled["status"] == "cancelled"
    assert cancelled["refund_reference"] == refund["id"]
    [refund_request] = fake.requests_to("POST", "/v1/refunds")
    assert refund_request.params == {"payment_intent": intent["id"]}
    assert refund_request.headers["Idempotency-Key"] == f"order-{order['id']}-refund"
    assert load_event(dbengine, event.id).available_tickets == 10


def test_a_declined_card_is_a_402_payment_declined(stripe_app, dbengine, fake):
    event = create_event(dbengine, total_tickets=10)
    response = buy(stripe_app, event, 402, payment_method="pm_card_chargeDeclinedInsufficientFunds")

    body = response.json
    assert body["code"] == "payment_declined"
    assert body["decline_code"] == "insufficient_funds"
    assert load_order(dbengine, body["order_id"]).status == OrderStatus.FAILED
    assert load_event(dbengine, event.id).available_tickets == 10


def test_a_purchase_without_a_payment_method_is_refused(stripe_app, dbengine, fake):
    event = create_event(dbengine, total_tickets=10)
    body = buy(stripe_app, event, 402).json
    assert (body["code"], body["decline_code"]) == ("payment_declined", "payment_method_required")
    assert fake.requests == []
    assert load_event(dbengine, event.id).available_tickets == 10


def test_a_purchase_whose_answer_times_out_is_confirmed_from_stripes_books(
    stripe_app, dbengine, fake
):
    event = create_event(dbengine, total_tickets=10)
    fake.search_lags = True
    fake.hang("POST", "/v1/payment_intents", seconds=10, after_processing=True)

    order = buy(stripe_app, event, 201, payment_method="pm_card_visa").json["data"]

    [intent] = fake.payment_intents.values()
    assert (order["status"], order["payment_reference"]) == ("confirmed", intent["id"])
    assert load_event(dbengine, event.id).available_tickets == 8


def test_a_purchase_when_stripe_is_down_is_a_503_and_releases_the_tickets(
    stripe_app, dbengine, fake
):
    event = create_event(dbengine, total_tickets=10)
    fake.fail("POST", "/v1/payment_intents", status=500)
    body = buy(stripe_app, event, 503, payment_method="pm_card_visa").json
    assert body["code"] == "payment_unavailable"
    assert "Stripe" not in body.get("detail", "")
    assert fake.payment_intents == {}
    assert load_event(dbengine, event.id).available_tickets == 10
