"""Webhooks end to end with the real parts: a purchase on PostgreSQL, its fan-out queued on the
local Redis, a real ``ticketing_worker`` process delivering to a real HTTP endpoint: Huey's own
backoff between attempts, and a worker SIGKILLed mid-delivery whose delivery the sweep brings
back, each attempt sent once."""

import datetime as dt
import signal
import time

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook as Verifier
from webtest import TestApp

from ticketing import main
from ticketing.plugins.webhooks import domain
from ticketing.plugins.webhooks.jobs import retry_delays
from ticketing.plugins.webhooks.models import WebhookDelivery

from .conftest import REDIS_URL, TEST_TICKET_SECRET, app_settings
from .factories import create_event
from .receivers import Receiver
from .test_jobs_e2e import wait_for
from .workers import worker_processes


@pytest.fixture
def receiver():
    with Receiver() as endpoint:
        yield endpoint


@pytest.fixture
def settings(pg_engine, redis_prefix):
    return {
        "sqlalchemy.url": pg_engine.url.render_as_string(hide_password=False),
        "ticketing.require_api_key": "false",
        "ticketing.ticket_secret": TEST_TICKET_SECRET,
        "ratelimit.enabled": "false",
        "ticketing.payments": "mock",
        "ticketing.email": "mock",
        "ticketing.includes": "ticketing.plugins.webhooks",
        "webhooks.allow_private_targets": "true",
        "webhooks.retry_delay_seconds": "1",
        "webhooks.timeout_seconds": "2",
        "huey.url": REDIS_URL,
        "huey.immediate": "false",
        "huey.name": redis_prefix,
    }


@pytest.fixture
def start_worker(settings, tmp_path):
    """Start a worker of the default queue (the webhooks' jobs); stopped at the end."""
    with worker_processes(settings, tmp_path) as start:
        yield lambda: start("default")


@pytest.fixture
def testapp(settings, pg_engine):
    return TestApp(main({}, **{**app_settings(pg_engine), **settings, "dbengine": pg_engine}))


def register(testapp, url):
    body = {"webhook": {"url": url, "events": ["order.confirmed"]}}
    return testapp.post_json("/api/webhooks", body, status=201).json["data"]


def buy(testapp, event):
    order = {"customer_email": "ann@example.com", "customer_name": "Ann Lee", "quantity": 1}
    return testapp.post_json(f"/api/events/{event.id}/purchase", {"order": order}, status=201)


def the_delivery(engine):
    with Session(engine, expire_on_commit=False) as session:
        return session.scalars(select(WebhookDelivery)).one()


def test_an_endpoint_failing_twice_gets_the_event_on_huey_s_backoff_schedule(
    testapp, pg_engine, receiver, start_worker
):
    webhook = register(testapp, receiver.url)
    receiver.answers = [500, 502]
    start_worker()

    buy(testapp, create_event(pg_engine))

    wait_for(lambda: len(receiver.requests) == 3, what="three attempts")
    wait_for(lambda: the_delivery(pg_engine).status == "delivered", what="the delivery")
    first, second, third = (request["at"] for request in receiver.requests)
    # Huey waits retry_delay, then twice that (retry_backoff=2); its scheduler looks once a
    # second, so each wait may run up to a second over.
    assert retry_delays(1, 2) == [1, 2]
    assert 1 <= second - first < 2.5
    assert 2 <= third - second < 3.5
    delivery = the_delivery(pg_engine)
    assert (delivery.attempts, delivery.last_status) == (3, 200)
    ids = {request["headers"]["webhook-id"] for request in receiver.requests}
    assert ids == {str(delivery.event_id)}
    for request in receiver.requests:
        Verifier(webhook["secret"]).verify(request["body"], request["headers"])


def test_a_worker_killed_mid_delivery_delivers_after_the_sweep_each_attempt_once(
    testapp, pg_engine, receiver, start_worker
):
    register(testapp, receiver.url)
    receiver.held.set()
    first = start_worker()
    buy(testapp, create_event(pg_engine))
    wait_for(receiver.arrived.is_set, what="the worker to reach the endpoint")

    first.send_signal(signal.SIGKILL)  # dies with the attempt under way; Redis no longer has it
    first.wait(timeout=10)
    receiver.held.clear()
    cut_off = the_delivery(pg_engine)
    assert (cut_off.status, cut_off.attempts) == ("pending", 1)
    assert cut_off.leased_until is not None

    # Five minutes later: the attempt's lease has lapsed and the sweep (every minute, as the
    # scheduler runs it) finds the delivery overdue.
    with Session(pg_engine) as session, session.begin():
        later = dt.timedelta(minutes=5)
        session.execute(
            update(WebhookDelivery).values(
                next_attempt_at=cut_off.next_attempt_at - later,
                leased_until=cut_off.leased_until - later,
            )
        )
    session = testapp.app.registry["dbsession_factory"]()
    with session.begin():
        overdue = domain.overdue_deliveries(session, now=dt.datetime.now(dt.UTC))
    assert overdue == [cut_off.id]
    for delivery_id in overdue:
        testapp.app.registry["webhooks"].tasks.deliver(str(delivery_id))
    start_worker()

    wait_for(lambda: the_delivery(pg_engine).status == "delivered", what="the delivery")
    time.sleep(2)  # would another attempt go out?
    delivery = the_delivery(pg_engine)
    assert (delivery.attempts, delivery.last_status) == (2, 200)
    # One request per attempt, all with the event's id for the receiver to deduplicate.
    assert len(receiver.requests) == 2
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == {str(delivery.event_id)}
