"""The waiting list end to end with the real parts: a cancellation on PostgreSQL sets the
tickets aside for the line, its matching job goes through the local Redis to a real
``ticketing_worker`` (the default queue), which makes the offer, and the offer's email goes
through another (the emails queue) to a real SMTP server (aiosmtpd)."""

import pytest
from webtest import TestApp

from ticketing import main
from ticketing.interfaces import IPaymentGateway

from .conftest import app_settings
from .holds import assert_books, pay
from .test_jobs_e2e import mailbox, settings, wait_for  # noqa: F401 (fixtures)
from .test_waiting_list import cancel, entry_of, join, sold_out
from .workers import worker_processes

__all__ = ["mailbox", "settings"]


@pytest.fixture
def workers(settings, tmp_path):  # noqa: F811
    """``ticketing_worker INI --queue NAME`` processes, stopped at the end."""
    with worker_processes(settings, tmp_path) as start:
        yield start


@pytest.fixture
def app(settings, pg_engine):  # noqa: F811
    return main({}, **{**app_settings(pg_engine), **settings, "dbengine": pg_engine})


def test_a_cancellation_reaches_the_first_in_line_as_an_offer_email(
    app,
    pg_engine,
    mailbox,
    workers,  # noqa: F811
):
    handler, _ = mailbox
    testapp = TestApp(app)
    event, (first_sale, _) = sold_out(testapp, pg_engine, 2, 2, name="Jazz Night")
    ann = join(testapp, event, 2, "ann@example.com").json["data"]
    workers("default")
    workers("emails")

    cancel(testapp, first_sale["id"])

    wait_for(
        lambda: any("held for you" in message["Subject"] for message in handler.messages),
        what="the offer's email",
    )
    [offer_email] = [m for m in handler.messages if "held for you" in m["Subject"]]
    assert offer_email["To"] == "Ann <ann@example.com>"
    assert "Jazz Night" in offer_email["Subject"]
    entry = entry_of(testapp, ann["id"])
    assert entry["status"] == "offered"
    assert entry["order_id"] in offer_email.get_body(preferencelist=("plain",)).get_content()

    assert pay(testapp, entry["order_id"]).json["data"]["status"] == "confirmed"
    assert entry_of(testapp, ann["id"])["status"] == "purchased"
    assert_books(pg_engine, app.registry.getUtility(IPaymentGateway))
