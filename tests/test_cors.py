"""CORS, with Cornice's own support: organisers' checkout pages (the origins of
``ticketing.cors_origins``) may call the buyer endpoints from the browser, preflight included;
organiser endpoints are not opened to any other origin."""

import pytest
from webtest import TestApp

from ticketing import main
from ticketing.interfaces import IPaymentGateway

from .conftest import app_settings
from .factories import create_event
from .holds import assert_books, order_body, reserve

SHOP = "https://shop.example.com"
ELSEWHERE = "https://evil.example.net"


@pytest.fixture
def app(dbengine):
    return main(
        {}, **app_settings(dbengine, **{"ticketing.cors_origins": f"{SHOP} https://b.example"})
    )


@pytest.fixture
def client(app):
    return TestApp(app, extra_environ={"HTTP_HOST": "tickets.test"})


def preflight(client, path, origin=SHOP, method="POST", status=200):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "Content-Type, Idempotency-Key",
        },
        status=status,
    )


BUYER_PATHS = (
    ("POST", "/api/events/{event}/purchase"),
    ("POST", "/api/events/{event}/orders"),
    ("POST", "/api/orders/{order}/pay"),
    ("POST", "/api/orders/{order}/release"),
    ("GET", "/api/orders/{order}"),
)


@pytest.mark.parametrize(("method", "pattern"), BUYER_PATHS)
def test_a_checkout_page_s_preflight_is_answered(client, dbengine, method, pattern):
    event = create_event(dbengine)
    order = reserve(client, event).json["data"]
    path = pattern.format(event=event.id, order=order["id"])

    answer = preflight(client, path, method=method)

    assert answer.headers["Access-Control-Allow-Origin"] == SHOP
    assert method in answer.headers["Access-Control-Allow-Methods"].split(",")
    allowed = {
        name.strip().lower() for name in answer.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {"content-type", "idempotency-key"} <= allowed
    assert_books(dbengine, client.app.registry.getUtility(IPaymentGateway))


def test_a_checkout_page_reserves_pays_and_reads_the_error_too(client, dbengine):
    event = create_event(dbengine, total_tickets=1)
    origin = {"Origin": SHOP}

    hold = client.post_json(
        f"/api/events/{event.id}/orders", order_body(), headers=origin, status=201
    )
    refused = client.post_json(
        f"/api/events/{event.id}/orders", order_body(), headers=origin, status=409
    )
    paid = client.post_json(
        f"/api/orders/{hold.json['data']['id']}/pay", {"payment": {}}, headers=origin, status=200
    )

    for response in (hold, refused, paid):
        assert response.headers["Access-Control-Allow-Origin"] == SHOP
    assert "Location" in hold.headers["Access-Control-Expose-Headers"]
    assert_books(dbengine, client.app.registry.getUtility(IPaymentGateway))


def test_another_origin_is_refused_before_anything_is_done(client, dbengine):
    event = create_event(dbengine, total_tickets=5)

    refused = client.post_json(
        f"/api/events/{event.id}/orders", order_body(), headers={"Origin": ELSEWHERE}, status=400
    )
    preflight_refused = preflight(client, f"/api/events/{event.id}/purchase", ELSEWHERE, status=400)

    assert refused.json["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert "Access-Control-Allow-Origin" not in preflight_refused.headers
    assert client.get(f"/api/events/{event.id}/availability").json["data"]["event"]["held"] == 0
    assert_books(dbengine, client.app.registry.getUtility(IPaymentGateway))


def test_the_api_s_own_pages_may_call_it(client, dbengine):
    event = create_event(dbengine)
    own = client.post_json(
        f"/api/events/{event.id}/orders", order_body(), headers={"Origin": "http://tickets.test"}
    )
    assert own.status_int == 201
    assert_books(dbengine, client.app.registry.getUtility(IPaymentGateway))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/events"),
        ("GET", "/api/orders"),
        ("POST", "/api/keys"),
        ("GET", "/api/events"),
    ],
)
def test_organiser_endpoints_are_not_opened_to_other_origins(client, dbengine, method, path):
    answer = client.options(
        path, headers={"Origin": SHOP, "Access-Control-Request-Method": method}, status="*"
    )
    assert "Access-Control-Allow-Origin" not in answer.headers
    direct = client.request(path, method=method, headers={"Origin": SHOP}, status="*")
    assert "Access-Control-Allow-Origin" not in direct.headers
    assert_books(dbengine, client.app.registry.getUtility(IPaymentGateway))


def test_without_origins_configured_only_the_api_itself_is_let_in(dbengine):
    client = TestApp(
        main({}, **app_settings(dbengine)), extra_environ={"HTTP_HOST": "tickets.test"}
    )
    event = create_event(dbengine)
    refused = client.post_json(
        f"/api/events/{event.id}/purchase", order_body(), headers={"Origin": SHOP}, status=400
    )
    assert refused.json["code"] == "origin_not_allowed"
    # Servers calling it send no Origin, and are served as before.
    assert client.post_json(f"/api/events/{event.id}/purchase", order_body(), status=201)
    assert_books(dbengine, client.app.registry.getUtility(IPaymentGateway))
