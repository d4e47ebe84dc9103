"""Races of the waiting list on PostgreSQL, with real threads, each request or job with a
session of its own: tickets given back are never offered twice nor to anyone out of turn, and
never sold to the public while someone waits for them; the books balance every time."""

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from webtest import TestApp

from ticketing import main
from ticketing.interfaces import IPaymentGateway
from ticketing.models import EntryStatus, WaitingListEntry

from .conftest import app_settings
from .holds import assert_books
from .test_purchase_concurrency import run_at_once
from .test_waiting_list import availability, buy, cancel, join, run_match, sold_out

ROUNDS = 5


@pytest.fixture
def app(pg_engine):
    return main({}, **app_settings(pg_engine))


@pytest.fixture
def queued_app(pg_engine):
    """Jobs queued and never run: the transactions alone."""
    return main({}, **app_settings(pg_engine, **{"huey.immediate": "false"}))


def statuses(engine, event):
    with Session(engine) as session:
        return [
            (entry.email, str(entry.status))
            for entry in session.scalars(
                select(WaitingListEntry)
                .where(WaitingListEntry.event_id == event.id)
                .order_by(WaitingListEntry.created_at, WaitingListEntry.id)
            )
        ]


def gateway_of(app):
    return app.registry.getUtility(IPaymentGateway)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_cancellations_at_once_offer_each_ticket_once_and_skip_nobody(app, pg_engine, round_):
    testapp = TestApp(app)
    event, sales = sold_out(testapp, pg_engine, 1, 1, 1)
    for name in ("ann", "bob", "cid"):
        join(testapp, event, 1, f"{name}@example.com")

    run_at_once(2, lambda number: cancel(TestApp(app), sales[number]["id"]))

    assert statuses(pg_engine, event) == [
        ("ann@example.com", "offered"),
        ("bob@example.com", "offered"),
        ("cid@example.com", "waiting"),
    ]
    assert availability(testapp, event)["event"]["set_aside"] == 0
    assert_books(pg_engine, gateway_of(app))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_buyers_racing_a_cancellation_never_take_what_the_line_waits_for(
    queued_app, pg_engine, round_
):
    """The matching job has not run (queued): between the cancellation's commit and the job,
    the tickets are set aside, and every buyer is refused."""
    testapp = TestApp(queued_app)
    event, (first_sale, _) = sold_out(testapp, pg_engine, 2, 2)
    join(testapp, event, 2, "ann@example.com")

    def race(number):
        if number == 0:
            return cancel(TestApp(queued_app), first_sale["id"])["status"]
        return buy(
            TestApp(queued_app), event, 1, email=f"b{number}@example.com", status="*"
        ).status_int

    outcomes = run_at_once(9, race)

    assert outcomes[0] == "cancelled"
    assert set(outcomes[1:]) == {409}
    assert availability(testapp, event)["event"]["set_aside"] == 2
    report = run_match(queued_app, event.ticket_types[0].id)
    assert len(report.offered) == 1
    assert statuses(pg_engine, event) == [("ann@example.com", "offered")]
    assert_books(pg_engine, gateway_of(queued_app))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_matching_jobs_at_once_make_one_offer_per_entry(queued_app, pg_engine, round_):
    testapp = TestApp(queued_app)
    event, sales = sold_out(testapp, pg_engine, 1, 1, 1, 1)
    for name in ("ann", "bob", "cid"):
        join(testapp, event, 1, f"{name}@example.com")
    cancel(testapp, sales[0]["id"])
    cancel(testapp, sales[1]["id"])

    reports = run_at_once(4, lambda _: run_match(queued_app, event.ticket_types[0].id))

    assert sum(len(report.offered) for report in reports) == 2
    assert [status for _, status in statuses(pg_engine, event)] == ["offered", "offered", "waiting"]
    assert_books(pg_engine, gateway_of(queued_app))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_joins_racing_a_cancellation_are_told_to_buy_or_get_the_tickets(app, pg_engine, round_):
    """A join either comes before the cancellation (in line: the tickets are set aside for it)
    or after (told to buy them); never in line while its tickets are on sale."""
    testapp = TestApp(app)
    event, (first_sale, _) = sold_out(testapp, pg_engine, 1, 1)

    def race(number):
        if number == 0:
            return cancel(TestApp(app), first_sale["id"])["status"]
        return join(TestApp(app), event, 1, f"p{number}@example.com", status="*").status_int

    outcomes = run_at_once(4, race)

    assert set(outcomes[1:]) <= {201, 409}
    shown = availability(testapp, event)["event"]
    entries = statuses(pg_engine, event)
    if shown["available"]:
        assert not [each for each in entries if each[1] == EntryStatus.WAITING]
    else:
        assert [status for _, status in entries].count("offered") == 1
    assert_books(pg_engine, gateway_of(app))
