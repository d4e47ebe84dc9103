"""``GET /api/health``: a liveness probe that also checks the database."""

import pytest
from webtest import TestApp

from ticketing import main

from .conftest import REDIS_URL, app_settings

UNREACHABLE_DATABASE = "postgresql+psycopg://root@127.0.0.1:1/nothing"


def test_health_is_ok_when_the_database_answers(testapp):
    response = testapp.get("/api/health", status=200)
    assert response.content_type == "application/json"
    assert response.json["status"] == "ok"
    assert response.json["checks"] == {"database": "ok"}


def test_health_leaves_no_trace_in_the_data(testapp):
    testapp.get("/api/health", status=200)
    assert testapp.get("/api/events").json["data"] == []


@pytest.fixture
def app_without_database(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = main(
        {},
        **{
            "sqlalchemy.url": UNREACHABLE_DATABASE,
            "ticketing.payments": "mock",
            "ticketing.email": "mock",
            "ticketing.require_api_key": "false",
            "ticketing.ticket_secret": "test-ticket-secret",
        },
    )
    yield TestApp(app, extra_environ={"HTTP_HOST": "tickets.test"})
    app.registry["dbengine"].dispose()


def test_health_is_503_when_the_database_is_unreachable(app_without_database):
    response = app_without_database.get("/api/health", status=503)
    assert response.content_type == "application/problem+json"
    body = response.json
    assert body["status"] == 503
    assert body["code"] == "service_unavailable"
    assert body["type"] and body["title"]
    assert body["checks"] == {"database": "unavailable"}
    # The probe says what is wrong without leaking the connection string.
    assert "127.0.0.1:1" not in response.text
    assert "root@" not in response.text


def test_the_app_starts_even_when_the_database_is_down(app_without_database):
    # Building the app connects to nothing; only requests that need the database fail.
    response = app_without_database.get("/nowhere", status=404)
    assert response.json["code"] == "not_found"


def redis_app(pg_engine, url):
    settings = app_settings(pg_engine, **{"huey.immediate": "false", "huey.url": url})
    return TestApp(main({}, **settings), extra_environ={"HTTP_HOST": "tickets.test"})


def test_health_reports_redis_when_the_app_uses_it(pg_engine, redis_prefix):
    testapp = redis_app(pg_engine, REDIS_URL)
    body = testapp.get("/api/health", status=200).json
    assert body == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_redis_down_is_degraded_but_still_200(pg_engine):
    # The API sells without Redis (limits fail open, emails wait in the outbox): no 503.
    testapp = redis_app(pg_engine, "redis://127.0.0.1:1/0")
    body = testapp.get("/api/health", status=200).json
    assert body == {"status": "degraded", "checks": {"database": "ok", "redis": "degraded"}}
