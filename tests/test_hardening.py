"""Oversized and mistyped bodies, request ids, 500s that never show a traceback, and requests
that never leave their thread's transaction open."""

import logging
import uuid

import pytest
import transaction
from transaction.interfaces import NoTransaction
from zope.interface import implementer

from ticketing.adapters.payments import MockPaymentGateway
from ticketing.interfaces import IPaymentGateway

from .factories import create_event


def test_a_body_over_the_limit_is_refused_with_413(testapp):
    body = b'{"event": {"name": "' + b"x" * (64 * 1024) + b'"}}'
    response = testapp.post("/api/events", body, content_type="application/json", status=413)
    assert response.json["code"] == "payload_too_large"
    assert response.content_type == "application/problem+json"


def test_a_chunked_body_over_the_limit_is_refused_with_413(testapp):
    body = b"[" + b"1," * (40 * 1024) + b"1]"
    response = testapp.post(
        "/api/events",
        body,
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        extra_environ={"CONTENT_LENGTH": ""},
        status=413,
    )
    assert response.json["code"] == "payload_too_large"


def test_a_non_json_content_type_is_refused_with_415(testapp, dbengine):
    event = create_event(dbengine)
    for content_type in ("text/plain", "multipart/form-data", "application/x-www-form-urlencoded"):
        response = testapp.post(
            f"/api/events/{event.id}/purchase",
            b"order=1",
            headers={"Content-Type": content_type},
            status=415,
        )
        assert response.json["code"] == "unsupported_media_type"


def test_every_response_carries_a_request_id(testapp):
    generated = testapp.get("/api/events").headers["X-Request-Id"]
    assert len(generated) == 32
    assert testapp.get("/api/events").headers["X-Request-Id"] != generated
    kept = testapp.get("/api/events", headers={"X-Request-Id": "client-abc.1"})
    assert kept.headers["X-Request-Id"] == "client-abc.1"
    replaced = testapp.get("/api/events", headers={"X-Request-Id": "bad id\r\nx"})
    assert replaced.headers["X-Request-Id"] != "bad id\r\nx"
    assert testapp.get("/nowhere", status=404).headers["X-Request-Id"]


@implementer(IPaymentGateway)
class BrokenGateway(MockPaymentGateway):
    def charge(self, *args, **kwargs):
        raise RuntimeError("secret internals: sk_live_123")


def test_an_unexpected_error_is_a_logged_500_without_a_traceback(app, testapp, dbengine, caplog):
    app.registry.registerUtility(BrokenGateway(), IPaymentGateway)
    event = create_event(dbengine)
    request_id = f"req-{uuid.uuid4().hex}"

    with caplog.at_level(logging.ERROR):
        response = testapp.post_json(
            f"/api/events/{event.id}/purchase",
            {"order": {"customer_email": "a@example.com", "customer_name": "A", "quantity": 1}},
            headers={"X-Request-Id": request_id},
            status=500,
        )

    assert response.json["code"] == "internal_error"
    assert response.headers["X-Request-Id"] == request_id
    assert "Traceback" not in response.text and "sk_live" not in response.text
    assert request_id in caplog.text
    assert "RuntimeError" in caplog.text


def test_no_request_leaves_its_threads_transaction_open(app, testapp, dbengine):
    # Requests run on their serving thread's transaction manager, which the thread's next
    # request reuses: whatever a request ends with, its transaction must be over.
    event = create_event(dbengine)
    purchase = f"/api/events/{event.id}/purchase"
    order = {"customer_email": "a@example.com", "customer_name": "A", "quantity": 1}

    def assert_no_transaction():
        with pytest.raises(NoTransaction):
            transaction.manager.get()

    original = app.registry.getUtility(IPaymentGateway)
    app.registry.registerUtility(BrokenGateway(), IPaymentGateway)
    testapp.post_json(purchase, {"order": order}, status=500)  # between the purchase's phases
    assert_no_transaction()
    app.registry.registerUtility(original, IPaymentGateway)
    testapp.post_json(purchase, {"order": {**order, "quantity": 0}}, status=400)
    assert_no_transaction()
    testapp.get(f"/api/orders/{uuid.uuid4()}", status=404)
    assert_no_transaction()

    created = testapp.post_json(purchase, {"order": order}, status=201)
    assert_no_transaction()
    assert testapp.get(created.location).json["data"]["status"] == "confirmed"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("updated_since=;&limit=1", "updated_since", id="semicolon-is-no-separator"),
        pytest.param("limit=1;limit=1000", "limit", id="semicolon-inside-a-value"),
    ],
)
def test_query_strings_split_on_ampersands_only(testapp, query, field):
    response = testapp.get(f"/api/events?{query}", status=400)
    assert response.json["code"] == "validation_failed"
    assert [error["field"] for error in response.json["errors"]] == [field]


def test_a_query_string_that_is_not_utf8_is_a_bad_request(testapp):
    response = testapp.get("/api/events?status=%FF", status=400)
    assert response.content_type == "application/problem+json"
    assert response.json["code"] == "bad_request"
