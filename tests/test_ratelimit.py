"""Rate limits, on the real limits library: in memory, and on the local Redis shared by two apps."""

import uuid

from webtest import TestApp

from ticketing import main

from .conftest import REDIS_URL, app_settings
from .factories import create_event


def limited_app(engine, **overrides):
    settings = app_settings(engine, **{"ratelimit.enabled": "true"})
    settings.update(overrides)
    return TestApp(main({}, **settings), extra_environ={"REMOTE_ADDR": "203.0.113.7"})


def buy(testapp, event, number, status="*", **environ):
    body = {
        "order": {
            "customer_email": "a@example.com",
            "customer_name": "A",
            "quantity": 1,
            "idempotency_key": f"rl-{uuid.uuid4()}-{number}",
        }
    }
    return testapp.post_json(
        f"/api/events/{event.id}/purchase", body, status=status, extra_environ=environ
    )


def test_the_eleventh_purchase_in_a_minute_is_refused_while_reads_pass(pg_engine):
    testapp = limited_app(pg_engine)
    event = create_event(pg_engine, total_tickets=100)

    statuses = [buy(testapp, event, n).status_int for n in range(11)]

    assert statuses == [201] * 10 + [429]
    refused = buy(testapp, event, 12, status=429)
    assert refused.content_type == "application/problem+json"
    assert refused.json["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit"].startswith('"purchase";r=0;t=')
    read = testapp.get(f"/api/events/{event.id}", status=200)
    assert read.headers["RateLimit-Policy"] == '"general";q=100;w=60'


def test_every_limited_response_carries_the_draft_headers(pg_engine):
    testapp = limited_app(pg_engine)
    event = create_event(pg_engine, total_tickets=100)
    response = buy(testapp, event, 1, status=201)
    assert response.headers["RateLimit-Policy"] == '"general";q=100;w=60, "purchase";q=10;w=60'
    assert response.headers["RateLimit"].startswith('"purchase";r=9;t=')
    assert "RateLimit" not in testapp.get("/api/health").headers


def test_the_general_limit_applies_to_every_route_but_health(dbengine):
    testapp = limited_app(dbengine, **{"ratelimit.general": "3/minute"})
    for _ in range(3):
        testapp.get("/api/events", status=200)
    assert testapp.get("/api/events", status=429).json["code"] == "rate_limited"
    assert testapp.get("/api/orders", status=429).headers["Retry-After"]
    for _ in range(5):
        testapp.get("/api/health", status=200)


def test_two_app_instances_on_one_redis_share_the_count(pg_engine, redis_prefix):
    settings = {
        "ratelimit.storage_url": REDIS_URL,
        "ratelimit.key_prefix": redis_prefix,
        "ratelimit.purchase": "4/minute",
    }
    first = limited_app(pg_engine, **settings)
    second = limited_app(pg_engine, **settings)
    event = create_event(pg_engine, total_tickets=100)

    statuses = [buy(app, event, n).status_int for n, app in enumerate([first, second] * 3)]

    assert statuses == [201, 201, 201, 201, 429, 429]


def test_a_forged_forwarded_for_from_an_untrusted_peer_does_not_escape(dbengine):
    testapp = limited_app(dbengine, **{"ratelimit.general": "2/minute"})
    for number in range(2):
        testapp.get("/api/events", headers={"X-Forwarded-For": f"198.51.100.{number}"})
    response = testapp.get("/api/events", headers={"X-Forwarded-For": "198.51.100.99"}, status=429)
    assert response.json["code"] == "rate_limited"


def test_clients_behind_a_trusted_proxy_are_counted_apart(dbengine):
    testapp = limited_app(
        dbengine,
        **{"ratelimit.general": "1/minute", "ratelimit.trusted_proxies": "203.0.113.0/24"},
    )
    testapp.get("/api/events", headers={"X-Forwarded-For": "198.51.100.1"}, status=200)
    testapp.get("/api/events", headers={"X-Forwarded-For": "198.51.100.2"}, status=200)
    testapp.get("/api/events", headers={"X-Forwarded-For": "198.51.100.1"}, status=429)
    # A client cannot hide behind a forged hop the proxy appended after.
    testapp.get("/api/events", headers={"X-Forwarded-For": "10.9.9.9, 198.51.100.2"}, status=429)


def test_an_unreachable_storage_fails_open(dbengine, caplog):
    testapp = limited_app(
        dbengine,
        **{"ratelimit.storage_url": "redis://127.0.0.1:1/0", "ratelimit.general": "1/minute"},
    )
    for _ in range(3):
        assert testapp.get("/api/events", status=200).json["data"] == []
    assert "rate limit storage unavailable" in caplog.text


def test_rate_limits_can_be_switched_off(dbengine):
    testapp = limited_app(
        dbengine, **{"ratelimit.enabled": "false", "ratelimit.general": "1/minute"}
    )
    for _ in range(3):
        response = testapp.get("/api/events", status=200)
    assert "RateLimit" not in response.headers


def test_guessing_promo_codes_counts_against_the_purchase_limit(pg_engine):
    testapp = limited_app(pg_engine)
    event = create_event(pg_engine, total_tickets=100)
    types_path = f"/api/events/{event.id}/ticket-types"

    guesses = [
        testapp.get(types_path, {"promo_code": f"GUESS{n}"}, status="*").status_int
        for n in range(10)
    ]

    assert guesses == [400] * 10
    assert testapp.get(types_path, {"promo_code": "ONE-MORE"}, status=429).json["code"] == (
        "rate_limited"
    )
    hold = {"order": {"customer_email": "a@example.com", "customer_name": "A", "quantity": 1}}
    testapp.post_json(f"/api/events/{event.id}/orders", hold, status=429)
    buy(testapp, event, 11, status=429)
    testapp.get(types_path, status=200)  # without a code: the general limit only
