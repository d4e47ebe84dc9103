"""Background jobs in immediate mode (and on an in-memory queue where the test drives the
consumer's steps itself): the confirmation and cancellation emails, their outbox, retries with
backoff, the sweep, and the daily completion of past events."""

import datetime as dt
import logging

import pytest
import sqlalchemy as sa
from pyramid.exceptions import ConfigurationError
from sqlalchemy.orm import Session
from webtest import TestApp

from ticketing import main
from ticketing.adapters.email import MockEmailSender
from ticketing.domain import events as domain_events
from ticketing.domain import outbox
from ticketing.domain.errors import EmailDeliveryError
from ticketing.interfaces import IEmailSender, IPaymentGateway
from ticketing.jobs.tasks import email_retry_delays
from ticketing.models import EmailKind, EmailStatus, EventStatus, OrderStatus, OutboxEmail

from .conftest import app_settings
from .factories import assert_books_balance, create_event, create_order, load_event, orders_of

NOW = dt.datetime.now(dt.UTC)


def buy(testapp, event, status=201, **fields):
    order = {"customer_email": "ann@example.com", "customer_name": "Ann Lee", "quantity": 2}
    order.update(fields)
    return testapp.post_json(f"/api/events/{event.id}/purchase", {"order": order}, status=status)


def outbox_rows(engine):
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(sa.select(OutboxEmail).order_by(OutboxEmail.created_at)))


@pytest.fixture
def jobs(app):
    return app.registry["jobs"]


def test_a_purchase_sends_the_confirmation_after_commit(testapp, dbengine, mailer):
    event = create_event(dbengine, name="Jazz Night", venue="Blue Hall")
    order = buy(testapp, event).json["data"]

    [message] = mailer.outbox
    assert message["To"] == "Ann Lee <ann@example.com>"
    assert "Jazz Night" in message["Subject"]
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert order["id"] in body and "Blue Hall" in body and "100.00" in body
    [email] = outbox_rows(dbengine)
    assert (email.kind, email.status, email.attempts) == (
        EmailKind.ORDER_CONFIRMATION,
        EmailStatus.SENT,
        1,
    )
    assert message["Message-ID"] == f"<{email.id}@localhost>"


def test_a_cancellation_sends_its_own_email(testapp, dbengine, mailer):
    event = create_event(dbengine)
    order = buy(testapp, event).json["data"]
    testapp.post(f"/api/orders/{order['id']}/cancel", status=200)

    assert [m["Subject"] for m in mailer.outbox][1].lower().count("cancel") == 1
    kinds = {(row.kind, row.status) for row in outbox_rows(dbengine)}
    assert kinds == {
        (EmailKind.ORDER_CONFIRMATION, EmailStatus.SENT),
        (EmailKind.ORDER_CANCELLATION, EmailStatus.SENT),
    }


def test_no_email_for_a_purchase_that_did_not_commit(testapp, dbengine, gateway, mailer):
    gateway.configure(failure_mode="card_declined")
    buy(testapp, create_event(dbengine), status=402)
    assert mailer.outbox == []
    assert outbox_rows(dbengine) == []


def test_a_mail_outage_keeps_the_email_owed_and_retries_it(testapp, dbengine, mailer, jobs):
    mailer.configure(failure_mode="server_error")
    buy(testapp, create_event(dbengine))

    [email] = outbox_rows(dbengine)
    assert email.status == EmailStatus.PENDING
    assert email.attempts == 1
    assert "mail server error" in email.last_error
    # The sweep leaves it to the queue's retry until that retry is due.
    assert email.next_attempt_at > email.updated_at

    mailer.configure()
    assert jobs.send_email(email.id)() == "sent"
    assert len(mailer.outbox) == 1
    assert jobs.send_email(email.id)() == "skipped"
    assert len(mailer.outbox) == 1


def test_after_the_last_attempt_the_email_is_failed_and_can_be_resent(
    app, testapp, dbengine, mailer, jobs
):
    mailer.configure(failure_mode="timeout")
    buy(testapp, create_event(dbengine))
    [email] = outbox_rows(dbengine)
    for _ in range(outbox.MAX_ATTEMPTS - 1):
        jobs.send_email(email.id)
    [email] = outbox_rows(dbengine)
    assert (email.status, email.attempts) == (EmailStatus.FAILED, outbox.MAX_ATTEMPTS)

    mailer.configure()
    # As the admin console does it: in a session of the app's, dispatched after commit.
    session = app.registry["dbsession_factory"]()
    with session.begin():
        outbox.resend_email(session, email.order_id, now=NOW)

    [email] = outbox_rows(dbengine)
    assert (email.status, email.attempts) == (EmailStatus.SENT, 1)
    assert len(mailer.outbox) == 1


def test_email_retries_back_off_exponentially(dbengine):
    assert email_retry_delays(10) == [10, 20, 40, 80, 160]

    # Drive Huey's own scheduling on a queue the test consumes step by step.
    app = main({}, **app_settings(dbengine, **{"huey.immediate": "false"}))
    mailer = app.registry.getUtility(IEmailSender)
    mailer.configure(failure_mode="server_error")
    huey = app.registry["jobs"].hueys["emails"]
    buy(TestApp(app), create_event(dbengine))

    task = huey.dequeue()
    for delay in [10, 20, 40, 80, 160]:
        before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        huey.execute(task)
        after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        [scheduled] = huey.scheduled()
        # Scheduled at some moment of the attempt, however long a loaded machine made it take.
        assert scheduled.eta - after <= dt.timedelta(seconds=delay) <= scheduled.eta - before
        # Take it off the schedule and run it as if its time had come.
        [task] = huey.read_schedule(scheduled.eta)
        task.eta = None
    huey.execute(task)
    assert huey.scheduled() == [] and len(huey) == 0
    [email] = outbox_rows(dbengine)
    assert (email.status, email.attempts) == (EmailStatus.FAILED, 6)


def test_the_sweep_requeues_an_email_whose_job_was_lost(dbengine):
    app = main({}, **app_settings(dbengine, **{"huey.immediate": "false"}))
    huey = app.registry["jobs"].hueys["emails"]
    buy(TestApp(app), create_event(dbengine))
    huey.flush()  # the queue lost the job (Redis restarted, say)

    session = app.registry["dbsession_factory"]()
    with session.begin():
        assert outbox.overdue_emails(session, now=dt.datetime.now(dt.UTC)) == []  # not yet due
    with session.begin():
        # Five minutes after the purchase (not after the module's NOW: a long suite imports it
        # minutes before this test runs).
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        overdue = outbox.overdue_emails(session, now=later)
    assert len(overdue) == 1
    assert len(huey) == 1  # dispatched after the sweep's commit

    huey.execute(huey.dequeue())
    mailer = app.registry.getUtility(IEmailSender)
    assert len(mailer.outbox) == 1
    [email] = outbox_rows(dbengine)
    assert email.status == EmailStatus.SENT


def test_a_failed_outbox_write_fails_the_whole_purchase(pg_engine):
    app = main({}, **app_settings(pg_engine))
    gateway = app.registry.getUtility(IPaymentGateway)
    event = create_event(pg_engine, total_tickets=10)
    with pg_engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE FUNCTION refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'outbox unavailable'; END $$"
            )
        )
        connection.execute(
            sa.text(
                "CREATE TRIGGER refuse_outbox BEFORE INSERT ON email_outbox "
                "FOR EACH ROW EXECUTE FUNCTION refuse_outbox()"
            )
        )
    try:
        response = buy(TestApp(app), event, status=500)
    finally:
        with pg_engine.begin() as connection:
            connection.execute(sa.text("DROP TRIGGER refuse_outbox ON email_outbox"))
            connection.execute(sa.text("DROP FUNCTION refuse_outbox()"))

    assert response.json["code"] == "internal_error"
    [order] = orders_of(pg_engine)
    assert order.status == OrderStatus.FAILED
    assert load_event(pg_engine, event.id).available_tickets == 10
    assert gateway.kept_charges() == []
    assert_books_balance(pg_engine, gateway)


def test_completion_marks_only_past_published_events_and_is_safe_twice(dbengine, tm, dbsession):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    past_published = [create_event(dbengine, date=past) for _ in range(5)]
    past_draft = create_event(dbengine, date=past, status=EventStatus.DRAFT)
    future_published = create_event(dbengine)

    assert domain_events.complete_past_events(dbsession, tm, now=NOW, batch_size=2) == 5
    assert domain_events.complete_past_events(dbsession, tm, now=NOW, batch_size=2) == 0

    for event in past_published:
        assert load_event(dbengine, event.id).status == EventStatus.COMPLETED
    assert load_event(dbengine, past_draft.id).status == EventStatus.DRAFT
    assert load_event(dbengine, future_published.id).status == EventStatus.PUBLISHED


def test_the_completion_job_runs_in_its_own_transaction(dbengine, jobs):
    event = create_event(dbengine, date=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert jobs.tasks.complete_past_events.call_local() == 1
    assert jobs.tasks.complete_past_events.call_local() == 0
    assert load_event(dbengine, event.id).status == EventStatus.COMPLETED


def test_the_settling_job_settles_stale_pending_orders(dbengine, jobs, gateway):
    event = create_event(dbengine, total_tickets=10, available_tickets=8)
    create_order(
        dbengine,
        event,
        status=OrderStatus.PENDING,
        created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    )
    assert jobs.tasks.settle_stale_orders.call_local() == (0, 1, 0)
    assert load_event(dbengine, event.id).available_tickets == 10
    assert_books_balance(dbengine, gateway)


def test_each_job_logs_its_outcome_and_duration(testapp, dbengine, caplog):
    with caplog.at_level(logging.INFO, logger="ticketing.jobs"):
        buy(testapp, create_event(dbengine))
    assert "[huey] completed send_order_email in" in caplog.text


# --- batches: one job sends the emails that are due with its own -------------------------------


class FailingFor(MockEmailSender):
    """Takes every message but those to ``refused`` addresses, which fail as told."""

    def __init__(self, refused, retryable=True):
        super().__init__()
        self.refused = refused
        self.retryable = retryable

    def send(self, message):
        if message["To"].addresses[0].addr_spec in self.refused:
            raise EmailDeliveryError("mailbox busy", retryable=self.retryable)
        super().send(message)


def queued_app(dbengine, **settings):
    """An app whose email jobs wait on an in-memory queue until the test runs them."""
    app = main({}, **app_settings(dbengine, **{"huey.immediate": "false", **settings}))
    return app, app.registry["jobs"].hueys["emails"]


def emails_by_address(engine):
    addresses = {order.id: order.customer_email for order in orders_of(engine)}
    return {addresses[email.order_id]: email for email in outbox_rows(engine)}


def run_queued(huey):
    outcomes = []
    while (task := huey.dequeue()) is not None:
        outcomes.append(huey.execute(task))
    return outcomes


def test_one_job_sends_the_emails_that_are_due_with_its_own(dbengine):
    app, huey = queued_app(dbengine)
    testapp = TestApp(app)
    event = create_event(dbengine)
    for number in range(3):
        buy(testapp, event, customer_email=f"buyer{number}@example.com")
    assert len(huey) == 3

    assert run_queued(huey) == ["sent", "skipped", "skipped"]
    mailer = app.registry.getUtility(IEmailSender)
    assert sorted(m["To"].addresses[0].addr_spec for m in mailer.outbox) == [
        f"buyer{number}@example.com" for number in range(3)
    ]
    emails = outbox_rows(dbengine)
    assert {(e.status, e.attempts) for e in emails} == {(EmailStatus.SENT, 1)}
    assert {m["Message-ID"] for m in mailer.outbox} == {f"<{e.id}@localhost>" for e in emails}


def test_a_batch_is_at_most_the_batch_size(dbengine):
    app, huey = queued_app(dbengine, **{"huey.email_batch_size": "2"})
    testapp = TestApp(app)
    event = create_event(dbengine)
    for _ in range(3):
        buy(testapp, event)
    first = huey.dequeue()
    assert huey.execute(first) == "sent"
    assert len(app.registry.getUtility(IEmailSender).outbox) == 2
    assert run_queued(huey).count("sent") == 1
    assert {e.status for e in outbox_rows(dbengine)} == {EmailStatus.SENT}


def test_an_email_of_the_batch_failing_is_left_to_its_own_job(dbengine):
    app, huey = queued_app(dbengine)
    mailer = FailingFor({"busy@example.com"})
    app.registry.registerUtility(mailer, IEmailSender)
    testapp = TestApp(app)
    event = create_event(dbengine)
    for address in ("first@example.com", "busy@example.com", "last@example.com"):
        buy(testapp, event, customer_email=address)

    tasks = [huey.dequeue() for _ in range(3)]
    assert huey.execute(tasks[0]) == "sent"
    by_address = emails_by_address(dbengine)
    assert (by_address["first@example.com"].status, by_address["first@example.com"].attempts) == (
        EmailStatus.SENT,
        1,
    )
    # Not counted against it, and the batch stopped there: the rest wait for their own jobs.
    for address in ("busy@example.com", "last@example.com"):
        email = by_address[address]
        assert (email.status, email.attempts, email.last_error) == (EmailStatus.PENDING, 0, None)

    mailer.refused = set()
    assert [huey.execute(task) for task in tasks[1:]] == ["sent", "skipped"]
    assert {e.status for e in outbox_rows(dbengine)} == {EmailStatus.SENT}
    assert len(mailer.outbox) == 3


def test_an_email_of_the_batch_refused_for_good_is_failed_and_the_batch_goes_on(dbengine):
    app, huey = queued_app(dbengine)
    mailer = FailingFor({"gone@example.com"}, retryable=False)
    app.registry.registerUtility(mailer, IEmailSender)
    testapp = TestApp(app)
    event = create_event(dbengine)
    for address in ("first@example.com", "gone@example.com", "last@example.com"):
        buy(testapp, event, customer_email=address)

    assert run_queued(huey) == ["sent", "skipped", "skipped"]
    statuses = {
        address: (email.status, email.attempts)
        for address, email in emails_by_address(dbengine).items()
    }
    assert statuses == {
        "first@example.com": (EmailStatus.SENT, 1),
        "gone@example.com": (EmailStatus.FAILED, 1),
        "last@example.com": (EmailStatus.SENT, 1),
    }


def test_an_email_resent_after_its_batch_is_sent_again(app, testapp, dbengine, mailer):
    buy(testapp, create_event(dbengine))
    [email] = outbox_rows(dbengine)
    assert email.status == EmailStatus.SENT

    session = app.registry["dbsession_factory"]()
    with session.begin():
        outbox.resend_email(session, email.order_id, now=NOW)
    assert len(mailer.outbox) == 2
    [email] = outbox_rows(dbengine)
    assert (email.status, email.attempts) == (EmailStatus.SENT, 1)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("huey.email_batch_size", "0"),
        ("huey.email_batch_size", "-3"),
        ("huey.email_batch_size", "many"),
        ("huey.email_batch_gather_ms", "-1"),
        ("huey.email_batch_gather_ms", "soon"),
    ],
)
def test_bad_batch_settings_fail_at_startup_naming_them(dbengine, setting, value):
    with pytest.raises(ConfigurationError, match=setting):
        main({}, **app_settings(dbengine, **{setting: value}))
