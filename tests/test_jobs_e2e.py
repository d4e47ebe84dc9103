"""End to end with the real parts: a purchase on PostgreSQL, its email queued on the local Redis,
a real ``ticketing_worker`` process consuming it, and a real SMTP server (aiosmtpd) receiving it.
"""

import asyncio
import email
import email.policy
import signal
import socket
import time

import pytest
import redis
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session
from webtest import TestApp

from ticketing import main
from ticketing.domain import outbox
from ticketing.models import EmailStatus, OutboxEmail
from ticketing.models.types import utcnow

from .conftest import REDIS_URL, TEST_TICKET_SECRET, app_settings
from .factories import create_event
from .workers import worker_processes


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mailbox:
    """An SMTP handler that keeps what it receives; it can refuse the first attempts for a while
    (451, try again later) or hold a delivery at RCPT until told to go on."""

    def __init__(self):
        self.messages = []
        self.refusals_left = 0
        self.hold = False
        self.holding = asyncio.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.hold:
            self.holding.set()
            while self.hold:
                await asyncio.sleep(0.05)
        if self.refusals_left > 0:
            self.refusals_left -= 1
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        )
        return "250 Message accepted for delivery"


def wait_for(condition, timeout=30, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def mailbox():
    handler = Mailbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture
def settings(pg_engine, mailbox, redis_prefix):
    _, port = mailbox
    return {
        "sqlalchemy.url": pg_engine.url.render_as_string(hide_password=False),
        "ticketing.require_api_key": "false",
        "ticketing.ticket_secret": TEST_TICKET_SECRET,
        "ratelimit.enabled": "false",
        "ticketing.payments": "mock",
        "ticketing.email": "smtp",
        "mail.host": "127.0.0.1",
        "mail.port": str(port),
        "mail.default_sender": "Tickets <tickets@example.test>",
        "mail.timeout_seconds": "5",
        "huey.url": REDIS_URL,
        "huey.immediate": "false",
        "huey.name": redis_prefix,
        "huey.email_retry_delay_seconds": "1",
        # As in production.ini: each job gathers the emails that come due for a moment.
        "huey.email_batch_gather_ms": "100",
    }


@pytest.fixture
def start_worker(settings, tmp_path):
    """Start a worker of the emails queue; stopped at the end."""
    with worker_processes(settings, tmp_path) as start:
        yield lambda: start("emails")


@pytest.fixture
def testapp(settings, pg_engine):
    app = main({}, **{**app_settings(pg_engine), **settings, "dbengine": pg_engine})
    return TestApp(app)


def buy(testapp, event):
    order = {"customer_email": "ann@example.com", "customer_name": "Ann Lee", "quantity": 2}
    return testapp.post_json(f"/api/events/{event.id}/purchase", {"order": order}, status=201)


def outbox_email(engine):
    with Session(engine) as session:
        return session.scalars(select(OutboxEmail)).one()


def test_a_purchase_email_reaches_the_smtp_server(testapp, pg_engine, mailbox, start_worker):
    handler, _ = mailbox
    start_worker()
    order = buy(testapp, create_event(pg_engine, name="Opera Gala")).json["data"]

    wait_for(lambda: handler.messages, what="the confirmation email")
    [message] = handler.messages
    assert message["To"] == "Ann Lee <ann@example.com>"
    assert "Opera Gala" in message["Subject"]
    assert order["id"] in message.get_body(preferencelist=("plain",)).get_content()
    wait_for(lambda: outbox_email(pg_engine).status == EmailStatus.SENT, what="the outbox row")


def outbox_emails(engine):
    with Session(engine) as session:
        return list(session.scalars(select(OutboxEmail)))


def test_a_sale_leaves_nothing_per_task_in_redis(
    testapp, pg_engine, mailbox, start_worker, redis_prefix
):
    handler, _ = mailbox
    start_worker()
    event = create_event(pg_engine, total_tickets=100)
    for _ in range(10):
        buy(testapp, event)

    wait_for(lambda: len(handler.messages) == 10, what="the ten confirmations")
    wait_for(
        lambda: {row.status for row in outbox_emails(pg_engine)} == {EmailStatus.SENT},
        what="the outbox rows",
    )
    # No task's return value (huey.results.*) nor anything else stays behind: the queues are
    # empty, and Redis drops an empty list.
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert sorted(client.scan_iter(f"*{redis_prefix}*")) == []
    finally:
        client.close()


def test_a_mail_server_down_for_the_first_attempts_gets_the_email_after_retries(
    testapp, pg_engine, mailbox, start_worker
):
    handler, _ = mailbox
    handler.refusals_left = 2
    start_worker()
    buy(testapp, create_event(pg_engine))

    wait_for(lambda: handler.messages, what="the email after two refusals")
    assert len(handler.messages) == 1
    wait_for(lambda: outbox_email(pg_engine).status == EmailStatus.SENT, what="the outbox row")
    assert outbox_email(pg_engine).attempts == 3


def test_a_worker_killed_mid_task_still_delivers_exactly_once_after_the_sweep(
    testapp, pg_engine, mailbox, start_worker
):
    handler, _ = mailbox
    handler.hold = True
    first = start_worker()
    buy(testapp, create_event(pg_engine))
    wait_for(handler.holding.is_set, what="the worker to reach the mail server")

    first.send_signal(signal.SIGKILL)  # dies with the job half done; Redis no longer has it
    first.wait(timeout=10)
    handler.hold = False
    assert outbox_email(pg_engine).status == EmailStatus.PENDING

    # The sweep, as the scheduler runs it every minute (here with the clock past the grace).
    session = testapp.app.registry["dbsession_factory"]()
    with session.begin():
        assert len(outbox.overdue_emails(session, now=utcnow() + 2 * outbox.SWEEP_GRACE)) == 1
    start_worker()

    wait_for(lambda: handler.messages, what="the email after the sweep")
    wait_for(lambda: outbox_email(pg_engine).status == EmailStatus.SENT, what="the outbox row")
    time.sleep(2)  # would a second copy arrive?
    assert len(handler.messages) == 1
