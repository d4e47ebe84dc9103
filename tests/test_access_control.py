"""Organiser operations need an API key; buyers need none, and never see drafts."""

import pytest
from webtest import TestApp

from ticketing import main
from ticketing.models import EventStatus

from .conftest import app_settings
from .factories import create_event

KEYS = "old-key-1234 new-key-5678"
EVENT = {
    "event": {
        "name": "Concert",
        "venue": "Stadium",
        "date": "2030-07-15T18:00:00Z",
        "ticket_price": "50.00",
        "total_tickets": 10,
    }
}


@pytest.fixture
def testapp(dbengine):
    settings = app_settings(
        dbengine, **{"ticketing.require_api_key": "true", "ticketing.api_keys": KEYS}
    )
    return TestApp(main({}, **settings))


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def test_organiser_operations_need_a_key(testapp, dbengine):
    event = create_event(dbengine, status=EventStatus.DRAFT)
    calls = [
        lambda **kw: testapp.post_json("/api/events", EVENT, **kw),
        lambda **kw: testapp.put_json(f"/api/events/{event.id}", {"event": {"name": "X"}}, **kw),
        lambda **kw: testapp.post(f"/api/events/{event.id}/publish", **kw),
        lambda **kw: testapp.delete(f"/api/events/{event.id}", **kw),
        lambda **kw: testapp.get("/api/orders", **kw),
    ]
    for call in calls:
        missing = call(status=401)
        assert missing.json["code"] == "unauthorized"
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = call(status=403, headers=bearer("guess"))
        assert wrong.json["code"] == "forbidden"
        assert wrong.content_type == "application/problem+json"


def test_every_listed_key_works_so_keys_can_be_rotated(testapp):
    for key in KEYS.split():
        testapp.post_json("/api/events", EVENT, headers=bearer(key), status=201)
    testapp.get("/api/orders", headers=bearer("new-key-5678"), status=200)


def test_buyers_browse_published_events_buy_and_read_their_order(testapp, dbengine):
    published = create_event(dbengine)
    draft = create_event(dbengine, status=EventStatus.DRAFT)

    listed = [event["id"] for event in testapp.get("/api/events").json["data"]]
    assert listed == [str(published.id)]
    assert testapp.get("/api/events", {"status": "draft"}).json["data"] == []
    testapp.get(f"/api/events/{draft.id}", status=404)
    testapp.get(f"/api/events/{published.id}", status=200)

    order = testapp.post_json(
        f"/api/events/{published.id}/purchase",
        {"order": {"customer_email": "b@example.com", "customer_name": "B", "quantity": 1}},
        status=201,
    ).json["data"]
    testapp.get(f"/api/orders/{order['id']}", status=200)
    testapp.post(f"/api/orders/{order['id']}/cancel", status=200)


def test_organisers_see_drafts(testapp, dbengine):
    draft = create_event(dbengine, status=EventStatus.DRAFT)
    headers = bearer("old-key-1234")
    assert [e["id"] for e in testapp.get("/api/events", headers=headers).json["data"]] == [
        str(draft.id)
    ]
    testapp.get(f"/api/events/{draft.id}", headers=headers, status=200)


def test_a_key_that_is_a_prefix_of_a_real_one_is_refused(testapp):
    testapp.post_json("/api/events", EVENT, headers=bearer("old-key"), status=403)
    testapp.post_json("/api/events", EVENT, headers={"Authorization": "Basic b2xk"}, status=401)
