"""The "done when" path against a real server: migrate, serve with pserve, create an event,
publish it, read it back, all over HTTP."""

import datetime as dt
import json
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa

from .live_server import live_server


def call(method, url, body=None, timeout=5):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


@pytest.fixture
def server(tmp_path):
    with live_server(tmp_path) as base:
        yield base


def test_create_publish_and_read_back_over_http(server, tmp_path):
    date = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).replace(microsecond=0)
    body = {
        "event": {
            "name": "Concert",
            "venue": "Stadium",
            "date": date.isoformat().replace("+00:00", "Z"),
            "ticket_price": "50.00",
            "total_tickets": 100,
        }
    }
    status, headers, created = call("POST", f"{server}/api/events", body)
    assert status == 201, created
    event = created["data"]
    assert event["status"] == "draft"
    assert event["ticket_price"] == "50.00"
    assert headers["Location"].endswith(f"/api/events/{event['id']}")

    status, _, published = call("POST", f"{server}/api/events/{event['id']}/publish")
    assert status == 200, published
    assert published["data"]["status"] == "published"

    status, _, fetched = call("GET", f"{server}/api/events/{event['id']}")
    assert status == 200, fetched
    assert fetched["data"]["status"] == "published"
    assert fetched["data"]["name"] == "Concert"
    assert fetched["data"]["venue"] == "Stadium"
    assert fetched["data"]["date"] == body["event"]["date"]
    assert fetched["data"]["available_tickets"] == 100

    status, headers, problem = call("GET", f"{server}/api/events/{event['id']}/nothing")
    assert status == 404
    assert headers["Content-Type"].startswith("application/problem+json")
    assert problem["code"] == "not_found"

    # The server used the database DATABASE_URL names.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'live.sqlite'}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT name, status FROM events")).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [("Concert", "published")]


def published_event(base):
    date = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).replace(microsecond=0)
    body = {
        "event": {
            "name": "Concert",
            "venue": "Stadium",
            "date": date.isoformat().replace("+00:00", "Z"),
            "ticket_price": "50.00",
            "total_tickets": 10,
        }
    }
    status, _, created = call("POST", f"{base}/api/events", body)
    assert status == 201, created
    event_id = created["data"]["id"]
    assert call("POST", f"{base}/api/events/{event_id}/publish")[0] == 200
    return event_id


def test_an_order_bought_before_a_restart_is_cancelled_after_it(tmp_path):
    # The defect a newcomer found: the mock gateway's ledger lived in the server's memory, so
    # after a restart the refund of an earlier charge failed ("no such charge ch_mock_3").
    order = {"customer_email": "ann@example.com", "customer_name": "Ann Lee", "quantity": 2}
    with live_server(tmp_path) as base:
        event_id = published_event(base)
        status, _, bought = call("POST", f"{base}/api/events/{event_id}/purchase", {"order": order})
        assert status == 201, bought
    first_charge = bought["data"]["payment_reference"]

    with live_server(tmp_path) as base:
        order_id = bought["data"]["id"]
        status, _, cancelled = call("POST", f"{base}/api/orders/{order_id}/cancel")
        assert status == 200, cancelled
        assert cancelled["data"]["status"] == "cancelled"
        # Charge ids are unique for ever: a charge after the restart is not the first one's.
        status, _, again = call("POST", f"{base}/api/events/{event_id}/purchase", {"order": order})
        assert status == 201, again
        assert again["data"]["payment_reference"] != first_charge
