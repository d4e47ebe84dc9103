"""Plugins from ``ticketing.includes``: a tiny one (tests/plugins/gatekeeper) reacts to the
domain events after commit, refuses changes inside their transaction (each rolled back whole,
with a 422 ``change_refused``), and is left out when it is not listed. On both databases: on
PostgreSQL the purchase's phases are single statements the server commits at once, unless a
plugin listens inside their transaction."""

import pytest
from pyramid.paster import get_app
from sqlalchemy import select
from sqlalchemy.orm import Session
from webtest import TestApp

from ticketing import main
from ticketing.interfaces import IPaymentGateway
from ticketing.models import EventLogEntry, EventStatus, OrderStatus

from .conftest import app_settings
from .factories import assert_books_balance, create_event, load_event, orders_of

GATEKEEPER = "tests.plugins.gatekeeper"
DRAFT = {
    "name": "Forbidden Rave",
    "venue": "Warehouse",
    "date": "2030-07-15T18:00:00Z",
    "ticket_price": "20.00",
    "total_tickets": 50,
}


def app_with(dbengine, includes):
    return main({}, **app_settings(dbengine, **{"ticketing.includes": includes}))


@pytest.fixture
def testapp(dbengine):
    return TestApp(app_with(dbengine, f"{GATEKEEPER} ticketing.plugins.webhooks"))


def heard(testapp):
    return testapp.app.registry["gatekeeper.heard"]


def logged_types(engine):
    with Session(engine) as session:
        return sorted(session.scalars(select(EventLogEntry.type)))


def buy(testapp, event, status, email="ann@example.com", name="Ann Lee", quantity=2):
    order = {"customer_email": email, "customer_name": name, "quantity": quantity}
    return testapp.post_json(f"/api/events/{event.id}/purchase", {"order": order}, status=status)


def test_a_plugin_listed_in_an_ini_file_hears_what_committed(dbengine, tmp_path):
    settings = app_settings(dbengine, **{"ticketing.includes": f"\n    {GATEKEEPER}"})
    settings.pop("dbengine")
    ini = tmp_path / "plugin.ini"
    ini.write_text(
        "[app:main]\nuse = egg:ticketing\n"
        + "".join(f"{key} = {value}\n" for key, value in settings.items())
    )
    testapp = TestApp(get_app(str(ini)))
    event = create_event(dbengine)

    order = buy(testapp, event, 201).json["data"]

    assert heard(testapp) == [("order.reserved", order["id"]), ("order.confirmed", order["id"])]


def test_the_plugin_hears_each_event_after_its_commit_with_the_resource_as_the_api_shows_it(
    testapp, dbengine
):
    created = testapp.post_json("/api/events", {"event": {**DRAFT, "name": "Opera"}}, status=201)
    event_id = created.json["data"]["id"]
    published = testapp.post(f"/api/events/{event_id}/publish", status=200).json["data"]
    order = buy(testapp, load_event(dbengine, event_id), 201).json["data"]
    cancelled = testapp.post(f"/api/orders/{order['id']}/cancel", status=200).json["data"]

    assert heard(testapp) == [
        ("event.published", event_id),
        ("order.reserved", order["id"]),
        ("order.confirmed", order["id"]),
        ("order.cancelled", order["id"]),
    ]
    with Session(dbengine) as session:
        entries = {entry.type: entry for entry in session.scalars(select(EventLogEntry))}
    # The reservation is not logged (it becomes a confirmation or a failure at once).
    assert set(entries) == {"event.published", "order.confirmed", "order.cancelled"}
    assert entries["order.confirmed"].data == order
    assert entries["order.cancelled"].data == cancelled
    assert entries["event.published"].data["status"] == published["status"] == "published"


def test_a_refused_publication_rolls_back_whole_with_a_clear_problem(testapp, dbengine):
    event_id = testapp.post_json("/api/events", {"event": DRAFT}, status=201).json["data"]["id"]

    refused = testapp.post(f"/api/events/{event_id}/publish", status=422)

    assert refused.content_type == "application/problem+json"
    assert refused.json["code"] == "change_refused"
    assert refused.json["detail"] == "The gatekeeper keeps forbidden events off sale."
    assert load_event(dbengine, event_id).status == EventStatus.DRAFT
    assert logged_types(dbengine) == []
    assert heard(testapp) == []


def test_a_purchase_refused_at_its_reservation_takes_no_money_and_no_ticket(testapp, dbengine):
    event = create_event(dbengine, total_tickets=10)

    refused = buy(testapp, event, 422, email="bob@blocked.test")

    assert refused.json["code"] == "change_refused"
    assert orders_of(dbengine) == []
    assert load_event(dbengine, event.id).available_tickets == 10
    gateway = testapp.app.registry.getUtility(IPaymentGateway)
    assert gateway.charges == {}
    assert_books_balance(dbengine, gateway)
    assert logged_types(dbengine) == [] and heard(testapp) == []


def test_a_confirmation_refused_after_the_charge_is_refunded_and_the_tickets_go_back(
    testapp, dbengine
):
    event = create_event(dbengine, total_tickets=10)

    refused = buy(testapp, event, 422, name="Refuse At Confirmation")

    assert refused.json["code"] == "change_refused"
    [order] = orders_of(dbengine)
    assert order.status == OrderStatus.FAILED and order.failure_code == "confirmation_failed"
    assert load_event(dbengine, event.id).available_tickets == 10
    gateway = testapp.app.registry.getUtility(IPaymentGateway)
    assert len(gateway.charges) == 1 and len(gateway.refunds) == 1
    assert_books_balance(dbengine, gateway)
    # What committed is what is told: the failure, never the refused confirmation.
    assert logged_types(dbengine) == ["order.failed"]
    assert [kind for kind, _ in heard(testapp)] == ["order.reserved", "order.failed"]


def test_a_subscriber_failing_after_commit_is_logged_and_the_change_stands(
    testapp, dbengine, caplog
):
    event = create_event(dbengine, name="Flaky Jazz")

    changed = testapp.put_json(f"/api/events/{event.id}", {"event": {"venue": "Club"}}, status=200)

    assert changed.json["data"]["venue"] == "Club"
    assert load_event(dbengine, event.id).venue == "Club"
    assert "an after-commit subscriber failed" in caplog.text
    assert heard(testapp) == [("event.changed", str(event.id))]


def test_a_plugin_that_is_not_listed_is_left_out(dbengine):
    testapp = TestApp(app_with(dbengine, "ticketing.plugins.webhooks"))
    event_id = testapp.post_json("/api/events", {"event": DRAFT}, status=201).json["data"]["id"]

    testapp.post(f"/api/events/{event_id}/publish", status=200)
    buy(testapp, load_event(dbengine, event_id), 201, email="bob@blocked.test")

    assert "gatekeeper.heard" not in testapp.app.registry
    assert logged_types(dbengine) == ["event.published", "order.confirmed"]
