"""Purchase, orders and cancellation through the whole WSGI app, on SQLite and PostgreSQL."""

import datetime as dt
import uuid

import pytest

from ticketing.domain.orders import PurchaseRequest
from ticketing.models import EventStatus, OrderStatus

from .factories import (
    assert_books_balance,
    create_event,
    create_order,
    load_event,
    load_order,
    orders_of,
    set_event,
)


def order_body(**fields):
    order = {
        "customer_email": "john@example.com",
        "customer_name": "John Doe",
        "quantity": 2,
        "idempotency_key": "unique-key-123",
    }
    order.update(fields)
    return {"order": {key: value for key, value in order.items() if value is not None}}


def purchase(testapp, event, status=201, headers=None, **fields):
    return testapp.post_json(
        f"/api/events/{event.id}/purchase", order_body(**fields), status=status, headers=headers
    )


@pytest.fixture
def event(dbengine):
    return create_event(dbengine, total_tickets=10)


def test_purchase_confirms_an_order_and_takes_the_tickets(testapp, dbengine, gateway, event):
    response = purchase(testapp, event)

    order = response.json["data"]
    assert response.location == f"http://tickets.test/api/orders/{order['id']}"
    assert order["event_id"] == str(event.id)
    assert order["status"] == "confirmed"
    assert order["customer_email"] == "john@example.com"
    assert order["customer_name"] == "John Doe"
    assert order["quantity"] == 2
    assert order["unit_price"] == "50.00"
    assert order["total_amount"] == "100.00"
    assert order["currency"] == "USD"
    assert order["payment_reference"].startswith("ch_mock_")
    assert order["created_at"].endswith("Z") and order["confirmed_at"].endswith("Z")
    assert order["cancelled_at"] is None and order["refunded_at"] is None
    assert load_event(dbengine, event.id).available_tickets == 8
    [charge] = gateway.kept_charges()
    assert charge.amount_cents == 10000 and charge.currency == "USD"
    assert charge.metadata["order_id"] == order["id"]
    assert testapp.get(response.location).json["data"] == order
    assert_books_balance(dbengine, gateway)


def test_purchase_without_a_key_is_simply_a_new_purchase(testapp, dbengine, gateway, event):
    first = purchase(testapp, event, idempotency_key=None, quantity=1)
    second = purchase(testapp, event, idempotency_key=None, quantity=1)
    assert first.json["data"]["id"] != second.json["data"]["id"]
    assert load_event(dbengine, event.id).available_tickets == 8
    assert len(gateway.kept_charges()) == 2


def test_same_key_same_request_replays_the_order(testapp, dbengine, gateway, event):
    first = purchase(testapp, event)
    again = purchase(testapp, event, status=200)

    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json["data"] == first.json["data"]
    assert load_event(dbengine, event.id).available_tickets == 8
    assert [call[0] for call in gateway.calls] == ["charge"]
    assert_books_balance(dbengine, gateway)


@pytest.mark.parametrize(
    "since",
    [
        {"available_tickets": 0},
        {"status": EventStatus.COMPLETED},
        {"date": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)},
    ],
    ids=["sold out", "completed", "past"],
)
def test_a_retry_replays_its_order_though_the_event_no_longer_sells(
    testapp, dbengine, gateway, event, since
):
    # The key is read only once the reservation is refused: a retry must still find its order
    # when the refusal is the event's, not the key's.
    first = purchase(testapp, event)
    set_event(dbengine, event.id, **since)
    again = purchase(testapp, event, status=200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["data"] == first.json["data"]
    assert [call[0] for call in gateway.calls] == ["charge"]


def test_the_key_may_come_in_the_idempotency_key_header(testapp, dbengine, gateway, event):
    headers = {"Idempotency-Key": "header-key-1"}
    first = purchase(testapp, event, idempotency_key=None, headers=headers)
    again = purchase(testapp, event, idempotency_key=None, headers=headers, status=200)
    assert again.json["data"]["id"] == first.json["data"]["id"]
    assert len(gateway.kept_charges()) == 1


def test_header_and_body_keys_that_differ_are_refused(testapp, dbengine, gateway, event):
    response = purchase(testapp, event, headers={"Idempotency-Key": "other"}, status=422)
    assert response.json["code"] == "idempotency_key_mismatch"
    assert gateway.calls == []
    assert load_event(dbengine, event.id).available_tickets == 10


def test_same_key_with_a_different_request_is_refused(testapp, dbengine, gateway, event):
    purchase(testapp, event)
    response = purchase(testapp, event, quantity=3, status=422)
    assert response.json["code"] == "idempotency_key_reused"
    assert response.content_type == "application/problem+json"
    assert load_event(dbengine, event.id).available_tickets == 8
    assert len(gateway.kept_charges()) == 1


def test_a_duplicate_of_a_purchase_in_progress_gets_409_with_retry_after(testapp, dbengine, event):
    in_progress = PurchaseRequest(
        event_id=event.id,
        customer_email="john@example.com",
        customer_name="John Doe",
        quantity=2,
        idempotency_key="unique-key-123",
    )
    create_order(
        dbengine,
        event,
        customer_email="john@example.com",
        customer_name="John Doe",
        status=OrderStatus.PENDING,
        idempotency_key="unique-key-123",
        request_fingerprint=in_progress.fingerprint(),
    )
    response = purchase(testapp, event, status=409)
    assert response.json["code"] == "request_in_progress"
    assert response.headers["Retry-After"] == "1"
    assert len(orders_of(dbengine)) == 1


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"quantity": 0}, "order.quantity"),
        ({"quantity": 11}, "order.quantity"),
        ({"quantity": "2"}, "order.quantity"),
        ({"quantity": 2.0}, "order.quantity"),
        ({"customer_email": "not-an-email"}, "order.customer_email"),
        ({"customer_email": 12}, "order.customer_email"),
        ({"customer_name": ""}, "order.customer_name"),
        ({"customer_name": "x" * 201}, "order.customer_name"),
        ({"idempotency_key": "k" * 256}, "order.idempotency_key"),
        ({"idempotency_key": ""}, "order.idempotency_key"),
        ({"seat": "A1"}, "order.seat"),
    ],
)
def test_invalid_purchases_are_refused_naming_the_field(
    testapp, dbengine, gateway, event, fields, field
):
    response = purchase(testapp, event, status=400, **fields)
    assert response.json["code"] == "validation_failed"
    assert field in [error["field"] for error in response.json["errors"]]
    assert gateway.calls == []
    assert load_event(dbengine, event.id).available_tickets == 10


def test_missing_order_fields_are_named(testapp, event):
    response = testapp.post_json(f"/api/events/{event.id}/purchase", {"order": {}}, status=400)
    named = {error["field"] for error in response.json["errors"]}
    assert {"order.customer_email", "order.customer_name", "order.quantity"} <= named


def test_an_idempotency_key_header_over_255_characters_is_refused(testapp, event):
    response = purchase(
        testapp, event, idempotency_key=None, headers={"Idempotency-Key": "k" * 256}, status=400
    )
    assert response.json["code"] == "idempotency_key_invalid"


def test_max_tickets_per_order_is_a_setting(dbengine, event):
    from webtest import TestApp

    from ticketing import main

    from .conftest import app_settings

    app = TestApp(main({}, **app_settings(dbengine, **{"ticketing.max_tickets_per_order": "4"})))
    purchase(app, event, quantity=5, status=400)
    purchase(app, event, quantity=4, status=201)


@pytest.mark.parametrize(
    "change",
    [
        {"status": EventStatus.DRAFT},
        {"status": EventStatus.COMPLETED},
        {"date": dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)},
    ],
)
def test_only_published_future_events_are_on_sale(testapp, dbengine, gateway, event, change):
    set_event(dbengine, event.id, **change)
    response = purchase(testapp, event, status=409)
    assert response.json["code"] == "event_not_on_sale"
    assert gateway.calls == []
    assert orders_of(dbengine) == []


def test_unknown_or_malformed_event_is_404(testapp):
    assert (
        testapp.post_json(f"/api/events/{uuid.uuid4()}/purchase", order_body(), status=404).json[
            "code"
        ]
        == "event_not_found"
    )
    assert (
        testapp.post_json("/api/events/42/purchase", order_body(), status=404).json["code"]
        == "event_not_found"
    )


def test_insufficient_tickets_charges_nothing(testapp, dbengine, gateway, event):
    response = purchase(testapp, event, quantity=11 - 1, idempotency_key="a")
    assert response.json["data"]["quantity"] == 10
    refused = purchase(testapp, event, quantity=1, idempotency_key="b", status=409)
    assert refused.json["code"] == "insufficient_tickets"
    assert refused.json["available_tickets"] == 0
    assert len(gateway.calls) == 1
    assert_books_balance(dbengine, gateway)


def test_declined_payment_returns_the_tickets_and_keeps_its_answer(
    testapp, dbengine, gateway, event
):
    gateway.configure(failure_mode="card_declined")
    response = purchase(testapp, event, status=402)

    assert response.json["code"] == "payment_declined"
    [order] = orders_of(dbengine)
    assert order.status == OrderStatus.FAILED and order.failure_code == "payment_declined"
    assert load_event(dbengine, event.id).available_tickets == 10
    assert_books_balance(dbengine, gateway)

    # Stripe's semantics: the same key gets the same answer, without another charge attempt.
    gateway.configure()
    replay = purchase(testapp, event, status=402)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert [call[0] for call in gateway.calls] == ["charge"]


@pytest.mark.parametrize("mode", ["timeout", "server_error"])
def test_payment_unavailable_returns_the_tickets_and_frees_the_key(
    testapp, dbengine, gateway, event, mode
):
    gateway.configure(failure_mode=mode)
    response = purchase(testapp, event, status=503)

    assert response.json["code"] == "payment_unavailable"
    [failed] = orders_of(dbengine)
    assert failed.status == OrderStatus.FAILED
    assert load_event(dbengine, event.id).available_tickets == 10
    assert_books_balance(dbengine, gateway)

    gateway.configure()
    retried = purchase(testapp, event, status=201)
    assert retried.json["data"]["status"] == "confirmed"
    assert load_event(dbengine, event.id).available_tickets == 8
    assert_books_balance(dbengine, gateway)


def test_a_charge_that_went_through_before_a_timeout_confirms_the_order(
    testapp, dbengine, gateway, event
):
    gateway.configure(failure_mode="timeout_after_charge")
    response = purchase(testapp, event, status=201)
    assert response.json["data"]["status"] == "confirmed"
    assert len(gateway.kept_charges()) == 1
    assert_books_balance(dbengine, gateway)


def test_an_unknown_payment_outcome_leaves_the_order_for_the_sweep(
    testapp, dbengine, gateway, event
):
    gateway.configure(failure_mode="timeout", lookup_failure_mode="timeout")
    response = purchase(testapp, event, status=503)
    [order] = orders_of(dbengine)
    assert response.json["order_id"] == str(order.id)
    assert order.status == OrderStatus.PENDING
    # A retry with the same key while it is unsettled is told to wait, never charged twice.
    assert purchase(testapp, event, status=409).json["code"] == "request_in_progress"


def test_list_orders_filters_and_paginates(testapp, dbengine, event):
    other = create_event(dbengine, total_tickets=10)
    for number in range(3):
        purchase(testapp, event, quantity=1, idempotency_key=f"e-{number}")
    purchase(testapp, other, quantity=1, idempotency_key="o-1", customer_email="Ann@Example.com")

    everything = testapp.get("/api/orders").json
    assert len(everything["data"]) == 4 and everything["meta"]["next_cursor"] is None

    by_event = testapp.get("/api/orders", {"event_id": str(event.id), "limit": 2}).json
    assert len(by_event["data"]) == 2
    rest = testapp.get(
        "/api/orders",
        {"event_id": str(event.id), "limit": 2, "cursor": by_event["meta"]["next_cursor"]},
    ).json
    assert len(rest["data"]) == 1 and rest["meta"]["next_cursor"] is None
    seen = [o["id"] for o in by_event["data"] + rest["data"]]
    assert len(set(seen)) == 3

    by_email = testapp.get("/api/orders", {"customer_email": "ann@example.com"}).json["data"]
    assert [o["event_id"] for o in by_email] == [str(other.id)]
    assert testapp.get("/api/orders", {"status": "cancelled"}).json["data"] == []
    assert len(testapp.get("/api/orders", {"status": "confirmed"}).json["data"]) == 4


@pytest.mark.parametrize(
    "query", [{"event_id": "nope"}, {"status": "paid"}, {"limit": "0"}, {"limit": "101"}]
)
def test_list_orders_refuses_bad_filters(testapp, query):
    assert testapp.get("/api/orders", query, status=400).json["code"] == "validation_failed"


def test_unknown_or_malformed_order_is_404(testapp):
    assert testapp.get(f"/api/orders/{uuid.uuid4()}", status=404).json["code"] == "order_not_found"
    assert testapp.get("/api/orders/abc", status=404).json["code"] == "order_not_found"
    assert testapp.post(f"/api/orders/{uuid.uuid4()}/cancel", status=404).json["code"] == (
        "order_not_found"
    )


def test_cancel_refunds_in_full_and_returns_the_tickets(testapp, dbengine, gateway, event):
    order = purchase(testapp, event, quantity=3).json["data"]

    cancelled = testapp.post(f"/api/orders/{order['id']}/cancel", status=200).json["data"]

    assert cancelled["status"] == "cancelled"
    assert cancelled["refund_reference"].startswith("re_mock_")
    assert cancelled["cancelled_at"].endswith("Z") and cancelled["refunded_at"].endswith("Z")
    assert load_event(dbengine, event.id).available_tickets == 10
    assert gateway.kept_charges() == []
    assert_books_balance(dbengine, gateway)

    again = testapp.post(f"/api/orders/{order['id']}/cancel", status=409)
    assert again.json["code"] == "order_not_cancellable"
    assert load_event(dbengine, event.id).available_tickets == 10
    assert [call[0] for call in gateway.calls].count("refund") == 1


def test_a_failed_refund_leaves_the_order_as_it_was(testapp, dbengine, gateway, event):
    order = purchase(testapp, event, quantity=3).json["data"]
    gateway.configure(refund_failure_mode="timeout")

    response = testapp.post(f"/api/orders/{order['id']}/cancel", status=502)

    assert response.json["code"] == "refund_failed"
    assert load_order(dbengine, order["id"]).status == OrderStatus.CONFIRMED
    assert load_event(dbengine, event.id).available_tickets == 7
    assert_books_balance(dbengine, gateway)


def test_orders_of_past_events_cannot_be_cancelled(testapp, dbengine, gateway, event):
    order = purchase(testapp, event).json["data"]
    set_event(dbengine, event.id, date=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    response = testapp.post(f"/api/orders/{order['id']}/cancel", status=409)
    assert response.json["code"] == "order_not_cancellable"
    assert gateway.kept_charges() != []


def test_failed_orders_cannot_be_cancelled(testapp, dbengine, gateway, event):
    gateway.configure(failure_mode="card_declined")
    purchase(testapp, event, status=402)
    [order] = orders_of(dbengine)
    assert testapp.post(f"/api/orders/{order.id}/cancel", status=409).json["code"] == (
        "order_not_cancellable"
    )


def test_an_event_with_orders_cannot_be_deleted(testapp, dbengine, event):
    purchase(testapp, event)
    response = testapp.delete(f"/api/events/{event.id}", status=409)
    assert response.json["code"] == "event_has_orders"
    assert load_event(dbengine, event.id) is not None
