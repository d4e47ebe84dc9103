"""Ticket types through HTTP, on SQLite and PostgreSQL: the resource, buying them, one order of
several types, what is left, and money in each currency's own minor unit."""

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from webtest import TestApp

from ticketing import main

from .conftest import app_settings
from .factories import assert_books_balance, create_event, load_event
from .test_events_api import assert_problem, assert_validation_error

ORGANISER = {"Authorization": "Bearer organiser-key"}


def future(**delta):
    return (dt.datetime.now(dt.UTC) + dt.timedelta(**delta)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def settings(dbengine):
    # Keys required, so that what buyers see and what organisers see can differ.
    return app_settings(
        dbengine,
        **{
            "ticketing.require_api_key": "true",
            "ticketing.api_keys": "organiser-key",
            "ticketing.currencies": "USD EUR JPY",
        },
    )


def new_event(testapp, publish=True, **fields):
    body = {
        "name": "Gala",
        "venue": "Hall",
        "date": future(days=60),
        "ticket_price": "50.00",
        "total_tickets": 100,
        **fields,
    }
    event = testapp.post_json("/api/events", {"event": body}, headers=ORGANISER).json["data"]
    if publish:
        testapp.post(f"/api/events/{event['id']}/publish", headers=ORGANISER)
    return event


def add_type(testapp, event, status=201, **fields):
    body = {"name": "VIP", "price": "120.00", **fields}
    return testapp.post_json(
        f"/api/events/{event['id']}/ticket-types",
        {"ticket_type": body},
        headers=ORGANISER,
        status=status,
    )


def change_type(testapp, event, type_id, status=200, **fields):
    return testapp.put_json(
        f"/api/events/{event['id']}/ticket-types/{type_id}",
        {"ticket_type": fields},
        headers=ORGANISER,
        status=status,
    )


def buy(testapp, event, status=201, **fields):
    order = {"customer_email": "ann@example.com", "customer_name": "Ann", **fields}
    return testapp.post_json(f"/api/events/{event['id']}/purchase", {"order": order}, status=status)


def general_admission(event):
    [only] = event["ticket_types"]
    return only["id"]


def availability(testapp, event, headers=None):
    return testapp.get(f"/api/events/{event['id']}/availability", headers=headers).json["data"]


# --- the resource ---------------------------------------------------------------------------


def test_an_event_created_with_the_seed_body_sells_general_admission(testapp):
    event = new_event(testapp)
    listed = testapp.get(f"/api/events/{event['id']}/ticket-types").json["data"]

    [general] = listed
    assert general["name"] == "General admission"
    assert (general["price"], general["currency"]) == ("50.00", "USD")
    assert general["capacity"] is None and general["available"] == 100
    assert (general["min_per_order"], general["max_per_order"]) == (1, 10)
    assert general["hidden"] is False and general["on_sale"] is True
    assert event["ticket_types"] == [
        {"id": general["id"], "name": "General admission", "price": "50.00", "available": 100}
    ]


def test_create_answers_201_with_location_and_every_field(testapp):
    event = new_event(testapp)
    response = add_type(testapp, event, description="Front rows", capacity=20)

    created = response.json["data"]
    assert response.location == (
        f"http://tickets.test/api/events/{event['id']}/ticket-types/{created['id']}"
    )
    assert set(created) == {
        "id",
        "event_id",
        "name",
        "description",
        "price",
        "currency",
        "capacity",
        "available",
        "sales_start",
        "sales_end",
        "on_sale",
        "min_per_order",
        "max_per_order",
        "hidden",
        "position",
        "created_at",
        "updated_at",
    }
    assert (created["name"], created["price"], created["capacity"]) == ("VIP", "120.00", 20)
    assert created["available"] == 20 and created["position"] == 1
    assert testapp.get(response.location).json["data"] == created


def test_types_are_listed_in_the_organisers_display_order(testapp):
    event = new_event(testapp)
    add_type(testapp, event, name="Late", position=9)
    add_type(testapp, event, name="Early", position=0)
    names = [t["name"] for t in testapp.get(f"/api/events/{event['id']}/ticket-types").json["data"]]
    assert names == ["General admission", "Early", "Late"]


def test_hidden_types_are_for_organisers_only(testapp):
    event = new_event(testapp)
    hidden = add_type(testapp, event, name="Crew", hidden=True).json["data"]
    url = f"/api/events/{event['id']}/ticket-types"

    assert [t["name"] for t in testapp.get(url).json["data"]] == ["General admission"]
    assert len(testapp.get(url, headers=ORGANISER).json["data"]) == 2
    assert_problem(testapp.get(f"{url}/{hidden['id']}", status=404), 404, "ticket_type_not_found")
    assert testapp.get(f"{url}/{hidden['id']}", headers=ORGANISER).json["data"]["hidden"]
    assert [
        t["name"] for t in testapp.get(f"/api/events/{event['id']}").json["data"]["ticket_types"]
    ] == ["General admission"]
    # A hidden type cannot be bought without access, and looks unknown.
    response = buy(testapp, event, ticket_type_id=hidden["id"], quantity=1, status=404)
    assert response.json["code"] == "ticket_type_not_found"


def test_a_drafts_types_are_for_organisers_only(testapp):
    draft = new_event(testapp, publish=False)
    testapp.get(f"/api/events/{draft['id']}/ticket-types", status=404)
    testapp.get(f"/api/events/{draft['id']}/availability", status=404)
    assert testapp.get(f"/api/events/{draft['id']}/ticket-types", headers=ORGANISER).json["data"]


def test_changing_types_needs_an_organiser_key(testapp):
    event = new_event(testapp)
    url = f"/api/events/{event['id']}/ticket-types"
    testapp.post_json(url, {"ticket_type": {"name": "VIP", "price": "1"}}, status=401)
    testapp.put_json(
        f"{url}/{general_admission(event)}", {"ticket_type": {"name": "X"}}, status=401
    )
    testapp.delete(f"{url}/{general_admission(event)}", status=401)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"name": ""}, "ticket_type.name", id="name-empty"),
        pytest.param({"name": "n" * 201}, "ticket_type.name", id="name-201"),
        pytest.param({"description": "d" * 2001}, "ticket_type.description", id="description-long"),
        pytest.param({"price": "-1"}, "ticket_type.price", id="price-negative"),
        pytest.param({"price": 1.5}, "ticket_type.price", id="price-float"),
        pytest.param({"price": "12.345"}, "ticket_type.price", id="price-3-decimals-usd"),
        pytest.param({"capacity": -1}, "ticket_type.capacity", id="capacity-negative"),
        pytest.param({"capacity": "5"}, "ticket_type.capacity", id="capacity-string"),
        pytest.param({"min_per_order": 0}, "ticket_type.min_per_order", id="min-zero"),
        pytest.param({"max_per_order": 11}, "ticket_type.max_per_order", id="max-above-ceiling"),
        pytest.param(
            {"min_per_order": 4, "max_per_order": 2},
            "ticket_type.max_per_order",
            id="max-below-min",
        ),
        pytest.param(
            {"sales_start": future(days=3), "sales_end": future(days=2)},
            "ticket_type.sales_end",
            id="sales-end-before-start",
        ),
        pytest.param({"sales_start": "2031-01-01T00:00:00"}, "ticket_type.sales_start", id="naive"),
        pytest.param({"hidden": "yes"}, "ticket_type.hidden", id="hidden-string"),
        pytest.param({"colour": "red"}, "ticket_type.colour", id="unknown-field"),
    ],
)
def test_create_refuses_invalid_fields(testapp, fields, field):
    event = new_event(testapp)
    assert_validation_error(add_type(testapp, event, status=400, **fields), field)
    listed = testapp.get(f"/api/events/{event['id']}/ticket-types", headers=ORGANISER)
    assert len(listed.json["data"]) == 1


def test_capacity_may_not_drop_below_what_was_sold(testapp):
    event = new_event(testapp)
    vip = add_type(testapp, event, capacity=5).json["data"]
    buy(testapp, event, ticket_type_id=vip["id"], quantity=3)

    response = change_type(testapp, event, vip["id"], capacity=2, status=409)
    assert_problem(response, 409, "capacity_below_sold")
    changed = change_type(testapp, event, vip["id"], capacity=3).json["data"]
    assert (changed["capacity"], changed["available"]) == (3, 0)
    assert change_type(testapp, event, vip["id"], capacity=None).json["data"]["capacity"] is None


def test_a_price_change_leaves_orders_at_their_price(testapp):
    event = new_event(testapp)
    order = buy(testapp, event, quantity=1).json["data"]
    change_type(testapp, event, general_admission(event), price="55.00")
    assert testapp.get(f"/api/orders/{order['id']}").json["data"]["items"][0]["unit_price"] == (
        "50.00"
    )
    assert testapp.get(f"/api/events/{event['id']}").json["data"]["ticket_price"] == "55.00"


def test_delete_refuses_a_type_that_was_sold_and_the_last_one(testapp):
    event = new_event(testapp)
    vip = add_type(testapp, event).json["data"]
    url = f"/api/events/{event['id']}/ticket-types"

    buy(testapp, event, ticket_type_id=vip["id"], quantity=1)
    assert_problem(
        testapp.delete(f"{url}/{vip['id']}", headers=ORGANISER, status=409),
        409,
        "ticket_type_has_orders",
    )
    spare = add_type(testapp, event, name="Spare").json["data"]
    testapp.delete(f"{url}/{spare['id']}", headers=ORGANISER, status=204)
    testapp.get(f"{url}/{spare['id']}", headers=ORGANISER, status=404)

    lonely = new_event(testapp)
    response = testapp.delete(
        f"/api/events/{lonely['id']}/ticket-types/{general_admission(lonely)}",
        headers=ORGANISER,
        status=409,
    )
    assert_problem(response, 409, "last_ticket_type")


def test_an_unknown_or_malformed_type_id_is_404(testapp):
    event = new_event(testapp)
    url = f"/api/events/{event['id']}/ticket-types"
    for type_id in ("00000000-0000-4000-8000-000000000000", "not-a-uuid"):
        assert_problem(testapp.get(f"{url}/{type_id}", status=404), 404, "ticket_type_not_found")
    other = new_event(testapp)
    # Another event's type is not found under this one.
    testapp.get(f"{url}/{general_admission(other)}", status=404)


# --- buying ---------------------------------------------------------------------------------


def test_the_done_when_sale_vip_standard_and_early_bird_in_one_order(testapp, dbengine, gateway):
    event = new_event(testapp, ticket_price="50.00", total_tickets=100)
    standard = general_admission(event)
    change_type(testapp, event, standard, name="Standard")
    vip = add_type(testapp, event, name="VIP", price="120.00", capacity=20).json["data"]
    early = add_type(
        testapp, event, name="Early bird", price="35.00", sales_end=future(days=10)
    ).json["data"]

    response = buy(
        testapp,
        event,
        items=[
            {"ticket_type_id": vip["id"], "quantity": 2},
            {"ticket_type_id": standard, "quantity": 3},
            {"ticket_type_id": early["id"], "quantity": 1},
        ],
        idempotency_key="gala-1",
    )

    order = response.json["data"]
    assert order["status"] == "confirmed"
    assert order["quantity"] == 6
    assert order["unit_price"] is None  # the items' prices differ
    assert order["total_amount"] == "425.00"  # 2 x 120 + 3 x 50 + 1 x 35
    assert [(i["name"], i["quantity"], i["unit_price"], i["subtotal"]) for i in order["items"]] == [
        ("VIP", 2, "120.00", "240.00"),
        ("Standard", 3, "50.00", "150.00"),
        ("Early bird", 1, "35.00", "35.00"),
    ]
    assert testapp.get(f"/api/orders/{order['id']}").json["data"] == order
    assert gateway.kept_charges()[0].amount_cents == 42500
    left = {row["name"]: row for row in availability(testapp, event)["ticket_types"]}
    assert (left["VIP"]["sold"], left["VIP"]["available"]) == (2, 18)
    assert (left["Standard"]["sold"], left["Standard"]["available"]) == (3, 94)
    assert availability(testapp, event)["event"] == {
        "capacity": 100,
        "sold": 6,
        "held": 0,
        "set_aside": 0,
        "offered": 0,
        "waiting": 0,
        "available": 94,
    }
    assert_books_balance(dbengine, gateway)


def test_the_seed_body_with_several_types_on_sale_must_name_one(testapp, gateway):
    event = new_event(testapp)
    vip = add_type(testapp, event).json["data"]

    response = buy(testapp, event, quantity=1, status=400)

    body = assert_problem(response, 400, "ticket_type_required")
    assert {t["name"] for t in body["ticket_types"]} == {"General admission", "VIP"}
    assert vip["id"] in body["detail"]
    assert gateway.calls == []
    # A type that is not on sale does not count: the seed's body buys the other.
    change_type(testapp, event, vip["id"], sales_start=future(days=5))
    assert buy(testapp, event, quantity=1).json["data"]["items"][0]["name"] == "General admission"


def test_a_type_outside_its_sales_window_is_not_on_sale(testapp):
    event = new_event(testapp)
    later = add_type(testapp, event, sales_start=future(days=5)).json["data"]
    response = buy(testapp, event, ticket_type_id=later["id"], quantity=1, status=409)
    assert_problem(response, 409, "ticket_type_not_on_sale")
    assert (
        testapp.get(f"/api/events/{event['id']}/ticket-types/{later['id']}").json["data"]["on_sale"]
        is False
    )


def test_a_type_with_no_room_names_itself_and_what_is_left(testapp, dbengine, gateway):
    event = new_event(testapp)
    vip = add_type(testapp, event, capacity=3).json["data"]
    response = buy(testapp, event, ticket_type_id=vip["id"], quantity=4, status=409)

    body = assert_problem(response, 409, "insufficient_tickets")
    assert (body["ticket_type_id"], body["available_tickets"]) == (vip["id"], 3)
    assert "VIP" in body["detail"]
    assert load_event(dbengine, event["id"]).available_tickets == 100
    assert_books_balance(dbengine, gateway)


def test_the_event_limits_every_type_together(testapp, dbengine, gateway):
    event = new_event(testapp, total_tickets=5)
    vip = add_type(testapp, event).json["data"]  # no capacity of its own
    buy(testapp, event, ticket_type_id=general_admission(event), quantity=4)

    response = buy(testapp, event, ticket_type_id=vip["id"], quantity=2, status=409)
    assert_problem(response, 409, "insufficient_tickets")
    assert response.json["available_tickets"] == 1
    assert (
        testapp.get(f"/api/events/{event['id']}/ticket-types/{vip['id']}").json["data"]["available"]
        == 1
    )
    assert_books_balance(dbengine, gateway)


def test_an_order_is_all_or_nothing_across_its_items(testapp, dbengine, gateway):
    event = new_event(testapp)
    vip = add_type(testapp, event, capacity=1).json["data"]
    response = buy(
        testapp,
        event,
        items=[
            {"ticket_type_id": general_admission(event), "quantity": 3},
            {"ticket_type_id": vip["id"], "quantity": 2},
        ],
        status=409,
    )
    assert response.json["ticket_type_id"] == vip["id"]
    left = availability(testapp, event)
    assert left["event"]["available"] == 100
    assert [row["sold"] for row in left["ticket_types"]] == [0, 0]
    assert gateway.calls == []
    assert_books_balance(dbengine, gateway)


def test_per_order_minimum_and_maximum_of_a_type(testapp):
    event = new_event(testapp)
    table = add_type(testapp, event, name="Table", min_per_order=4, max_per_order=8).json["data"]

    below = buy(testapp, event, ticket_type_id=table["id"], quantity=2, status=400)
    assert_problem(below, 400, "below_min_per_order")
    assert (below.json["field"], below.json["min_per_order"]) == ("min_per_order", 4)
    above = buy(testapp, event, ticket_type_id=table["id"], quantity=9, status=400)
    assert_problem(above, 400, "above_max_per_order")
    assert buy(testapp, event, ticket_type_id=table["id"], quantity=4).json["data"]["quantity"] == 4


@pytest.mark.parametrize(
    ("order", "field"),
    [
        pytest.param({"quantity": 1, "items": []}, "order.items", id="items-empty"),
        pytest.param({"items": "abc"}, "order.items", id="items-string"),
        pytest.param({"items": [{"quantity": 1}]}, "order.items.0.ticket_type_id", id="no-type"),
        pytest.param(
            {"items": [{"ticket_type_id": "x", "quantity": 1}]},
            "order.items.0.ticket_type_id",
            id="type-not-uuid",
        ),
        pytest.param(
            {"ticket_type_id": "not-a-uuid", "quantity": 1}, "order.ticket_type_id", id="bad"
        ),
        pytest.param({}, "order.quantity", id="neither"),
    ],
)
def test_malformed_items_are_named(testapp, order, field):
    event = new_event(testapp)
    assert_validation_error(buy(testapp, event, status=400, **order), field)


def test_items_count_together_against_the_per_order_ceiling(testapp):
    event = new_event(testapp)
    vip = add_type(testapp, event).json["data"]
    items = [
        {"ticket_type_id": general_admission(event), "quantity": 6},
        {"ticket_type_id": vip["id"], "quantity": 5},
    ]
    assert_validation_error(buy(testapp, event, items=items, status=400), "order.items")
    twice = [items[0], {**items[0], "quantity": 1}]
    assert_validation_error(buy(testapp, event, items=twice, status=400), "order.items")
    both = {"quantity": 1, "items": items[:1]}
    assert_validation_error(buy(testapp, event, status=400, **both), "order")


def test_a_type_of_another_event_or_none_at_all(testapp):
    event, other = new_event(testapp), new_event(testapp)
    wrong = buy(testapp, event, ticket_type_id=general_admission(other), quantity=1, status=400)
    assert_problem(wrong, 400, "ticket_type_wrong_event")
    unknown = buy(
        testapp,
        event,
        ticket_type_id="00000000-0000-4000-8000-000000000000",
        quantity=1,
        status=404,
    )
    assert_problem(unknown, 404, "ticket_type_not_found")


def test_the_idempotency_fingerprint_covers_the_items(testapp, gateway):
    event = new_event(testapp)
    vip = add_type(testapp, event).json["data"]
    first = [{"ticket_type_id": vip["id"], "quantity": 1}]
    buy(testapp, event, items=first, idempotency_key="k-items")

    replay = buy(testapp, event, items=first, idempotency_key="k-items", status=200)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json["data"]["items"][0]["ticket_type_id"] == vip["id"]
    other = [{"ticket_type_id": general_admission(event), "quantity": 1}]
    reused = buy(testapp, event, items=other, idempotency_key="k-items", status=422)
    assert reused.json["code"] == "idempotency_key_reused"
    assert len(gateway.kept_charges()) == 1


def test_cancelling_returns_every_items_tickets_to_its_type_and_the_event(
    testapp, dbengine, gateway
):
    event = new_event(testapp)
    vip = add_type(testapp, event, capacity=10).json["data"]
    order = buy(
        testapp,
        event,
        items=[
            {"ticket_type_id": vip["id"], "quantity": 2},
            {"ticket_type_id": general_admission(event), "quantity": 1},
        ],
    ).json["data"]

    testapp.post(f"/api/orders/{order['id']}/cancel", status=200)

    left = availability(testapp, event)
    assert left["event"] == {
        "capacity": 100,
        "sold": 0,
        "held": 0,
        "set_aside": 0,
        "offered": 0,
        "waiting": 0,
        "available": 100,
    }
    assert [(row["sold"], row["available"]) for row in left["ticket_types"]] == [(0, 100), (0, 10)]
    assert_books_balance(dbengine, gateway)


def test_a_declined_payment_gives_every_item_back(testapp, dbengine, gateway):
    gateway.configure(failure_mode="card_declined")
    event = new_event(testapp)
    vip = add_type(testapp, event, capacity=4).json["data"]
    buy(testapp, event, ticket_type_id=vip["id"], quantity=4, status=402)
    assert [row["sold"] for row in availability(testapp, event)["ticket_types"]] == [0, 0]
    assert_books_balance(dbengine, gateway)


# --- the event's price, and currencies ------------------------------------------------------


def test_the_events_ticket_price_is_its_first_type_on_sale(testapp):
    event = new_event(testapp)
    general = general_admission(event)
    add_type(testapp, event, name="Cheap", price="10.00", position=0)
    url = f"/api/events/{event['id']}"
    # General admission (position 0, created first) still comes first...
    assert testapp.get(url).json["data"]["ticket_price"] == "50.00"
    # ...until its sales end.
    change_type(testapp, event, general, sales_start=future(days=1), sales_end=future(days=2))
    assert testapp.get(url).json["data"]["ticket_price"] == "10.00"


def test_the_events_price_changes_its_only_type_and_with_several_must_name_one(testapp):
    event = new_event(testapp)
    url = f"/api/events/{event['id']}"
    changed = testapp.put_json(url, {"event": {"ticket_price": "60"}}, headers=ORGANISER)
    assert changed.json["data"]["ticket_types"][0]["price"] == "60.00"

    add_type(testapp, event)
    response = testapp.put_json(
        url, {"event": {"ticket_price": "70"}}, headers=ORGANISER, status=400
    )
    assert_problem(response, 400, "ticket_type_required")


def test_a_yen_event_has_no_decimals_anywhere(testapp, dbengine, gateway):
    event = new_event(testapp, currency="JPY", ticket_price="5000")
    assert (event["ticket_price"], event["currency"]) == ("5000", "JPY")
    premium = add_type(testapp, event, name="Premium", price="12000").json["data"]
    assert premium["price"] == "12000"
    assert_validation_error(
        add_type(testapp, event, price="5000.5", status=400), "ticket_type.price"
    )
    assert_validation_error(
        add_type(testapp, event, price="5000.0", status=400), "ticket_type.price"
    )

    order = buy(testapp, event, ticket_type_id=premium["id"], quantity=2).json["data"]

    assert (order["total_amount"], order["unit_price"], order["currency"]) == (
        "24000",
        "12000",
        "JPY",
    )
    [charge] = gateway.kept_charges()
    assert (charge.amount_cents, charge.currency) == (24000, "JPY")
    assert_books_balance(dbengine, gateway)


@pytest.mark.parametrize(
    ("price", "currency", "field"),
    [
        pytest.param("10.50", "JPY", "event.ticket_price", id="decimals-the-currency-lacks"),
        pytest.param("10", "GBP", "event.currency", id="currency-not-configured"),
    ],
)
def test_an_event_is_created_in_a_configured_currency_its_price_fits(
    testapp, price, currency, field
):
    body = {"name": "N", "venue": "V", "date": future(days=9), "total_tickets": 5}
    response = testapp.post_json(
        "/api/events",
        {"event": {**body, "ticket_price": price, "currency": currency}},
        headers=ORGANISER,
        status=400,
    )
    assert_validation_error(response, field)


def test_the_currency_changes_until_something_is_sold(testapp):
    event = new_event(testapp, ticket_price="50.00")
    url = f"/api/events/{event['id']}"
    in_yen = testapp.put_json(url, {"event": {"currency": "JPY"}}, headers=ORGANISER).json["data"]
    assert (in_yen["currency"], in_yen["ticket_price"]) == ("JPY", "50")
    add_type(testapp, event, price="7.5", status=400)
    in_euro = testapp.put_json(
        url, {"event": {"currency": "EUR", "ticket_price": "7.50"}}, headers=ORGANISER
    ).json["data"]
    assert (in_euro["currency"], in_euro["ticket_price"]) == ("EUR", "7.50")
    # 7.50 EUR cannot be expressed in yen.
    response = testapp.put_json(url, {"event": {"currency": "JPY"}}, headers=ORGANISER, status=400)
    assert_validation_error(response, "event.currency")

    buy(testapp, event, quantity=1)
    locked = testapp.put_json(url, {"event": {"currency": "USD"}}, headers=ORGANISER, status=409)
    assert_problem(locked, 409, "currency_locked")


def test_a_currency_setting_that_is_not_iso_4217_stops_startup(dbengine):
    from pyramid.exceptions import ConfigurationError

    for codes in ("USD XYZ", "XAU", ""):
        with pytest.raises(ConfigurationError, match="ticketing.currencies"):
            main({}, **app_settings(dbengine, **{"ticketing.currencies": codes}))


def test_the_seed_requests_still_work_on_a_default_app(dbengine):
    """No key, no currency, no type: the seed's create and purchase bodies as they were."""
    testapp = TestApp(main({}, **app_settings(dbengine)))
    body = {
        "name": "Concert",
        "venue": "Stadium",
        "date": "2030-07-15T18:00:00Z",
        "ticket_price": "50.00",
        "total_tickets": 100,
    }
    event = testapp.post_json("/api/events", {"event": body}, status=201).json["data"]
    testapp.post(f"/api/events/{event['id']}/publish", status=200)
    order = {
        "customer_email": "john@example.com",
        "customer_name": "John Doe",
        "quantity": 2,
        "idempotency_key": "unique-key-123",
    }
    bought = testapp.post_json(f"/api/events/{event['id']}/purchase", {"order": order}).json
    assert (bought["data"]["unit_price"], bought["data"]["total_amount"]) == ("50.00", "100.00")
    assert bought["data"]["items"][0]["name"] == "General admission"


# --- the database stands behind the rules ----------------------------------------------------


@pytest.mark.parametrize(
    "assignment",
    [
        pytest.param("price_cents = -1", id="price-negative"),
        pytest.param("sold = -1", id="sold-negative"),
        pytest.param("sold = capacity + 1", id="sold-above-capacity"),
        pytest.param("capacity = -1", id="capacity-negative"),
        pytest.param("min_per_order = 0", id="min-zero"),
        pytest.param("max_per_order = min_per_order - 1", id="max-below-min"),
        pytest.param("sales_end = sales_start", id="window-empty"),
    ],
)
def test_check_constraints_refuse_bad_ticket_types(dbengine, assignment):
    event = create_event(dbengine)
    start = dt.datetime.now(dt.UTC)
    with dbengine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE ticket_types SET capacity = 10, sold = 2, sales_start = :start, "
                "sales_end = :end"
            ),
            {
                "start": start.replace(tzinfo=None),
                "end": (start + dt.timedelta(days=1)).replace(tzinfo=None),
            }
            if dbengine.dialect.name == "sqlite"
            else {"start": start, "end": start + dt.timedelta(days=1)},
        )
    with pytest.raises(IntegrityError):
        with dbengine.begin() as connection:
            connection.execute(sa.text(f"UPDATE ticket_types SET {assignment}"))
    with dbengine.connect() as connection:
        assert connection.execute(sa.text("SELECT sold, capacity FROM ticket_types")).one() == (
            2,
            10,
        )
    assert load_event(dbengine, event.id).total_tickets == 100


def test_the_sales_summary_breaks_sales_down_by_type(testapp, dbsession):
    from ticketing.domain.orders import sales_summary

    event = new_event(testapp)
    vip = add_type(testapp, event, capacity=20).json["data"]
    buy(testapp, event, ticket_type_id=vip["id"], quantity=2)
    cancelled = buy(testapp, event, ticket_type_id=general_admission(event), quantity=3).json
    buy(testapp, event, ticket_type_id=general_admission(event), quantity=1)
    testapp.post(f"/api/orders/{cancelled['data']['id']}/cancel")

    summary = sales_summary(dbsession, uuid.UUID(event["id"]))

    assert (summary["tickets_sold"], summary["revenue"], summary["refunded"]) == (
        3,
        "290.00",
        "150.00",
    )
    nobody_waits = {
        "waiting": 0,
        "tickets_wanted": 0,
        "offers_outstanding": 0,
        "tickets_offered": 0,
        "offers_purchased": 0,
        "offers_expired": 0,
        "set_aside": 0,
    }
    assert summary["waiting_list"] == nobody_waits
    assert summary["ticket_types"] == [
        {
            "name": "General admission",
            "price": "50.00",
            "capacity": None,
            "tickets_sold": 1,
            "available": 97,
            "revenue": "50.00",
            "refunded": "150.00",
            "discounts": "0.00",
            "waiting_list": nobody_waits,
        },
        {
            "name": "VIP",
            "price": "120.00",
            "capacity": 20,
            "tickets_sold": 2,
            "available": 18,
            "revenue": "240.00",
            "refunded": "0.00",
            "discounts": "0.00",
            "waiting_list": nobody_waits,
        },
    ]
