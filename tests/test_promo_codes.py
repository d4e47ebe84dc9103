"""Promo codes on SQLite and PostgreSQL: managing an event's codes, buying and holding with one
(discounts recorded per item and charged, rounding, free orders), the errors that cannot be told
apart, hidden types a code unlocks, uses given back by every order that ends unpaid or
cancelled, and a hold paid with a code. Every test that sells ends with the books checked
(tests/holds.py: tickets, money charged = what the items cost after discounts, and uses)."""

import datetime as dt
import uuid

import pytest
from webtest import TestApp

from ticketing import main
from ticketing.domain import orders, promo_codes
from ticketing.interfaces import IPaymentGateway
from ticketing.models import EmailKind, OrderStatus

from .conftest import app_settings
from .factories import (
    create_event,
    create_ticket_type,
    future,
    load_event,
    load_order,
    order_tickets,
)
from .holds import (
    THREE_D_SECURE,
    assert_books,
    complete_payment_action,
    emails_of,
    order_body,
    pay,
    reserve,
)
from .test_holds import run_expiry


def codes_path(event):
    return f"/api/events/{event.id}/promo-codes"


def add_code(testapp, event, status=201, **fields):
    body = {"code": "PARTNER20", "discount": {"type": "percent", "value": "20"}, **fields}
    return testapp.post_json(codes_path(event), {"promo_code": body}, status=status)


def change_code(testapp, event, code_id, status=200, **fields):
    return testapp.put_json(f"{codes_path(event)}/{code_id}", {"promo_code": fields}, status=status)


def code_of(testapp, event, code_id):
    return testapp.get(f"{codes_path(event)}/{code_id}").json["data"]


def buy(testapp, event, status=201, **fields):
    return testapp.post_json(
        f"/api/events/{event.id}/purchase", order_body(**fields), status=status
    )


# --- managing codes -------------------------------------------------------------------------


def test_an_organiser_adds_lists_changes_and_deletes_codes(testapp, dbengine):
    event = create_event(dbengine)
    vip = create_ticket_type(dbengine, event)

    created = add_code(
        testapp,
        event,
        code="Partner20",
        max_uses=5,
        ticket_type_ids=[str(vip.id)],
        valid_until="2030-01-01T00:00:00Z",
    )

    code = created.json["data"]
    assert created.location.endswith(f"/api/events/{event.id}/promo-codes/{code['id']}")
    assert {key: code[key] for key in ("code", "discount", "max_uses", "uses")} == {
        "code": "Partner20",
        "discount": {"type": "percent", "value": "20"},
        "max_uses": 5,
        "uses": 0,
    }
    assert (code["ticket_type_ids"], code["valid_until"]) == ([str(vip.id)], "2030-01-01T00:00:00Z")
    assert (code["unlocks_hidden"], code["disabled"], code["currency"]) == (False, False, "USD")
    amount = add_code(testapp, event, code="TENOFF", discount={"type": "amount", "value": "10"})
    assert amount.json["data"]["discount"] == {"type": "amount", "value": "10.00"}
    listed = testapp.get(codes_path(event)).json["data"]
    assert [each["code"] for each in listed] == ["Partner20", "TENOFF"]

    changed = change_code(testapp, event, code["id"], disabled=True, max_uses=None)
    assert (changed.json["data"]["disabled"], changed.json["data"]["max_uses"]) == (True, None)
    testapp.delete(f"{codes_path(event)}/{code['id']}", status=204)
    testapp.get(f"{codes_path(event)}/{code['id']}", status=404)
    assert [each["code"] for each in testapp.get(codes_path(event)).json["data"]] == ["TENOFF"]


def test_codes_are_unique_in_their_event_whatever_the_case(testapp, dbengine):
    event, other = create_event(dbengine), create_event(dbengine)
    add_code(testapp, event, code="SUMMER")

    taken = add_code(testapp, event, code="summer", status=409)

    assert taken.json["code"] == "promo_code_taken"
    add_code(testapp, other, code="summer")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"discount": {"type": "percent", "value": "100.5"}}, "promo_code.discount.value"),
        ({"discount": {"type": "percent", "value": "12.345"}}, "promo_code.discount.value"),
        ({"discount": {"type": "amount", "value": "1.005"}}, "promo_code.discount.value"),
        ({"discount": {"type": "amount", "value": "0"}}, "promo_code.discount.value"),
        ({"discount": {"type": "free", "value": "1"}}, "promo_code.discount.type"),
        ({"code": "two words"}, "promo_code.code"),
        ({"max_uses": 0}, "promo_code.max_uses"),
        ({"ticket_type_ids": [str(uuid.uuid4())]}, "promo_code.ticket_type_ids"),
        (
            {"valid_from": "2030-02-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"},
            "promo_code.valid_until",
        ),
    ],
)
def test_a_code_that_contradicts_itself_or_its_event_is_refused(testapp, dbengine, fields, field):
    event = create_event(dbengine)

    refused = add_code(testapp, event, status=400, **fields)

    assert refused.json["code"] == "validation_failed"
    assert [error["field"] for error in refused.json["errors"]] == [field]


def test_a_used_code_cannot_be_deleted_and_its_max_uses_not_lowered_below_its_uses(
    testapp, dbengine, gateway
):
    event = create_event(dbengine)
    code = add_code(testapp, event, max_uses=3).json["data"]
    buy(testapp, event, quantity=1, promo_code="PARTNER20")
    buy(testapp, event, quantity=1, promo_code="partner20")

    used = testapp.delete(f"{codes_path(event)}/{code['id']}", status=409)
    lowered = change_code(testapp, event, code["id"], max_uses=1, status=409)

    assert used.json["code"] == "promo_code_used"
    assert (lowered.json["code"], lowered.json["uses"]) == ("max_uses_below_uses", 2)
    assert code_of(testapp, event, code["id"])["uses"] == 2
    change_code(testapp, event, code["id"], max_uses=2)
    assert_books(dbengine, gateway)


# --- buying with a code ---------------------------------------------------------------------


def test_a_purchase_with_a_code_records_list_price_discount_and_paid_and_charges_that(
    testapp, dbengine, gateway
):
    event = create_event(dbengine)  # General admission at 50.00
    vip = create_ticket_type(dbengine, event, price_cents=12000)
    add_code(testapp, event, code="VIP20", ticket_type_ids=[str(vip.id)])
    standard = event.ticket_types[0]

    bought = buy(
        testapp,
        event,
        quantity=None,
        items=[
            {"ticket_type_id": str(standard.id), "quantity": 1},
            {"ticket_type_id": str(vip.id), "quantity": 2},
        ],
        promo_code="  vip20 ",
    ).json["data"]

    assert (bought["status"], bought["promo_code"]) == ("confirmed", "VIP20")
    assert (bought["total_amount"], bought["discount_total"]) == ("242.00", "48.00")
    assert [
        (item["name"], item["unit_price"], item["subtotal"], item["discount"], item["paid"])
        for item in bought["items"]
    ] == [
        ("General admission", "50.00", "50.00", "0.00", "50.00"),
        ("VIP", "120.00", "240.00", "48.00", "192.00"),
    ]
    [charge] = gateway.kept_charges()
    assert charge.amount_cents == 24200
    assert testapp.get(f"/api/orders/{bought['id']}").json["data"] == bought
    assert_books(dbengine, gateway)


def test_an_order_with_one_price_keeps_its_unit_price_and_adds_up_after_the_discount(
    testapp, dbengine, gateway
):
    event = create_event(dbengine)
    add_code(testapp, event, discount={"type": "amount", "value": "7.50"})

    bought = buy(testapp, event, quantity=2, promo_code="PARTNER20").json["data"]

    assert (bought["unit_price"], bought["total_amount"], bought["discount_total"]) == (
        "50.00",
        "85.00",
        "15.00",
    )
    assert_books(dbengine, gateway)


@pytest.mark.parametrize(
    ("currency", "price", "percent", "paid_each"),
    [
        ("USD", 125, "10", 112),  # 12.5 cents off: half-up to 13
        ("USD", 124, "10", 112),  # 12.4 cents off: 12
        ("USD", 999, "33.33", 666),  # 332.9667 cents off: 333
        ("JPY", 125, "10", 112),  # 12.5 yen off: 13
        ("JPY", 3, "50", 1),  # 1.5 yen off: 2
    ],
)
def test_percent_rounds_half_up_to_the_currencys_minor_unit(
    testapp, dbengine, gateway, currency, price, percent, paid_each
):
    event = create_event(dbengine, ticket_price_cents=price, currency=currency)
    add_code(testapp, event, discount={"type": "percent", "value": percent})

    bought = buy(testapp, event, quantity=3, promo_code="PARTNER20").json["data"]

    digits = 2 if currency == "USD" else 0
    assert bought["items"][0]["paid"] == f"{paid_each * 3 / 10**digits:.{digits}f}"
    assert [charge.amount_cents for charge in gateway.kept_charges()] == [paid_each * 3]
    assert_books(dbengine, gateway)


def test_an_amount_off_never_makes_a_ticket_cost_less_than_nothing(testapp, dbengine, gateway):
    event = create_event(dbengine)
    cheap = create_ticket_type(dbengine, event, name="Student", price_cents=800)
    add_code(testapp, event, discount={"type": "amount", "value": "10.00"})

    bought = buy(
        testapp,
        event,
        quantity=None,
        items=[
            {"ticket_type_id": str(cheap.id), "quantity": 1},
            {"ticket_type_id": str(event.ticket_types[0].id), "quantity": 1},
        ],
        promo_code="PARTNER20",
    ).json["data"]

    assert [(item["discount"], item["paid"]) for item in bought["items"]] == [
        ("8.00", "0.00"),
        ("10.00", "40.00"),
    ]
    assert bought["total_amount"] == "40.00"
    assert_books(dbengine, gateway)


def test_a_free_order_needs_no_payment_and_its_cancellation_refunds_nothing(
    testapp, dbengine, gateway, mailer
):
    event = create_event(dbengine, total_tickets=10)
    code = add_code(testapp, event, code="GUEST", discount={"type": "percent", "value": "100"})

    bought = buy(testapp, event, quantity=2, promo_code="guest").json["data"]

    assert (bought["status"], bought["total_amount"], bought["payment_reference"]) == (
        "confirmed",
        "0.00",
        None,
    )
    assert gateway.calls == []
    assert len(testapp.get(f"/api/orders/{bought['id']}/tickets").json["data"]) == 2
    assert emails_of(dbengine, uuid.UUID(bought["id"])) == [EmailKind.ORDER_CONFIRMATION]
    [sent] = mailer.outbox
    assert sent["To"] == "Buyer <buyer@example.com>"
    assert code_of(testapp, event, code.json["data"]["id"])["uses"] == 1
    assert_books(dbengine, gateway)

    cancelled = testapp.post(f"/api/orders/{bought['id']}/cancel").json["data"]

    assert (cancelled["status"], cancelled["refund_reference"], cancelled["refunded_at"]) == (
        "cancelled",
        None,
        None,
    )
    assert gateway.calls == []
    assert [ticket.status for ticket in order_tickets(dbengine, bought["id"])] == ["void"] * 2
    assert load_event(dbengine, event.id).available_tickets == 10
    assert code_of(testapp, event, code.json["data"]["id"])["uses"] == 0
    assert_books(dbengine, gateway)


def test_a_replay_with_another_code_is_another_purchase(testapp, dbengine, gateway):
    event = create_event(dbengine)
    add_code(testapp, event)
    buy(testapp, event, promo_code="PARTNER20", idempotency_key="k-1")

    again = buy(testapp, event, status=200, promo_code="partner20", idempotency_key="k-1")
    other = buy(testapp, event, status=422, idempotency_key="k-1")

    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.json["code"] == "idempotency_key_reused"
    assert_books(dbengine, gateway)


def test_a_retry_replays_though_its_first_attempt_took_the_codes_last_use(
    testapp, dbengine, gateway
):
    event = create_event(dbengine)
    add_code(testapp, event, max_uses=1)
    first = buy(testapp, event, promo_code="PARTNER20", idempotency_key="last-use")

    again = buy(testapp, event, status=200, promo_code="PARTNER20", idempotency_key="last-use")

    assert again.json["data"] == first.json["data"]
    assert len(gateway.kept_charges()) == 1
    assert_books(dbengine, gateway)


# --- refusals -------------------------------------------------------------------------------


def test_unknown_and_disabled_codes_get_the_same_answer(testapp, dbengine, gateway):
    event = create_event(dbengine)
    code = add_code(testapp, event).json["data"]
    change_code(testapp, event, code["id"], disabled=True)

    unknown = buy(testapp, event, status=400, promo_code="NOPE")
    disabled = buy(testapp, event, status=400, promo_code="PARTNER20")

    assert unknown.json == disabled.json
    assert unknown.json["code"] == "promo_code_invalid"
    no_event = testapp.post_json(
        f"/api/events/{uuid.uuid4()}/purchase", order_body(promo_code="PARTNER20"), status=404
    )
    assert no_event.json["code"] == "event_not_found"
    assert load_event(dbengine, event.id).available_tickets == 100
    assert_books(dbengine, gateway)


def test_a_code_outside_its_validity_used_up_or_for_other_types_takes_nothing(
    testapp, dbengine, gateway
):
    event = create_event(dbengine, total_tickets=10)
    vip = create_ticket_type(dbengine, event)
    now = dt.datetime.now(dt.UTC)
    add_code(testapp, event, code="LATE", valid_until=(now - dt.timedelta(hours=1)).isoformat())
    add_code(testapp, event, code="EARLY", valid_from=future(days=1).isoformat())
    add_code(testapp, event, code="ONCE", max_uses=1)
    add_code(testapp, event, code="VIPONLY", ticket_type_ids=[str(vip.id)])
    standard = str(event.ticket_types[0].id)
    buy(testapp, event, ticket_type_id=standard, promo_code="ONCE")

    refusals = {
        text: buy(testapp, event, status="*", ticket_type_id=standard, promo_code=text).json["code"]
        for text in ("LATE", "EARLY", "ONCE", "VIPONLY")
    }

    assert refusals == {
        "LATE": "promo_code_expired",
        "EARLY": "promo_code_expired",
        "ONCE": "promo_code_exhausted",
        "VIPONLY": "promo_code_not_applicable",
    }
    assert load_event(dbengine, event.id).available_tickets == 9
    assert_books(dbengine, gateway)


def test_a_hidden_type_is_found_only_with_a_code_that_unlocks_it(testapp, dbengine):
    # Keys required, so that buyers see what buyers see (the organiser's app needs none).
    shop = main(
        {},
        **app_settings(
            dbengine, **{"ticketing.require_api_key": "true", "ticketing.api_keys": "k"}
        ),
    )
    buyer, gateway = TestApp(shop), shop.registry.getUtility(IPaymentGateway)
    event = create_event(dbengine)
    secret = create_ticket_type(dbengine, event, name="Crew", price_cents=2000, hidden=True)
    add_code(testapp, event, code="CREW", ticket_type_ids=[str(secret.id)], unlocks_hidden=True)
    add_code(testapp, event, code="PLAIN", ticket_type_ids=[str(secret.id)])
    types_path = f"/api/events/{event.id}/ticket-types"

    assert [t["name"] for t in buyer.get(types_path).json["data"]] == ["General admission"]
    with_code = buyer.get(types_path, {"promo_code": "crew"}).json["data"]
    assert [(t["name"], t["price"], t["discounted_price"], t["on_sale"]) for t in with_code] == [
        ("General admission", "50.00", None, True),
        ("Crew", "20.00", "16.00", True),
    ]
    plain = buyer.get(types_path, {"promo_code": "PLAIN"}).json["data"]
    assert [t["name"] for t in plain] == ["General admission"]
    assert buyer.get(types_path, {"promo_code": "NOPE"}, status=400).json["code"] == (
        "promo_code_invalid"
    )
    for text in (None, "PLAIN"):
        refused = buy(buyer, event, status=404, ticket_type_id=str(secret.id), promo_code=text)
        assert refused.json["code"] == "ticket_type_not_found"

    bought = buy(buyer, event, ticket_type_id=str(secret.id), promo_code="CREW").json["data"]

    assert (bought["items"][0]["name"], bought["total_amount"]) == ("Crew", "16.00")
    assert_books(dbengine, gateway)


# --- uses given back ------------------------------------------------------------------------


def test_released_expired_failed_and_cancelled_orders_give_their_use_back(
    app, testapp, dbengine, gateway
):
    event = create_event(dbengine, total_tickets=20)
    code = add_code(testapp, event, max_uses=1).json["data"]

    def uses():
        return code_of(testapp, event, code["id"])["uses"]

    released = reserve(testapp, event, promo_code="PARTNER20").json["data"]
    assert uses() == 1
    testapp.post(f"/api/orders/{released['id']}/release")
    assert uses() == 0

    expired = reserve(testapp, event, promo_code="PARTNER20").json["data"]
    run_expiry(app, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    assert (load_order(dbengine, expired["id"]).status, uses()) == (OrderStatus.EXPIRED, 0)

    gateway.failure_mode = "card_declined"
    declined = buy(testapp, event, status=402, promo_code="PARTNER20")
    assert (declined.json["code"], uses()) == ("payment_declined", 0)
    gateway.failure_mode = None

    cancelled = buy(testapp, event, promo_code="PARTNER20").json["data"]
    assert uses() == 1
    assert buy(testapp, event, status=409, promo_code="PARTNER20").json["code"] == (
        "promo_code_exhausted"
    )
    testapp.post(f"/api/orders/{cancelled['id']}/cancel")
    assert uses() == 0
    assert [call[0] for call in gateway.calls].count("refund") == 1
    assert_books(dbengine, gateway)


def test_an_expired_hold_paid_after_all_takes_its_use_again_unless_it_is_gone(
    app, testapp, dbengine, gateway
):
    event = create_event(dbengine, total_tickets=20)
    code = add_code(testapp, event, max_uses=1).json["data"]
    first = reserve(testapp, event, promo_code="PARTNER20").json["data"]
    run_expiry(app, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))

    paid = pay(testapp, first["id"]).json["data"]

    assert (paid["status"], paid["total_amount"]) == ("confirmed", "40.00")
    assert code_of(testapp, event, code["id"])["uses"] == 1

    change_code(testapp, event, code["id"], max_uses=2)
    second = reserve(testapp, event, promo_code="PARTNER20").json["data"]
    run_expiry(app, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    buy(testapp, event, promo_code="PARTNER20")

    gone = pay(testapp, second["id"], status=409)

    assert gone.json["code"] == "hold_expired"
    assert code_of(testapp, event, code["id"])["uses"] == 2
    assert_books(dbengine, gateway)


# --- a hold paid with a code ----------------------------------------------------------------


def pay_with(testapp, order_id, promo_code, status=200, payment_method="pm_card_visa"):
    body = {"payment": {"payment_method": payment_method, "promo_code": promo_code}}
    return testapp.post_json(f"/api/orders/{order_id}/pay", body, status=status)


def test_a_hold_made_without_a_code_is_paid_with_one(testapp, dbengine, gateway):
    event = create_event(dbengine)
    code = add_code(testapp, event, max_uses=1).json["data"]
    hold = reserve(testapp, event, quantity=2).json["data"]
    assert hold["total_amount"] == "100.00"

    paid = pay_with(testapp, hold["id"], "partner20").json["data"]

    assert (paid["status"], paid["promo_code"], paid["total_amount"]) == (
        "confirmed",
        "PARTNER20",
        "80.00",
    )
    assert paid["items"][0]["discount"] == "20.00"
    assert [charge.amount_cents for charge in gateway.kept_charges()] == [8000]
    assert code_of(testapp, event, code["id"])["uses"] == 1
    assert_books(dbengine, gateway)


def test_a_hold_keeps_its_code_and_a_used_up_code_charges_nothing(testapp, dbengine, gateway):
    event = create_event(dbengine)
    add_code(testapp, event, max_uses=1)
    add_code(testapp, event, code="OTHER")
    with_code = reserve(testapp, event, promo_code="PARTNER20").json["data"]
    without = reserve(testapp, event).json["data"]

    other = pay_with(testapp, with_code["id"], "OTHER", status=409)
    exhausted = pay_with(testapp, without["id"], "PARTNER20", status=409)

    assert other.json["code"] == "promo_code_already_applied"
    assert exhausted.json["code"] == "promo_code_exhausted"
    assert gateway.calls == []
    assert load_order(dbengine, without["id"]).status == OrderStatus.RESERVED
    same = pay_with(testapp, with_code["id"], "partner20").json["data"]
    assert (same["status"], same["total_amount"]) == ("confirmed", "40.00")
    assert_books(dbengine, gateway)


def test_a_hold_that_a_code_makes_free_is_confirmed_without_payment(testapp, dbengine, gateway):
    event = create_event(dbengine)
    add_code(testapp, event, code="FREE", discount={"type": "percent", "value": "100"})
    hold = reserve(testapp, event, quantity=2).json["data"]

    paid = pay_with(testapp, hold["id"], "FREE").json["data"]

    assert (paid["status"], paid["total_amount"], paid["expires_at"]) == ("confirmed", "0.00", None)
    assert gateway.calls == []
    assert emails_of(dbengine, uuid.UUID(hold["id"])) == [EmailKind.ORDER_CONFIRMATION]
    assert_books(dbengine, gateway)


# --- the books ------------------------------------------------------------------------------


def test_the_sales_summary_shows_discounts_per_type_and_per_code(
    testapp, dbsession, dbengine, gateway
):
    event = create_event(dbengine)
    add_code(testapp, event)
    add_code(testapp, event, code="FIVE", discount={"type": "amount", "value": "5"})
    buy(testapp, event, quantity=2, promo_code="PARTNER20")
    buy(testapp, event, quantity=1, promo_code="FIVE")
    buy(testapp, event, quantity=1)

    summary = orders.sales_summary(dbsession, event.id)

    assert (summary["revenue"], summary["discounts"], summary["tickets_sold"]) == (
        "175.00",
        "25.00",
        4,
    )
    [general] = summary["ticket_types"]
    assert (general["revenue"], general["discounts"]) == ("175.00", "25.00")
    assert summary["promo_codes"] == [
        {"code": "FIVE", "orders": 1, "tickets_sold": 1, "discounts": "5.00"},
        {"code": "PARTNER20", "orders": 1, "tickets_sold": 2, "discounts": "20.00"},
    ]
    assert_books(dbengine, gateway)


def test_a_code_s_use_is_held_while_3d_secure_waits_and_given_back_when_it_fails(
    app, testapp, dbengine, gateway
):
    event = create_event(dbengine, total_tickets=10)
    code = add_code(testapp, event, max_uses=2).json["data"]
    paid = buy(testapp, event, status=202, promo_code="PARTNER20", payment_method=THREE_D_SECURE)
    failing = buy(testapp, event, status=202, promo_code="PARTNER20", payment_method=THREE_D_SECURE)
    assert code_of(testapp, event, code["id"])["uses"] == 2
    assert buy(testapp, event, status=409, promo_code="PARTNER20").json["code"] == (
        "promo_code_exhausted"
    )

    complete_payment_action(app, gateway, paid.json["data"]["id"])
    complete_payment_action(app, gateway, failing.json["data"]["id"], succeed=False)

    confirmed = load_order(dbengine, paid.json["data"]["id"])
    assert (confirmed.status, confirmed.total_amount_cents) == (OrderStatus.CONFIRMED, 4000)
    assert [charge.amount_cents for charge in gateway.kept_charges()] == [4000]
    # The failed one is a hold again (another card may pay it) until it expires.
    assert load_order(dbengine, failing.json["data"]["id"]).status == OrderStatus.RESERVED
    assert code_of(testapp, event, code["id"])["uses"] == 2
    run_expiry(app, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    assert code_of(testapp, event, code["id"])["uses"] == 1
    assert_books(dbengine, gateway)


def test_a_code_changed_after_its_look_up_takes_nothing(testapp, dbengine, dbsession, tm):
    event = create_event(dbengine, total_tickets=10)
    code = add_code(testapp, event).json["data"]
    now = dt.datetime.now(dt.UTC)
    looked_up = promo_codes.look_up(dbsession, event.id, "PARTNER20", now=now)
    tm.abort()
    tm.begin()
    change_code(testapp, event, code["id"], discount={"type": "percent", "value": "50"})
    purchase = orders.PurchaseRequest(
        event_id=event.id,
        customer_email="a@example.com",
        customer_name="A",
        quantity=1,
        promo_code="PARTNER20",
    )

    # The reservation applies the code as it was looked up, or not at all.
    assert orders._reserve(dbsession, purchase, now, code=looked_up) is None
    tm.abort()
    assert load_event(dbengine, event.id).available_tickets == 10
    assert code_of(testapp, event, code["id"])["uses"] == 0


def test_the_types_a_code_applies_to_can_be_changed_and_repeated(testapp, dbengine, gateway):
    event = create_event(dbengine)
    vip = create_ticket_type(dbengine, event)
    standard = event.ticket_types[0]
    code = add_code(testapp, event, ticket_type_ids=[str(vip.id)]).json["data"]

    both = [str(standard.id), str(vip.id)]
    assert change_code(testapp, event, code["id"], ticket_type_ids=both).json["data"][
        "ticket_type_ids"
    ] == sorted(both)
    again = change_code(testapp, event, code["id"], ticket_type_ids=[str(standard.id)])
    assert again.json["data"]["ticket_type_ids"] == [str(standard.id)]
    same = change_code(testapp, event, code["id"], ticket_type_ids=[str(standard.id)])
    assert same.json["data"]["ticket_type_ids"] == [str(standard.id)]

    bought = buy(testapp, event, ticket_type_id=str(standard.id), promo_code="PARTNER20")
    assert bought.json["data"]["total_amount"] == "40.00"
    refused = buy(testapp, event, status=400, ticket_type_id=str(vip.id), promo_code="PARTNER20")
    assert refused.json["code"] == "promo_code_not_applicable"
    assert (
        change_code(testapp, event, code["id"], ticket_type_ids=[]).json["data"]["ticket_type_ids"]
        == []
    )
    assert_books(dbengine, gateway)


def test_a_deleted_type_leaves_its_codes_and_a_code_for_it_alone_is_disabled(testapp, dbengine):
    event = create_event(dbengine)
    vip, crew = create_ticket_type(dbengine, event), create_ticket_type(dbengine, event)
    alone = add_code(testapp, event, code="VIP", ticket_type_ids=[str(vip.id)]).json["data"]
    both = [str(vip.id), str(crew.id)]
    shared = add_code(testapp, event, code="BOTH", ticket_type_ids=both).json["data"]

    testapp.delete(f"/api/events/{event.id}/ticket-types/{vip.id}", status=204)

    alone, shared = code_of(testapp, event, alone["id"]), code_of(testapp, event, shared["id"])
    assert (alone["ticket_type_ids"], alone["disabled"]) == ([], True)
    assert (shared["ticket_type_ids"], shared["disabled"]) == ([str(crew.id)], False)


def test_an_event_without_orders_is_deleted_with_its_codes(testapp, dbengine):
    event = create_event(dbengine)
    add_code(testapp, event)

    testapp.delete(f"/api/events/{event.id}", status=204)

    testapp.get(codes_path(event), status=404)
