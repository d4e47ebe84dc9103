"""The waiting list on SQLite and PostgreSQL: joining a sold-out type, tickets given back set
aside for the line in the transaction that frees them, offers (holds and their email) made by
the matching job in order, paid, expired, given back or left; every test ends with the books
checked (tests/holds.py), the waiting lists' included."""

import datetime as dt
import uuid

import pytest
from pyramid.exceptions import ConfigurationError
from webtest import TestApp

from ticketing import main
from ticketing.domain import orders, waiting_list
from ticketing.interfaces import IPaymentGateway
from ticketing.jobs.tasks import job_transaction
from ticketing.models import EmailKind
from ticketing.models.types import utcnow

from .conftest import app_settings
from .factories import create_event, load_event, load_order
from .holds import assert_books, emails_of, pay
from .test_events_api import assert_problem
from .test_holds import run_expiry


def buy(testapp, event, quantity, email="buyer@example.com", status=201, **fields):
    order = {"customer_email": email, "customer_name": "Buyer", "quantity": quantity, **fields}
    return testapp.post_json(f"/api/events/{event.id}/purchase", {"order": order}, status=status)


def join(testapp, event, quantity, email, status=201, **fields):
    entry = {"email": email, "name": email.split("@")[0].title(), "quantity": quantity, **fields}
    return testapp.post_json(
        f"/api/events/{event.id}/waiting-list", {"entry": entry}, status=status
    )


def entry_of(testapp, entry_id):
    return testapp.get(f"/api/waiting-list/{entry_id}").json["data"]


def cancel(testapp, order_id):
    return testapp.post(f"/api/orders/{order_id}/cancel").json["data"]


def availability(testapp, event):
    return testapp.get(f"/api/events/{event.id}/availability").json["data"]


def sold_out(testapp, dbengine, *quantities, **fields):
    """A published event whose tickets the orders of ``quantities`` bought, all of them."""
    event = create_event(dbengine, total_tickets=sum(quantities), **fields)
    bought = [
        buy(testapp, event, quantity, email=f"buyer{number}@example.com").json["data"]
        for number, quantity in enumerate(quantities)
    ]
    return event, bought


def offers_sent(mailer):
    return [message for message in mailer.outbox if "held for you" in message["Subject"]]


def run_match(app, ticket_type_id, now=None):
    with job_transaction(app.registry["dbsession_factory"]) as (dbsession, _):
        return waiting_list.match(
            dbsession,
            ticket_type_id,
            now=now or utcnow(),
            offer_for=app.registry["waitlist_offer_for"],
        )


@pytest.fixture
def queued_app(dbengine):
    """An app whose jobs are queued (in memory) and never run: what the transactions alone do."""
    return main({}, **app_settings(dbengine, **{"huey.immediate": "false"}))


# --- the scenario -------------------------------------------------------------------------


def test_a_sold_out_show_offers_a_cancellation_to_the_first_in_line_who_pays_it(
    app, testapp, dbengine, gateway, mailer
):
    event, (first_sale, _) = sold_out(testapp, dbengine, 2, 2, name="Sold Out Show")
    ann = join(testapp, event, 2, "ann@example.com").json["data"]
    bob = join(testapp, event, 1, "Bob@Example.com ").json["data"]
    cid = join(testapp, event, 2, "cid@example.com").json["data"]
    assert [ann["position"], bob["position"], cid["position"]] == [1, 2, 3]
    assert (ann["status"], bob["email"]) == ("waiting", "bob@example.com")

    before = utcnow()
    cancel(testapp, first_sale["id"])

    ann = entry_of(testapp, ann["id"])
    assert (ann["status"], ann["position"]) == ("offered", None)
    offer = testapp.get(f"/api/orders/{ann['order_id']}").json["data"]
    assert (offer["status"], offer["quantity"], offer["total_amount"]) == ("reserved", 2, "100.00")
    assert (offer["customer_email"], offer["customer_name"]) == ("ann@example.com", "Ann")
    expires_at = dt.datetime.fromisoformat(offer["expires_at"])
    assert before + dt.timedelta(hours=24) <= expires_at <= utcnow() + dt.timedelta(hours=24)
    assert ann["offer_expires_at"] == offer["expires_at"]
    [email] = offers_sent(mailer)
    assert email["To"] == "Ann <ann@example.com>"
    assert "Sold Out Show" in email["Subject"]
    assert ann["order_id"] in email.get_body(preferencelist=("plain",)).get_content()
    assert emails_of(dbengine, uuid.UUID(offer["id"])) == [EmailKind.WAITING_LIST_OFFER]
    assert [entry_of(testapp, bob["id"])["position"], entry_of(testapp, cid["id"])["position"]] == [
        1,
        2,
    ]
    shown = availability(testapp, event)["event"]
    assert shown == {
        "capacity": 4,
        "sold": 2,
        "held": 2,
        "set_aside": 0,
        "offered": 2,
        "waiting": 2,
        "available": 0,
    }
    assert_books(dbengine, gateway)

    paid = pay(testapp, ann["order_id"]).json["data"]

    assert paid["status"] == "confirmed"
    assert entry_of(testapp, ann["id"])["status"] == "purchased"
    with job_transaction(app.registry["dbsession_factory"]) as (dbsession, _):
        summary = orders.sales_summary(dbsession, event.id)
    assert summary["tickets_sold"] == 4
    assert summary["waiting_list"] == {
        "waiting": 2,
        "tickets_wanted": 3,
        "offers_outstanding": 0,
        "tickets_offered": 0,
        "offers_purchased": 1,
        "offers_expired": 0,
        "set_aside": 0,
    }
    assert summary["ticket_types"][0]["waiting_list"]["offers_purchased"] == 1
    assert_books(dbengine, gateway)


# --- joining --------------------------------------------------------------------------------------


def test_joining_is_refused_while_the_type_sells_what_is_asked(testapp, dbengine, gateway):
    event = create_event(dbengine, total_tickets=3)
    buy(testapp, event, 2)

    body = assert_problem(
        join(testapp, event, 1, "ann@example.com", status=409), 409, "tickets_available"
    )
    assert body["available_tickets"] == 1
    # Fewer left than asked for: the line is open.
    assert join(testapp, event, 2, "ann@example.com").json["data"]["position"] == 1
    assert_books(dbengine, gateway)


def test_one_entry_per_email_and_type_while_it_is_in_line(testapp, dbengine, gateway):
    event, _ = sold_out(testapp, dbengine, 2)
    entry = join(testapp, event, 1, "ann@example.com").json["data"]

    response = join(testapp, event, 2, " ANN@example.com", status=409)

    assert_problem(response, 409, "already_on_waiting_list")
    testapp.delete(f"/api/waiting-list/{entry['id']}", status=204)
    assert join(testapp, event, 2, "ann@example.com").json["data"]["position"] == 1
    assert_books(dbengine, gateway)


def test_the_type_is_named_when_the_event_sells_several(testapp, dbengine, gateway):
    event, _ = sold_out(testapp, dbengine, 2)
    testapp.post_json(
        f"/api/events/{event.id}/ticket-types",
        {"ticket_type": {"name": "VIP", "price": "90.00", "capacity": 0}},
    )

    assert_problem(
        join(testapp, event, 1, "ann@example.com", status=400), 400, "ticket_type_required"
    )
    vip = testapp.get(f"/api/events/{event.id}/ticket-types").json["data"][1]
    entry = join(testapp, event, 1, "ann@example.com", ticket_type_id=vip["id"]).json["data"]
    assert entry["ticket_type_id"] == vip["id"]
    unknown = join(testapp, event, 1, "bob@example.com", ticket_type_id=str(event.id), status=404)
    assert_problem(unknown, 404, "ticket_type_not_found")
    assert_books(dbengine, gateway)


def test_what_cannot_be_joined(testapp, dbengine):
    event = create_event(dbengine, total_tickets=1, available_tickets=0)
    assert_problem(join(testapp, event, 11, "a@example.com", status=400), 400, "validation_failed")
    bad_email = join(testapp, event, 1, "not-an-email", status=400)
    assert_problem(bad_email, 400, "validation_failed")
    draft = create_event(dbengine, status="draft", available_tickets=0)
    assert_problem(join(testapp, draft, 1, "a@example.com", status=409), 409, "event_not_on_sale")
    testapp.get("/api/waiting-list/not-a-uuid", status=404)
    missing = testapp.get(f"/api/waiting-list/{event.id}", status=404)
    assert_problem(missing, 404, "waiting_list_entry_not_found")


# --- tickets coming back --------------------------------------------------------------------------


def test_tickets_given_back_are_kept_off_public_sale_before_the_job_runs(queued_app, dbengine):
    testapp = TestApp(queued_app)
    event, (first_sale, _) = sold_out(testapp, dbengine, 2, 1)
    entry = join(testapp, event, 2, "ann@example.com").json["data"]

    cancel(testapp, first_sale["id"])

    # The matching job has not run: the tickets are set aside, not on sale.
    shown = availability(testapp, event)
    assert (shown["event"]["available"], shown["event"]["set_aside"]) == (0, 2)
    assert shown["ticket_types"][0]["set_aside"] == 2
    assert_problem(buy(testapp, event, 1, status=409), 409, "insufficient_tickets")
    assert entry_of(testapp, entry["id"])["status"] == "waiting"
    assert_books(dbengine, queued_app.registry.getUtility(IPaymentGateway))

    report = run_match(queued_app, event.ticket_types[0].id)

    assert [str(each) for each in report.offered] == [entry["id"]]
    assert entry_of(testapp, entry["id"])["status"] == "offered"
    assert availability(testapp, event)["event"]["set_aside"] == 0
    assert_books(dbengine, queued_app.registry.getUtility(IPaymentGateway))


def test_nobody_waiting_puts_tickets_given_back_on_sale(testapp, dbengine, gateway):
    event, (first_sale,) = sold_out(testapp, dbengine, 2)

    cancel(testapp, first_sale["id"])

    assert availability(testapp, event)["event"]["available"] == 2
    assert_books(dbengine, gateway)


def test_only_what_the_line_wants_is_set_aside(testapp, dbengine, gateway):
    event, (big_sale, _) = sold_out(testapp, dbengine, 5, 1)
    entry = join(testapp, event, 2, "ann@example.com").json["data"]

    cancel(testapp, big_sale["id"])

    assert entry_of(testapp, entry["id"])["status"] == "offered"
    shown = availability(testapp, event)["event"]
    assert (shown["available"], shown["held"], shown["set_aside"]) == (3, 2, 0)
    assert_books(dbengine, gateway)


def test_room_another_type_gives_back_goes_to_a_line_the_event_s_capacity_limits(
    testapp, dbengine, gateway
):
    """General admission is limited by the event alone: a VIP cancelled frees the event's room,
    which its line gets before public sale."""
    event = create_event(dbengine, total_tickets=4)
    vip = testapp.post_json(
        f"/api/events/{event.id}/ticket-types",
        {"ticket_type": {"name": "VIP", "price": "90.00", "capacity": 2}},
    ).json["data"]
    general = event.ticket_types[0].id
    buy(testapp, event, 2, ticket_type_id=str(general))
    vip_sale = buy(testapp, event, 2, email="v@example.com", ticket_type_id=vip["id"]).json["data"]
    ann = join(testapp, event, 1, "ann@example.com", ticket_type_id=str(general)).json["data"]

    cancel(testapp, vip_sale["id"])

    assert entry_of(testapp, ann["id"])["status"] == "offered"
    shown = {row["name"]: row for row in availability(testapp, event)["ticket_types"]}
    assert (shown["General admission"]["held"], shown["VIP"]["available"]) == (1, 1)
    assert availability(testapp, event)["event"]["available"] == 1
    assert_books(dbengine, gateway)


def test_an_entry_that_wants_more_than_came_back_lets_one_behind_it_pass_and_keeps_its_place(
    testapp, dbengine, gateway
):
    event, sales = sold_out(testapp, dbengine, 1, 1, 1, 1)
    ann = join(testapp, event, 2, "ann@example.com").json["data"]
    bob = join(testapp, event, 1, "bob@example.com").json["data"]

    cancel(testapp, sales[0]["id"])

    assert entry_of(testapp, bob["id"])["status"] == "offered"
    assert entry_of(testapp, ann["id"])["position"] == 1

    cancel(testapp, sales[1]["id"])

    # Nobody in line fits one ticket: it waits, set aside, for more.
    assert availability(testapp, event)["event"]["set_aside"] == 1
    assert_problem(buy(testapp, event, 1, status=409), 409, "insufficient_tickets")
    assert_books(dbengine, gateway)

    cancel(testapp, sales[2]["id"])

    assert entry_of(testapp, ann["id"])["status"] == "offered"
    assert availability(testapp, event)["event"]["set_aside"] == 0
    assert_books(dbengine, gateway)


def test_an_offer_not_paid_in_time_expires_and_goes_to_the_next_in_line(
    app, testapp, dbengine, gateway, mailer
):
    event, (first_sale, _) = sold_out(testapp, dbengine, 2, 2)
    ann = join(testapp, event, 2, "ann@example.com").json["data"]
    bob = join(testapp, event, 2, "bob@example.com").json["data"]
    cancel(testapp, first_sale["id"])
    ann = entry_of(testapp, ann["id"])

    assert run_expiry(app, utcnow() + dt.timedelta(hours=23)).expired == 0
    report = run_expiry(app, utcnow() + dt.timedelta(hours=24, minutes=1))

    assert report.expired == 1
    assert load_order(dbengine, ann["order_id"]).status == "expired"
    ann = entry_of(testapp, ann["id"])
    assert (ann["status"], ann["offer_expires_at"]) == ("expired", None)
    bob = entry_of(testapp, bob["id"])
    assert bob["status"] == "offered"
    assert [message["To"] for message in offers_sent(mailer)] == [
        "Ann <ann@example.com>",
        "Bob <bob@example.com>",
    ]
    # Paying the expired offer finds its tickets gone to the next in line.
    assert_problem(pay(testapp, ann["order_id"], status=409), 409, "hold_expired")
    assert_books(dbengine, gateway)


def test_an_expired_offer_paid_while_its_tickets_are_still_there_is_purchased(
    app, testapp, dbengine, gateway
):
    event, (first_sale,) = sold_out(testapp, dbengine, 1)
    ann = join(testapp, event, 1, "ann@example.com").json["data"]
    cancel(testapp, first_sale["id"])
    run_expiry(app, utcnow() + dt.timedelta(hours=25))
    assert availability(testapp, event)["event"]["available"] == 1  # nobody else waits

    paid = pay(testapp, entry_of(testapp, ann["id"])["order_id"]).json["data"]

    assert paid["status"] == "confirmed"
    assert entry_of(testapp, ann["id"])["status"] == "purchased"
    assert_books(dbengine, gateway)


def test_an_event_no_longer_on_sale_offers_nothing_and_puts_back_what_was_set_aside(
    queued_app, dbengine
):
    testapp = TestApp(queued_app)
    event, (first_sale,) = sold_out(testapp, dbengine, 1)
    ann = join(testapp, event, 1, "ann@example.com").json["data"]
    cancel(testapp, first_sale["id"])  # set aside; its matching job queued, never run
    after_the_show = event.date + dt.timedelta(hours=1)

    report = run_match(queued_app, event.ticket_types[0].id, now=after_the_show)

    assert (report.offered, report.released) == ([], 1)
    assert entry_of(testapp, ann["id"])["status"] == "waiting"
    # Nor is it set aside again for the line (which would owe the job again, for ever).
    with job_transaction(queued_app.registry["dbsession_factory"]) as (dbsession, _):
        assert waiting_list.set_aside_for_waiters(dbsession, event.id, now=after_the_show) == 0
    assert availability(testapp, event)["event"]["set_aside"] == 0
    assert_books(dbengine, queued_app.registry.getUtility(IPaymentGateway))


def test_an_offer_given_back_goes_to_the_next_in_line_at_once(testapp, dbengine, gateway):
    event, (first_sale,) = sold_out(testapp, dbengine, 1)
    ann = join(testapp, event, 1, "ann@example.com").json["data"]
    bob = join(testapp, event, 1, "bob@example.com").json["data"]
    cancel(testapp, first_sale["id"])

    testapp.post(f"/api/orders/{entry_of(testapp, ann['id'])['order_id']}/release")

    assert entry_of(testapp, ann["id"])["status"] == "expired"
    assert entry_of(testapp, bob["id"])["status"] == "offered"
    assert_books(dbengine, gateway)


def test_leaving_with_an_offer_out_gives_it_to_the_next(testapp, dbengine, gateway):
    event, (first_sale,) = sold_out(testapp, dbengine, 1)
    ann = join(testapp, event, 1, "ann@example.com").json["data"]
    bob = join(testapp, event, 1, "bob@example.com").json["data"]
    cancel(testapp, first_sale["id"])
    order_id = entry_of(testapp, ann["id"])["order_id"]

    testapp.delete(f"/api/waiting-list/{ann['id']}", status=204)

    left = entry_of(testapp, ann["id"])
    assert (left["status"], left["order_id"]) == ("left", order_id)
    assert load_order(dbengine, order_id).status == "cancelled"
    assert entry_of(testapp, bob["id"])["status"] == "offered"
    testapp.delete(f"/api/waiting-list/{ann['id']}", status=204)  # again: nothing changes
    assert_books(dbengine, gateway)


def test_leaving_frees_what_was_set_aside_for_the_one_who_left(testapp, dbengine, gateway):
    event, sales = sold_out(testapp, dbengine, 1, 1)
    ann = join(testapp, event, 2, "ann@example.com").json["data"]
    cancel(testapp, sales[0]["id"])
    assert availability(testapp, event)["event"]["set_aside"] == 1

    testapp.delete(f"/api/waiting-list/{ann['id']}", status=204)

    shown = availability(testapp, event)["event"]
    assert (shown["set_aside"], shown["available"], shown["waiting"]) == (0, 1, 0)
    assert_books(dbengine, gateway)


def test_an_entry_whose_offer_was_paid_cannot_leave(testapp, dbengine, gateway):
    event, (first_sale,) = sold_out(testapp, dbengine, 1)
    ann = join(testapp, event, 1, "ann@example.com").json["data"]
    cancel(testapp, first_sale["id"])
    pay(testapp, entry_of(testapp, ann["id"])["order_id"])

    response = testapp.delete(f"/api/waiting-list/{ann['id']}", status=409)

    assert_problem(response, 409, "waiting_list_entry_purchased")
    assert_books(dbengine, gateway)


def test_a_raised_capacity_goes_to_the_line(testapp, dbengine, gateway):
    event, _ = sold_out(testapp, dbengine, 2)
    ann = join(testapp, event, 2, "ann@example.com").json["data"]

    testapp.put_json(f"/api/events/{event.id}", {"event": {"total_tickets": 5}})

    assert entry_of(testapp, ann["id"])["status"] == "offered"
    assert availability(testapp, event)["event"]["available"] == 1
    assert_books(dbengine, gateway)


def test_the_sweep_offers_what_a_lost_job_left(queued_app, dbengine):
    testapp = TestApp(queued_app)
    event, (first_sale,) = sold_out(testapp, dbengine, 1)
    ann = join(testapp, event, 1, "ann@example.com").json["data"]
    cancel(testapp, first_sale["id"])  # its matching job is queued, never run
    jobs = queued_app.registry["waiting_list_jobs"]

    with job_transaction(queued_app.registry["dbsession_factory"]) as (dbsession, _):
        stranded = waiting_list.types_to_match(dbsession, now=utcnow())
    for ticket_type_id in stranded:
        jobs.match.call_local(str(ticket_type_id))

    assert entry_of(testapp, ann["id"])["status"] == "offered"
    assert load_event(dbengine, event.id).available_tickets == 0
    assert_books(dbengine, queued_app.registry.getUtility(IPaymentGateway))


# --- the organisers' view -------------------------------------------------------------------------


def test_organisers_see_the_queue_in_order(testapp, dbengine, gateway):
    event, _ = sold_out(testapp, dbengine, 2)
    emails = [f"person{number}@example.com" for number in range(3)]
    for email in emails:
        join(testapp, event, 1, email)
    testapp.delete(
        f"/api/waiting-list/{testapp.get(f'/api/events/{event.id}/waiting-list').json['data'][1]['id']}"
    )

    first = testapp.get(f"/api/events/{event.id}/waiting-list", {"limit": 2}).json
    rest = testapp.get(
        f"/api/events/{event.id}/waiting-list", {"cursor": first["meta"]["next_cursor"]}
    ).json
    waiting = testapp.get(f"/api/events/{event.id}/waiting-list", {"status": "waiting"}).json

    entries = first["data"] + rest["data"]
    assert [each["email"] for each in entries] == emails
    assert [each["position"] for each in entries] == [1, None, 2]
    assert [each["status"] for each in entries] == ["waiting", "left", "waiting"]
    assert [each["email"] for each in waiting["data"]] == [emails[0], emails[2]]
    assert availability(testapp, event)["event"]["waiting"] == 2
    assert_books(dbengine, gateway)


def test_the_offer_lasts_the_setting(dbengine):
    app = main({}, **app_settings(dbengine, **{"ticketing.waitlist_offer_hours": "1.5"}))
    testapp = TestApp(app)
    event, (first_sale,) = sold_out(testapp, dbengine, 1)
    ann = join(testapp, event, 1, "ann@example.com").json["data"]
    before = utcnow()

    cancel(testapp, first_sale["id"])

    expires_at = dt.datetime.fromisoformat(entry_of(testapp, ann["id"])["offer_expires_at"])
    assert before + dt.timedelta(minutes=90) <= expires_at <= utcnow() + dt.timedelta(minutes=90)


@pytest.mark.parametrize("hours", ["0", "-1", "soon"])
def test_a_bad_offer_duration_fails_at_startup_naming_it(dbengine, hours):
    with pytest.raises(ConfigurationError, match="ticketing.waitlist_offer_hours"):
        main({}, **app_settings(dbengine, **{"ticketing.waitlist_offer_hours": hours}))
