"""Check-in at the door over HTTP, with real keys: the door's flow, every refusal, replays by
nonce, undo, the figures, keys limited to events, and 20 simultaneous scans of one code on
PostgreSQL admitting it exactly once."""

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from webtest import TestApp

from ticketing import main
from ticketing.models import CheckIn, EventLogEntry

from .conftest import app_settings
from .factories import create_event, create_key, create_ticket_type
from .test_purchase_concurrency import run_at_once
from .test_ticket_pdf import decoded_qr_codes

ADMIN_KEY = "settings-admin-key"


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def make_app(engine):
    settings = app_settings(
        engine, **{"ticketing.require_api_key": "true", "ticketing.api_keys": ADMIN_KEY}
    )
    return main({}, **settings)


@pytest.fixture
def testapp(dbengine):
    return TestApp(make_app(dbengine), extra_environ={"HTTP_HOST": "tickets.test"})


@pytest.fixture
def door(dbengine):
    """The Bearer headers of a checkin key for every event, made as an organiser would."""
    return bearer(create_key(dbengine, "checkin", name="Door 1")[1])


def buy(testapp, event, quantity=2, **order):
    body = {"customer_email": "ann@example.com", "customer_name": "Ann", **order}
    if "items" not in body:
        body["quantity"] = quantity
    order = testapp.post_json(f"/api/events/{event.id}/purchase", {"order": body}, status=201)
    tickets = testapp.get(f"/api/orders/{order.json['data']['id']}/tickets").json["data"]
    return order.json["data"], tickets


def scan(testapp, event, code, headers, status=201, nonce=None):
    body = {"code": code} if nonce is None else {"code": code, "nonce": nonce}
    return testapp.post_json(
        f"/api/events/{event.id}/check-ins", body, headers=headers, status=status
    )


def stats(testapp, event, headers):
    return testapp.get(f"/api/events/{event.id}/check-ins/stats", headers=headers).json["data"]


def test_the_door_admits_a_ticket_once_and_counts_it(testapp, dbengine, door):
    event = create_event(dbengine)
    order, (first, second) = buy(testapp, event)

    admitted = scan(testapp, event, first["code"], door)
    again = scan(testapp, event, first["code"], door, status=409)

    data = admitted.json["data"]
    assert admitted.location.endswith(f"/api/check-ins/{data['id']}")
    assert (data["ticket_id"], data["order_id"], data["event_id"]) == (
        first["id"],
        order["id"],
        str(event.id),
    )
    assert (data["ticket_type"], data["attendee_name"], data["attendee_email"]) == (
        "General admission",
        "Ann",
        "ann@example.com",
    )
    assert data["checked_in_by"]["name"] == "Door 1" and data["undone_at"] is None
    problem = again.json
    assert problem["code"] == "already_checked_in"
    assert problem["checked_in_at"] == data["checked_in_at"]
    assert problem["checked_in_by"] == data["checked_in_by"]
    assert problem["check_in_id"] == data["id"]
    figures = stats(testapp, event, door)
    assert (figures["sold"], figures["checked_in"]) == (2, 1)
    assert figures["ticket_types"] == [
        {
            "ticket_type_id": str(event.ticket_types[0].id),
            "name": "General admission",
            "sold": 2,
            "checked_in": 1,
        }
    ]
    listed = testapp.get(f"/api/orders/{order['id']}/tickets").json["data"]
    assert (
        listed[[t["id"] for t in listed].index(first["id"])]["checked_in_at"]
        == (data["checked_in_at"])
    )
    scan(testapp, event, second["code"], door)
    assert stats(testapp, event, door)["checked_in"] == 2


def test_codes_are_read_in_any_case_with_spaces(testapp, dbengine, door):
    event = create_event(dbengine)
    _, (ticket, _) = buy(testapp, event)
    typed = " ".join(ticket["code"].replace("-", "")).lower()
    assert scan(testapp, event, typed, door).json["data"]["ticket_id"] == ticket["id"]


def test_the_refusals(testapp, dbengine, door):
    event = create_event(dbengine)
    other_event = create_event(dbengine, name="Other")
    order, (ticket, _) = buy(testapp, event)
    _, (other_ticket, _) = buy(testapp, other_event)
    testapp.post(f"/api/orders/{order['id']}/cancel")

    def code_of(code, at=event, status=409):
        return scan(testapp, at, code, door, status=status).json["code"]

    assert code_of(ticket["code"]) == "ticket_void"
    assert code_of(other_ticket["code"]) == "wrong_event"
    assert code_of("ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ", status=404) == "ticket_not_found"
    unknown_event = type(event)(id=uuid.uuid4())
    assert code_of(other_ticket["code"], at=unknown_event, status=404) == "event_not_found"
    for body in ({}, {"code": ""}, {"code": 12}, {"code": "X", "nonce": ""}, {"code": "X", "x": 1}):
        response = testapp.post_json(
            f"/api/events/{event.id}/check-ins", body, headers=door, status=400
        )
        assert response.json["code"] == "validation_failed"
    assert stats(testapp, other_event, door)["checked_in"] == 0


def test_the_same_nonce_replays_the_first_answer(testapp, dbengine, door):
    event = create_event(dbengine)
    _, (first, second) = buy(testapp, event)

    original = scan(testapp, event, first["code"], door, nonce="scan-1")
    retried = scan(testapp, event, first["code"].lower(), door, nonce="scan-1")
    other_scan = scan(testapp, event, first["code"], door, status=409, nonce="scan-2")
    reused = scan(testapp, event, second["code"], door, status=422, nonce="scan-1")

    assert "Idempotent-Replayed" not in original.headers
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json == original.json
    assert other_scan.json["code"] == "already_checked_in"
    assert reused.json["code"] == "nonce_reused"
    assert stats(testapp, event, door)["checked_in"] == 1


def test_undoing_a_scan_makes_the_ticket_valid_again(testapp, dbengine, door):
    event = create_event(dbengine)
    _, (ticket, _) = buy(testapp, event)
    first = scan(testapp, event, ticket["code"], door).json["data"]

    testapp.delete(f"/api/check-ins/{first['id']}", headers=door, status=204)
    assert stats(testapp, event, door)["checked_in"] == 0
    testapp.delete(f"/api/check-ins/{first['id']}", headers=door, status=204)
    second = scan(testapp, event, ticket["code"], door).json["data"]

    assert second["id"] != first["id"]
    # Undoing the first scan again leaves the second one standing.
    testapp.delete(f"/api/check-ins/{first['id']}", headers=door, status=204)
    assert stats(testapp, event, door)["checked_in"] == 1
    for missing in (uuid.uuid4(), "not-a-uuid"):
        response = testapp.delete(f"/api/check-ins/{missing}", headers=door, status=404)
        assert response.json["code"] == "check_in_not_found"


def test_an_order_with_a_checked_in_ticket_cannot_be_cancelled(testapp, dbengine, door):
    event = create_event(dbengine)
    order, (ticket, _) = buy(testapp, event)
    check_in = scan(testapp, event, ticket["code"], door).json["data"]

    refused = testapp.post(f"/api/orders/{order['id']}/cancel", status=409)
    assert refused.json["code"] == "order_checked_in"
    assert testapp.get(f"/api/orders/{order['id']}").json["data"]["status"] == "confirmed"

    testapp.delete(f"/api/check-ins/{check_in['id']}", headers=door, status=204)
    testapp.post(f"/api/orders/{order['id']}/cancel", status=200)


def test_a_key_limited_to_some_events_checks_in_there_only(testapp, dbengine):
    event = create_event(dbengine)
    other_event = create_event(dbengine, name="Other")
    limited = bearer(create_key(dbengine, "checkin", event_ids=[event.id])[1])
    _, (ticket, _) = buy(testapp, event)
    _, (other_ticket, _) = buy(testapp, other_event)
    admin_check_in = scan(testapp, other_event, other_ticket["code"], bearer(ADMIN_KEY))

    refused = scan(testapp, other_event, other_ticket["code"], limited, status=403)
    assert refused.json["code"] == "insufficient_scope"
    scan(testapp, event, ticket["code"], limited)
    assert stats(testapp, event, limited)["checked_in"] == 1
    testapp.get(f"/api/events/{other_event.id}/check-ins/stats", headers=limited, status=403)
    undo = f"/api/check-ins/{admin_check_in.json['data']['id']}"
    assert testapp.delete(undo, headers=limited, status=403).json["code"] == "insufficient_scope"


def test_read_keys_see_the_figures_and_check_in_nobody(testapp, dbengine):
    event = create_event(dbengine)
    _, (ticket,) = buy(testapp, event, quantity=1)
    reader = bearer(create_key(dbengine, "read")[1])
    scan(testapp, event, ticket["code"], reader, status=403)
    assert stats(testapp, event, reader) == {
        "event_id": str(event.id),
        "sold": 1,
        "checked_in": 0,
        "ticket_types": [
            {
                "ticket_type_id": str(event.ticket_types[0].id),
                "name": "General admission",
                "sold": 1,
                "checked_in": 0,
            }
        ],
    }
    assert testapp.get(
        f"/api/events/{uuid.uuid4()}/check-ins/stats", headers=reader, status=404
    ).json["code"] == ("event_not_found")


def test_stats_count_each_type_and_leave_void_tickets_out(testapp, dbengine, door):
    event = create_event(dbengine)
    vip = create_ticket_type(dbengine, event)
    _, vip_tickets = buy(testapp, event, quantity=None, items=[
        {"ticket_type_id": str(vip.id), "quantity": 2}
    ])  # fmt: skip
    general = str(event.ticket_types[0].id)
    cancelled, _ = buy(testapp, event, ticket_type_id=general, quantity=3)
    testapp.post(f"/api/orders/{cancelled['id']}/cancel")
    scan(testapp, event, vip_tickets[0]["code"], door)

    figures = stats(testapp, event, door)
    assert (figures["sold"], figures["checked_in"]) == (2, 1)
    assert [(t["name"], t["sold"], t["checked_in"]) for t in figures["ticket_types"]] == [
        ("General admission", 0, 0),
        ("VIP", 2, 1),
    ]


# --- PostgreSQL, with real threads ---------------------------------------------------------------


def test_twenty_simultaneous_scans_of_one_code_admit_it_once(pg_engine):
    app = make_app(pg_engine)
    event = create_event(pg_engine)
    client = TestApp(app)
    _, (ticket, _) = buy(client, event)
    door = bearer(create_key(pg_engine, "checkin", name="Door 1")[1])

    responses = run_at_once(
        20, lambda n: scan(TestApp(app), event, ticket["code"], door, status="*")
    )

    statuses = sorted(response.status_int for response in responses)
    assert statuses == [201] + [409] * 19, statuses
    [admitted] = [r.json["data"] for r in responses if r.status_int == 201]
    for refused in (r.json for r in responses if r.status_int == 409):
        assert refused["code"] == "already_checked_in"
        assert refused["check_in_id"] == admitted["id"]
        assert refused["checked_in_at"] == admitted["checked_in_at"]
    assert stats(client, event, door)["checked_in"] == 1


def test_twenty_simultaneous_retries_of_one_scan_all_get_its_answer(pg_engine):
    app = make_app(pg_engine)
    event = create_event(pg_engine)
    client = TestApp(app)
    _, (ticket, _) = buy(client, event)
    door = bearer(create_key(pg_engine, "checkin")[1])

    responses = run_at_once(
        20, lambda n: scan(TestApp(app), event, ticket["code"], door, status="*", nonce="n-1")
    )

    assert {response.status_int for response in responses} == {201}
    assert len({response.json["data"]["id"] for response in responses}) == 1
    assert stats(client, event, door)["checked_in"] == 1


def test_a_scan_during_a_cancellation_finds_the_ticket_void_or_stops_it(pg_engine):
    app = make_app(pg_engine)
    event = create_event(pg_engine)
    client = TestApp(app)
    order, (ticket,) = buy(client, event, quantity=1)
    door = bearer(create_key(pg_engine, "checkin")[1])

    def cancel_or_scan(number):
        if number % 2:
            return TestApp(app).post(f"/api/orders/{order['id']}/cancel", status="*")
        return scan(TestApp(app), event, ticket["code"], door, status="*")

    responses = run_at_once(10, cancel_or_scan)

    outcomes = {(r.status_int, r.json.get("code")) for r in responses}
    cancelled = (200, None) in outcomes
    admitted = (201, None) in outcomes
    assert cancelled != admitted, outcomes
    listed = client.get(f"/api/orders/{order['id']}/tickets").json["data"][0]
    if cancelled:
        assert listed["status"] == "void" and listed["checked_in_at"] is None
    else:
        assert listed["status"] == "valid" and listed["checked_in_at"] is not None


def test_the_door_flow_from_the_organiser_s_key_to_the_figures(testapp, dbengine):
    """The issue's "done when": an organiser makes a checkin key for the door, a buyer
    downloads the PDF, the door scans its QR code once (201), twice (409), and the figures show
    1 of N checked in."""
    event = create_event(dbengine)
    made = testapp.post_json(
        "/api/keys",
        {"key": {"name": "Door A", "scope": "checkin", "event_ids": [str(event.id)]}},
        headers=bearer(ADMIN_KEY),
        status=201,
    ).json["data"]
    door_key = bearer(made["secret"])
    order, tickets = buy(testapp, event, quantity=3)
    pdf = testapp.get(f"/api/orders/{order['id']}/tickets.pdf").body
    scanned = decoded_qr_codes(pdf)[0][0]

    first = scan(testapp, event, scanned, door_key, nonce="door-a-1")
    second = scan(testapp, event, scanned, door_key, status=409, nonce="door-a-2")

    assert first.json["data"]["ticket_id"] == tickets[0]["id"]
    assert first.json["data"]["checked_in_by"] == {"key_id": made["id"], "name": "Door A"}
    assert second.json["code"] == "already_checked_in"
    assert second.json["checked_in_by"]["name"] == "Door A"
    figures = stats(testapp, event, door_key)
    assert (figures["checked_in"], figures["sold"]) == (1, 3)
    # The door's key may do nothing else.
    testapp.get(f"/api/events/{event.id}/attendees", headers=door_key, status=403)
    testapp.post(f"/api/orders/{order['id']}/cancel", status=409)


def test_a_scan_that_races_an_undo_answers_without_a_server_error(testapp, dbengine, door):
    # The moment an undo leaves behind, frozen: the ticket still marked checked in, its
    # check-in undone.
    event = create_event(dbengine)
    _, (ticket, _) = buy(testapp, event)
    check_in = scan(testapp, event, ticket["code"], door).json["data"]
    with dbengine.begin() as connection:
        connection.execute(
            CheckIn.__table__.update()
            .where(CheckIn.id == uuid.UUID(check_in["id"]))
            .values(undone_at=CheckIn.checked_in_at)
        )

    response = scan(testapp, event, ticket["code"], door, status=409)
    assert response.json["code"] == "already_checked_in"


def test_a_scan_and_its_undo_log_their_domain_events_once(testapp, dbengine, door):
    event = create_event(dbengine)
    _, (ticket, _) = buy(testapp, event)

    admitted = scan(testapp, event, ticket["code"], door, nonce="door-1").json["data"]
    scan(testapp, event, ticket["code"], door, nonce="door-1")  # a retried scan: a replay
    scan(testapp, event, ticket["code"], door, status=409)  # refused: nothing happened
    testapp.delete(f"/api/check-ins/{admitted['id']}", headers=door, status=204)
    testapp.delete(f"/api/check-ins/{admitted['id']}", headers=door, status=204)  # no-op

    with Session(dbengine) as session:
        logged = session.scalars(
            select(EventLogEntry)
            .where(EventLogEntry.type.like("checkin.%"))
            .order_by(EventLogEntry.created_at)
        ).all()
    assert [entry.type for entry in logged] == ["checkin.created", "checkin.deleted"]
    assert logged[0].data == admitted
    assert logged[1].data["id"] == admitted["id"] and logged[1].data["undone_at"] is not None
