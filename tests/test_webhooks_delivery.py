"""Deliveries to real HTTP endpoints (tests/receivers.py), with the jobs run inline as they are
enqueued (after commit): signed so that the standardwebhooks library verifies them, never for a
change that rolled back, disabled by 410 Gone or by a whole window of failures, given up on a
slow endpoint, sent again on request, and refused at delivery time to a name that now resolves
to a private address (production mode)."""

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError
from webtest import TestApp

from ticketing import main
from ticketing.events import LOGGED_TYPES
from ticketing.interfaces import IPaymentGateway
from ticketing.models import EventLogEntry, get_engine
from ticketing.plugins.webhooks.models import (
    DeliveryStatus,
    Webhook,
    WebhookDelivery,
    WebhookFanout,
)
from ticketing.plugins.webhooks.targets import IHostResolver

from .conftest import app_settings
from .factories import create_event
from .receivers import NamesResolver, Receiver
from .test_purchase_concurrency import run_at_once


@pytest.fixture
def receiver():
    with Receiver() as endpoint:
        yield endpoint


def app_with(dbengine, **settings):
    return TestApp(main({}, **app_settings(dbengine, **settings)))


def register(testapp, url, events=("order.confirmed",)):
    body = {"webhook": {"url": url, "events": list(events)}}
    return testapp.post_json("/api/webhooks", body, status=201).json["data"]


def buy(testapp, event, status=201, quantity=2):
    order = {"customer_email": "ann@example.com", "customer_name": "Ann Lee", "quantity": quantity}
    return testapp.post_json(f"/api/events/{event.id}/purchase", {"order": order}, status=status)


def deliveries(engine):
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)))


def webhook_row(engine, webhook_id):
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Webhook, webhook_id)


def test_a_confirmed_purchase_is_delivered_signed_with_the_order_as_the_api_shows_it(
    testapp, dbengine, receiver
):
    webhook = register(testapp, receiver.url)

    order = buy(testapp, create_event(dbengine)).json["data"]

    [request] = receiver.requests
    payload = Verifier(webhook["secret"]).verify(request["body"], request["headers"])
    assert payload["type"] == "order.confirmed"
    assert payload["data"] == order == testapp.get(f"/api/orders/{order['id']}").json["data"]
    assert payload["id"] == request["headers"]["webhook-id"]
    assert set(payload) == {"type", "id", "created_at", "data"}
    assert request["headers"]["content-type"] == "application/json"
    [delivery] = deliveries(dbengine)
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("delivered", 1, 200)
    assert str(delivery.event_id) == payload["id"]
    shown = testapp.get(f"/api/webhooks/{webhook['id']}/deliveries").json["data"]
    assert [(d["event_type"], d["status"], d["attempts"]) for d in shown] == [
        ("order.confirmed", "delivered", 1)
    ]


def test_a_wrong_secret_does_not_verify(testapp, dbengine, receiver):
    register(testapp, receiver.url)
    buy(testapp, create_event(dbengine))

    [request] = receiver.requests
    other = register(testapp, receiver.url, events=["event.changed"])["secret"]
    with pytest.raises(WebhookVerificationError):
        Verifier(other).verify(request["body"], request["headers"])


def test_after_a_rotation_both_secrets_verify_until_the_overlap_ends(testapp, dbengine, receiver):
    webhook = register(testapp, receiver.url)
    event = create_event(dbengine)
    new = testapp.post(f"/api/webhooks/{webhook['id']}/rotate-secret").json["data"]["secret"]

    buy(testapp, event)
    with Session(dbengine) as session, session.begin():
        session.execute(update(Webhook).values(previous_secret_expires_at=dt.datetime.now(dt.UTC)))
    buy(testapp, event)

    during, after = receiver.requests
    assert len(during["headers"]["webhook-signature"].split(" ")) == 2
    for secret in (webhook["secret"], new):
        Verifier(secret).verify(during["body"], during["headers"])
    Verifier(new).verify(after["body"], after["headers"])
    with pytest.raises(WebhookVerificationError):
        Verifier(webhook["secret"]).verify(after["body"], after["headers"])


def test_changes_that_roll_back_send_nothing(testapp, dbengine, receiver):
    register(testapp, receiver.url, events=LOGGED_TYPES)
    event = create_event(dbengine, total_tickets=3)

    buy(testapp, event, status=409, quantity=4)  # not enough tickets: nothing happened
    testapp.put_json(f"/api/events/{event.id}", {"event": {"total_tickets": 0}}, status=400)
    testapp.app.registry.getUtility(IPaymentGateway).configure(failure_mode="card_declined")
    declined = buy(testapp, event, status=402).json

    # The declined purchase's failure committed and is told; its confirmation never happened.
    [request] = receiver.requests
    payload = json.loads(request["body"])
    assert payload["type"] == "order.failed"
    assert payload["data"]["id"] == declined["order_id"]
    assert payload["data"]["failure_code"] == "payment_declined"
    with Session(dbengine) as session:
        assert list(session.scalars(select(EventLogEntry.type))) == ["order.failed"]


def test_an_endpoint_that_answers_410_gone_is_disabled_and_gets_nothing_more(
    testapp, dbengine, receiver
):
    webhook = register(testapp, receiver.url)
    receiver.answers = [410]
    event = create_event(dbengine)

    buy(testapp, event)
    buy(testapp, event)

    assert len(receiver.requests) == 1
    shown = testapp.get(f"/api/webhooks/{webhook['id']}").json["data"]
    assert shown["enabled"] is False
    assert shown["disabled_reason"].startswith("the endpoint answered 410 Gone")
    [delivery] = deliveries(dbengine)
    assert (delivery.status, delivery.last_status) == (DeliveryStatus.FAILED, 410)


def test_an_endpoint_failing_for_the_whole_window_is_disabled_saying_why(dbengine, receiver):
    # A window shorter than the first retry's wait: the first failure is the last.
    testapp = app_with(dbengine, **{"webhooks.retry_window_hours": "0.001"})
    webhook = register(testapp, receiver.url)
    receiver.answers = [503]

    buy(testapp, create_event(dbengine))

    [delivery] = deliveries(dbengine)
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("failed", 1, 503)
    reason = testapp.get(f"/api/webhooks/{webhook['id']}").json["data"]["disabled_reason"]
    assert reason.startswith("deliveries failed for 0.001 h") and "HTTP 503" in reason


def test_a_failed_attempt_waits_for_its_retry_and_an_admin_can_deliver_it_again_now(
    testapp, dbengine, receiver
):
    webhook = register(testapp, receiver.url)
    receiver.answers = [500]

    buy(testapp, create_event(dbengine))
    [delivery] = deliveries(dbengine)
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("pending", 1, 500)
    # webhooks.retry_delay_seconds: Huey's first wait
    wait = delivery.next_attempt_at - dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=55) < wait <= dt.timedelta(seconds=60)

    again = testapp.post(
        f"/api/webhooks/{webhook['id']}/deliveries/{delivery.id}/retry", status=202
    ).json["data"]

    assert again["id"] == str(delivery.id)
    [delivery] = deliveries(dbengine)
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("delivered", 2, 200)
    first, second = receiver.requests
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    assert first["body"] == second["body"]


def test_a_slow_endpoint_is_given_up_on_after_the_timeout(dbengine, receiver):
    testapp = app_with(dbengine, **{"webhooks.timeout_seconds": "0.5"})
    register(testapp, receiver.url)
    receiver.delay = 2

    buy(testapp, create_event(dbengine))

    [delivery] = deliveries(dbengine)
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("pending", 1, None)
    assert delivery.last_error == "no answer within 0.5 s"
    assert delivery.leased_until is None and delivery.next_attempt_at is not None


def test_a_name_that_turns_private_after_registration_is_refused_at_delivery(dbengine):
    # Production mode, and DNS rebinding: public when registered, loopback when delivering.
    testapp = app_with(dbengine, **{"webhooks.allow_private_targets": "false"})
    resolver = NamesResolver({"hooks.example.com": ["93.184.216.34"]})
    testapp.app.registry.registerUtility(resolver, IHostResolver)
    register(testapp, "https://hooks.example.com/tickets")
    resolver.names["hooks.example.com"] = ["127.0.0.1"]

    buy(testapp, create_event(dbengine))

    [delivery] = deliveries(dbengine)
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("pending", 1, None)
    assert "resolves to 127.0.0.1, which is not a public address" in delivery.last_error


def test_an_event_whose_fan_out_was_lost_is_delivered_by_the_sweep(dbengine, receiver):
    # The purchase commits on an app that never enqueues its fan-out (as if Redis had lost it).
    create_event(dbengine)
    lost = app_with(dbengine, **{"ticketing.includes": ""})
    testapp = app_with(dbengine)
    register(testapp, receiver.url)
    order = buy(lost, create_event(dbengine)).json["data"]
    assert receiver.requests == []
    minutes_ago(dbengine, EventLogEntry, 2)
    minutes_ago(dbengine, Webhook, 3)  # registered before the purchase, as above

    testapp.app.registry["webhooks"].tasks.sweep.call_local()

    [request] = receiver.requests
    assert json.loads(request["body"])["data"]["id"] == order["id"]
    testapp.app.registry["webhooks"].tasks.sweep.call_local()
    assert len(receiver.requests) == 1


def minutes_ago(engine, model, minutes):
    """Move every row of ``model`` back in time, as if the test had waited."""
    with Session(engine) as session, session.begin():
        session.execute(
            update(model).values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes))
        )


def fan_outs(engine):
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(WebhookFanout))


def test_a_sale_nobody_listens_to_owes_no_fan_out(testapp, dbengine):
    buy(testapp, create_event(dbengine))

    assert fan_outs(dbengine) == 0
    # Nor does the sweep owe one: no webhook wants what was logged.
    testapp.app.registry["webhooks"].tasks.sweep.call_local()
    assert fan_outs(dbengine) == 0


def test_a_webhook_gets_the_events_after_its_registration_not_before(dbengine, receiver):
    testapp = app_with(dbengine, **{"webhooks.subscriptions_ttl_seconds": "3600"})
    event = create_event(dbengine)
    before = buy(testapp, event).json["data"]  # read: no webhook wants anything
    register(testapp, receiver.url)

    # This process still believes nobody listens: the purchase owes no job, and the sweep
    # delivers it, once it is past the grace. The purchase before the registration never goes.
    after = buy(testapp, event).json["data"]
    assert receiver.requests == [] and fan_outs(dbengine) == 0
    minutes_ago(dbengine, EventLogEntry, 2)
    minutes_ago(dbengine, Webhook, 3)
    with Session(dbengine) as session, session.begin():
        session.execute(
            update(EventLogEntry)
            .where(EventLogEntry.data["id"].as_string() == before["id"])
            .values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=4))
        )
    testapp.app.registry["webhooks"].tasks.sweep.call_local()

    assert [json.loads(r["body"])["data"]["id"] for r in receiver.requests] == [after["id"]]


CERTIFICATE = Path(__file__).parent / "certs" / "hooks.example.com.pem"


@pytest.fixture
def https_receiver():
    """An https endpoint whose certificate (self-signed, tests/certs) names hooks.example.com."""
    with Receiver(certificate=CERTIFICATE) as endpoint:
        yield endpoint


def test_an_https_endpoint_is_reached_at_the_checked_address_under_its_own_name(
    dbengine, https_receiver
):
    testapp = app_with(dbengine, **{"webhooks.ca_certs": str(CERTIFICATE)})
    names = {"hooks.example.com": ["127.0.0.1"], "other.example.com": ["127.0.0.1"]}
    testapp.app.registry.registerUtility(NamesResolver(names), IHostResolver)
    webhook = register(testapp, f"https://hooks.example.com:{https_receiver.port}/tickets")
    register(testapp, f"https://other.example.com:{https_receiver.port}/tickets")

    buy(testapp, create_event(dbengine))

    # The certificate is checked against the URL's name, though the connection goes to the
    # address the guard checked: the name it is not valid for gets nothing.
    [request] = https_receiver.requests
    assert request["headers"]["host"] == f"hooks.example.com:{https_receiver.port}"
    Verifier(webhook["secret"]).verify(request["body"], request["headers"])
    outcomes = {d.webhook_id: d for d in deliveries(dbengine)}
    delivered = outcomes.pop(uuid.UUID(webhook["id"]))
    assert (delivered.status, delivered.last_status) == ("delivered", 200)
    [refused] = outcomes.values()
    assert refused.status == "pending" and refused.last_status is None
    assert "hostname 'other.example.com' doesn't match 'hooks.example.com'" in refused.last_error


def test_purchases_holding_every_pooled_connection_still_learn_what_webhooks_want(
    pg_engine, receiver
):
    """The wanted event types are read after a commit, while the request still holds its
    connection: with every connection of a small pool held so, the read must not wait for one
    of them (it did, and the purchases hung until the pool timed out)."""
    small = get_engine(
        {
            "sqlalchemy.url": pg_engine.url.render_as_string(hide_password=False),
            "sqlalchemy.pool_size": "2",
            "sqlalchemy.max_overflow": "0",
            "sqlalchemy.pool_timeout": "3",
        }
    )
    try:
        testapp = TestApp(
            main(
                {},
                **app_settings(
                    small, **{"huey.immediate": "false", "webhooks.subscriptions_ttl_seconds": "0"}
                ),
            )
        )
        register(testapp, receiver.url)
        event = create_event(pg_engine, total_tickets=100)

        answers = run_at_once(8, lambda number: buy(testapp, event, status="*"))

        assert [answer.status_int for answer in answers] == [201] * 8
    finally:
        small.dispose()
