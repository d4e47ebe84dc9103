"""The events API through HTTP (WebTest), on SQLite and on PostgreSQL.

Everything here goes through ``testapp``; the database is touched directly only to set up states
the API cannot reach yet (tickets sold, a completed event, a date that has passed) and to prove
the CHECK constraints stand behind the rules.
"""

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ticketing.models import Event

PROBLEM = "application/problem+json"
FUTURE = "2031-07-15T18:00:00Z"
#: a well-formed id that no event has (fixed, so that test ids are stable)
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def event_fields(**overrides):
    fields = {
        "name": "Concert",
        "venue": "Stadium",
        "date": FUTURE,
        "ticket_price": "50.00",
        "total_tickets": 100,
    }
    fields.update(overrides)
    return fields


def without(field):
    fields = event_fields()
    del fields[field]
    return fields


def create(testapp, **overrides):
    response = testapp.post_json("/api/events", {"event": event_fields(**overrides)}, status=201)
    return response.json["data"]


def parse_utc(value):
    assert value.endswith("Z"), value
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == dt.timedelta(0)
    return parsed


def assert_problem(response, status, code):
    assert response.status_int == status
    assert response.content_type == PROBLEM
    body = response.json
    assert body["status"] == status
    assert isinstance(body["status"], int)
    assert body["code"] == code
    assert body["type"]
    assert body["title"]
    return body


def assert_validation_error(response, field=None):
    body = assert_problem(response, 400, "validation_failed")
    assert isinstance(body["errors"], list) and body["errors"]
    for error in body["errors"]:
        assert error["message"]
    if field is not None:
        assert field in [error["field"] for error in body["errors"]], body["errors"]
    return body


def set_columns(engine, event_id, **values):
    """Change an event behind the API's back, in a committed transaction."""
    with engine.begin() as connection:
        result = connection.execute(
            sa.update(Event.__table__)
            .where(Event.__table__.c.id == uuid.UUID(event_id))
            .values(**values)
        )
        assert result.rowcount == 1


def past(**delta):
    return dt.datetime.now(dt.UTC) - dt.timedelta(**(delta or {"days": 1}))


# --- create ---------------------------------------------------------------------------------------


def test_create_returns_the_event_with_every_field(testapp):
    before = dt.datetime.now(dt.UTC)
    response = testapp.post_json("/api/events", {"event": event_fields()}, status=201)
    after = dt.datetime.now(dt.UTC)

    assert response.content_type == "application/json"
    data = response.json["data"]
    assert set(data) == {
        "id",
        "name",
        "venue",
        "date",
        "ticket_price",
        "currency",
        "total_tickets",
        "available_tickets",
        "ticket_types",
        "status",
        "created_at",
        "updated_at",
    }
    assert str(uuid.UUID(data["id"])) == data["id"]
    assert response.location == f"http://tickets.test/api/events/{data['id']}"
    assert data["name"] == "Concert"
    assert data["venue"] == "Stadium"
    assert data["date"] == FUTURE
    assert data["ticket_price"] == "50.00"
    assert data["currency"] == "USD"
    assert data["total_tickets"] == 100
    assert data["available_tickets"] == 100
    [general_admission] = data["ticket_types"]
    assert general_admission["name"] == "General admission"
    assert (general_admission["price"], general_admission["available"]) == ("50.00", 100)
    assert data["status"] == "draft"
    for stamp in ("created_at", "updated_at"):
        assert (
            before - dt.timedelta(seconds=1)
            <= parse_utc(data[stamp])
            <= after + dt.timedelta(seconds=1)
        )

    fetched = testapp.get(response.location, status=200)
    assert fetched.json["data"] == data


def test_create_converts_a_date_with_an_offset_to_utc(testapp):
    data = create(testapp, date="2031-07-15T18:00:00+02:00")
    assert data["date"] == "2031-07-15T16:00:00Z"
    assert testapp.get(f"/api/events/{data['id']}").json["data"]["date"] == "2031-07-15T16:00:00Z"


def test_create_trims_name_and_venue(testapp):
    data = create(testapp, name="  Concert \t", venue="\n Stadium  ")
    assert data["name"] == "Concert"
    assert data["venue"] == "Stadium"
    assert testapp.get(f"/api/events/{data['id']}").json["data"]["name"] == "Concert"


@pytest.mark.parametrize(
    ("price", "shown"),
    [
        ("50", "50.00"),
        (50, "50.00"),
        ("50.5", "50.50"),
        ("0", "0.00"),
        ("1000000.00", "1000000.00"),
    ],
)
def test_create_accepts_prices(testapp, price, shown):
    data = create(testapp, ticket_price=price)
    assert data["ticket_price"] == shown
    assert testapp.get(f"/api/events/{data['id']}").json["data"]["ticket_price"] == shown


@pytest.mark.parametrize("total", [1, 1_000_000])
def test_create_accepts_the_bounds_of_total_tickets(testapp, total):
    data = create(testapp, total_tickets=total)
    assert data["total_tickets"] == total
    assert data["available_tickets"] == total


def test_create_accepts_names_of_200_characters(testapp):
    data = create(testapp, name="n" * 200, venue="v" * 200)
    assert data["name"] == "n" * 200
    assert data["venue"] == "v" * 200


INVALID_EVENTS = [
    pytest.param(without("name"), "event.name", id="missing-name"),
    pytest.param(without("venue"), "event.venue", id="missing-venue"),
    pytest.param(without("date"), "event.date", id="missing-date"),
    pytest.param(without("ticket_price"), "event.ticket_price", id="missing-price"),
    pytest.param(without("total_tickets"), "event.total_tickets", id="missing-total"),
    pytest.param(event_fields(name=""), "event.name", id="name-empty"),
    pytest.param(event_fields(name="   "), "event.name", id="name-whitespace"),
    pytest.param(event_fields(name="n" * 201), "event.name", id="name-201-chars"),
    pytest.param(event_fields(venue=""), "event.venue", id="venue-empty"),
    pytest.param(event_fields(venue=" \t "), "event.venue", id="venue-whitespace"),
    pytest.param(event_fields(venue="v" * 201), "event.venue", id="venue-201-chars"),
    pytest.param(event_fields(name=12), "event.name", id="name-number"),
    pytest.param(event_fields(venue=None), "event.venue", id="venue-null"),
    pytest.param(event_fields(total_tickets="12"), "event.total_tickets", id="total-string"),
    pytest.param(event_fields(total_tickets=True), "event.total_tickets", id="total-true"),
    pytest.param(event_fields(total_tickets=1.5), "event.total_tickets", id="total-float"),
    pytest.param(event_fields(total_tickets=0), "event.total_tickets", id="total-zero"),
    pytest.param(event_fields(total_tickets=-1), "event.total_tickets", id="total-negative"),
    pytest.param(event_fields(total_tickets=1_000_001), "event.total_tickets", id="total-too-big"),
    pytest.param(event_fields(ticket_price="-1.00"), "event.ticket_price", id="price-negative"),
    pytest.param(event_fields(ticket_price=-1), "event.ticket_price", id="price-negative-int"),
    pytest.param(event_fields(ticket_price="NaN"), "event.ticket_price", id="price-nan"),
    pytest.param(event_fields(ticket_price="Infinity"), "event.ticket_price", id="price-infinity"),
    pytest.param(event_fields(ticket_price="12.345"), "event.ticket_price", id="price-3-decimals"),
    pytest.param(event_fields(ticket_price=12.5), "event.ticket_price", id="price-json-float"),
    pytest.param(event_fields(ticket_price="abc"), "event.ticket_price", id="price-abc"),
    pytest.param(event_fields(ticket_price=""), "event.ticket_price", id="price-empty"),
    pytest.param(event_fields(ticket_price=True), "event.ticket_price", id="price-true"),
    pytest.param(
        event_fields(ticket_price="1000000.01"), "event.ticket_price", id="price-over-maximum"
    ),
    pytest.param(event_fields(date="2031-07-15T18:00:00"), "event.date", id="date-no-offset"),
    pytest.param(event_fields(date="2020-01-01T00:00:00Z"), "event.date", id="date-in-past"),
    pytest.param(event_fields(date=1_900_000_000), "event.date", id="date-number"),
    pytest.param(event_fields(date="next tuesday"), "event.date", id="date-garbage"),
    pytest.param(event_fields(date=""), "event.date", id="date-empty"),
    pytest.param({**event_fields(), "colour": "red"}, "event.colour", id="unknown-field"),
]


@pytest.mark.parametrize(("fields", "field"), INVALID_EVENTS)
def test_create_refuses_invalid_fields(testapp, fields, field):
    response = testapp.post_json("/api/events", {"event": fields}, status=400)
    assert_validation_error(response, field)
    assert testapp.get("/api/events").json["data"] == []


def test_create_reports_every_invalid_field_at_once(testapp):
    fields = event_fields(name="", ticket_price="abc", colour="red")
    response = testapp.post_json("/api/events", {"event": fields}, status=400)
    body = assert_validation_error(response)
    assert {error["field"] for error in body["errors"]} == {
        "event.name",
        "event.ticket_price",
        "event.colour",
    }


def test_create_refuses_an_unknown_top_level_field(testapp):
    response = testapp.post_json(
        "/api/events", {"event": event_fields(), "extra": True}, status=400
    )
    assert_validation_error(response, "extra")


def test_create_refuses_a_body_without_event(testapp):
    response = testapp.post_json("/api/events", {}, status=400)
    assert_validation_error(response, "event")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([event_fields()], id="array"),
        pytest.param("an event", id="string"),
        pytest.param(None, id="null"),
        pytest.param(42, id="number"),
        pytest.param({"event": [event_fields()]}, id="event-array"),
        pytest.param({"event": "Concert"}, id="event-string"),
    ],
)
def test_create_refuses_bodies_that_are_not_an_object(testapp, body):
    response = testapp.post_json("/api/events", body, status=400)
    assert_validation_error(response)
    assert testapp.get("/api/events").json["data"] == []


@pytest.mark.parametrize("raw", ["{", '{"event": ', "{'event': {}}", "not json"])
def test_create_refuses_malformed_json(testapp, raw):
    response = testapp.post("/api/events", raw, content_type="application/json", status=400)
    assert_problem(response, 400, "malformed_json")


def test_create_refuses_a_form_encoded_body(testapp):
    response = testapp.post("/api/events", {"name": "Concert"}, status=415)
    assert_problem(response, 415, "unsupported_media_type")


# --- get ------------------------------------------------------------------------------------------


def test_get_returns_the_event(testapp):
    created = create(testapp)
    response = testapp.get(f"/api/events/{created['id']}", status=200)
    assert response.content_type == "application/json"
    assert response.json == {"data": created}


def test_get_of_an_unknown_event_is_404(testapp):
    response = testapp.get(f"/api/events/{uuid.uuid4()}", status=404)
    assert_problem(response, 404, "event_not_found")


@pytest.mark.parametrize("event_id", ["abc", "1", "not-a-uuid-at-all"])
def test_get_with_a_malformed_id_is_404(testapp, event_id):
    response = testapp.get(f"/api/events/{event_id}", status=404)
    assert_problem(response, 404, "event_not_found")


# --- list -----------------------------------------------------------------------------------------


def test_list_is_empty_without_events(testapp):
    response = testapp.get("/api/events", status=200)
    assert response.json == {"data": [], "meta": {"next_cursor": None}}


def test_list_returns_events_with_their_fields(testapp):
    created = create(testapp)
    response = testapp.get("/api/events", status=200)
    assert response.json == {"data": [created], "meta": {"next_cursor": None}}


def test_pagination_walks_every_event_once_in_creation_order(testapp):
    created = [create(testapp, name=f"Event {n}")["id"] for n in range(5)]

    seen, pages, cursor = [], [], None
    while True:
        params = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        body = testapp.get("/api/events", params=params, status=200).json
        pages.append(len(body["data"]))
        seen.extend(item["id"] for item in body["data"])
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert len(pages) < 10, "pagination does not end"

    assert pages == [2, 2, 1]
    assert seen == created
    # The default page holds all five in the same order.
    assert [item["id"] for item in testapp.get("/api/events").json["data"]] == created


def test_a_full_last_page_has_no_next_cursor(testapp):
    created = [create(testapp, name=f"Event {n}")["id"] for n in range(4)]
    first = testapp.get("/api/events", params={"limit": 2}).json
    second = testapp.get(
        "/api/events", params={"limit": 2, "cursor": first["meta"]["next_cursor"]}
    ).json
    assert [item["id"] for item in first["data"] + second["data"]] == created
    assert first["meta"]["next_cursor"] is not None
    assert second["meta"]["next_cursor"] is None


def test_limit_100_is_allowed(testapp):
    create(testapp)
    assert len(testapp.get("/api/events", params={"limit": 100}, status=200).json["data"]) == 1


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5"])
def test_list_refuses_invalid_limits(testapp, limit):
    response = testapp.get("/api/events", params={"limit": limit}, status=400)
    assert_validation_error(response, "limit")


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "eyJhIjogMX0", "W10", "WyJ4IiwgInkiXQ"])
def test_list_refuses_a_cursor_it_did_not_hand_out(testapp, cursor):
    create(testapp)
    response = testapp.get("/api/events", params={"cursor": cursor}, status=400)
    assert_problem(response, 400, "invalid_cursor")


def test_list_filters_by_status(testapp):
    draft = create(testapp, name="Draft")
    published = create(testapp, name="Published")
    testapp.post(f"/api/events/{published['id']}/publish", status=200)

    drafts = testapp.get("/api/events", params={"status": "draft"}, status=200).json["data"]
    assert [item["id"] for item in drafts] == [draft["id"]]
    on_sale = testapp.get("/api/events", params={"status": "published"}, status=200).json["data"]
    assert [item["id"] for item in on_sale] == [published["id"]]
    assert on_sale[0]["status"] == "published"
    completed = testapp.get("/api/events", params={"status": "completed"}, status=200).json
    assert completed["data"] == []


def test_list_paginates_within_a_status_filter(testapp):
    drafts = []
    for n in range(5):
        event = create(testapp, name=f"Event {n}")
        if n % 2:
            testapp.post(f"/api/events/{event['id']}/publish", status=200)
        else:
            drafts.append(event["id"])
    first = testapp.get("/api/events", params={"status": "draft", "limit": 2}).json
    second = testapp.get(
        "/api/events",
        params={"status": "draft", "limit": 2, "cursor": first["meta"]["next_cursor"]},
    ).json
    assert [item["id"] for item in first["data"] + second["data"]] == drafts
    assert second["meta"]["next_cursor"] is None


@pytest.mark.parametrize("status", ["cancelled", "DRAFT", "draft,published"])
def test_list_refuses_an_unknown_status(testapp, status):
    response = testapp.get("/api/events", params={"status": status}, status=400)
    assert_validation_error(response, "status")


def test_list_filters_by_updated_since_honouring_the_offset(testapp, dbengine):
    old = create(testapp, name="Old")
    recent = create(testapp, name="Recent")
    set_columns(dbengine, old["id"], updated_at=dt.datetime(2020, 1, 1, 12, 0, tzinfo=dt.UTC))
    set_columns(dbengine, recent["id"], updated_at=dt.datetime(2020, 1, 1, 14, 0, tzinfo=dt.UTC))

    def ids(since):
        response = testapp.get("/api/events", params={"updated_since": since}, status=200)
        return [item["id"] for item in response.json["data"]]

    # 15:00+02:00 is 13:00 UTC: between the two.
    assert ids("2020-01-01T15:00:00+02:00") == [recent["id"]]
    assert ids("2020-01-01T13:00:00Z") == [recent["id"]]
    # The bound is inclusive.
    assert ids("2020-01-01T12:00:00Z") == [old["id"], recent["id"]]
    assert ids("2020-01-01T09:00:00-05:00") == [recent["id"]]
    assert ids("2020-01-01T09:00:01-05:00") == []
    assert ids("2019-12-31T00:00:00Z") == [old["id"], recent["id"]]


def test_an_empty_updated_since_means_no_filter(testapp):
    created = create(testapp)
    response = testapp.get("/api/events?updated_since=", status=200)
    assert [item["id"] for item in response.json["data"]] == [created["id"]]


@pytest.mark.parametrize("since", ["2020-01-01T12:00:00", "yesterday", "2020-13-01T00:00:00Z"])
def test_list_refuses_updated_since_without_offset_or_garbage(testapp, since):
    response = testapp.get("/api/events", params={"updated_since": since}, status=400)
    assert_validation_error(response, "updated_since")


# --- update ---------------------------------------------------------------------------------------


def put(testapp, event_id, changes, status=200):
    return testapp.put_json(f"/api/events/{event_id}", {"event": changes}, status=status)


def test_update_changes_only_the_fields_given(testapp):
    created = create(testapp)
    data = put(testapp, created["id"], {"name": "  Opera "}).json["data"]
    assert data["name"] == "Opera"
    unchanged = {key: value for key, value in created.items() if key not in ("name", "updated_at")}
    assert {key: data[key] for key in unchanged} == unchanged
    assert parse_utc(data["updated_at"]) >= parse_utc(created["updated_at"])
    assert testapp.get(f"/api/events/{created['id']}").json["data"] == data


def test_update_changes_venue_date_and_price(testapp):
    created = create(testapp)
    data = put(
        testapp,
        created["id"],
        {"venue": "Arena", "date": "2032-01-01T20:00:00-03:00", "ticket_price": "75.5"},
    ).json["data"]
    assert data["venue"] == "Arena"
    assert data["date"] == "2032-01-01T23:00:00Z"
    assert data["ticket_price"] == "75.50"
    assert testapp.get(f"/api/events/{created['id']}").json["data"]["ticket_price"] == "75.50"


def test_raising_total_tickets_raises_available_by_as_much(testapp, dbengine):
    created = create(testapp, total_tickets=100)
    set_columns(dbengine, created["id"], available_tickets=70)  # 30 sold
    data = put(testapp, created["id"], {"total_tickets": 150}).json["data"]
    assert data["total_tickets"] == 150
    assert data["available_tickets"] == 120


def test_lowering_total_below_tickets_sold_is_refused(testapp, dbengine):
    created = create(testapp, total_tickets=100)
    set_columns(dbengine, created["id"], available_tickets=40)  # 60 sold
    response = put(testapp, created["id"], {"total_tickets": 59, "name": "Renamed"}, status=409)
    assert_problem(response, 409, "total_below_sold")
    data = testapp.get(f"/api/events/{created['id']}").json["data"]
    assert (data["name"], data["total_tickets"], data["available_tickets"]) == ("Concert", 100, 40)


@pytest.mark.parametrize(("total", "available"), [(60, 0), (80, 20), (99, 39)])
def test_lowering_total_down_to_tickets_sold_adjusts_available(testapp, dbengine, total, available):
    created = create(testapp, total_tickets=100)
    set_columns(dbengine, created["id"], available_tickets=40)  # 60 sold
    data = put(testapp, created["id"], {"total_tickets": total}).json["data"]
    assert (data["total_tickets"], data["available_tickets"]) == (total, available)
    fetched = testapp.get(f"/api/events/{created['id']}").json["data"]
    assert (fetched["total_tickets"], fetched["available_tickets"]) == (total, available)


def test_update_with_no_fields_is_refused(testapp):
    created = create(testapp)
    response = put(testapp, created["id"], {}, status=400)
    assert_validation_error(response, "event")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"name": ""}, "event.name", id="name-empty"),
        pytest.param({"name": "", "venue": "Arena"}, "event.name", id="name-empty-with-venue"),
        pytest.param({"venue": "   "}, "event.venue", id="venue-whitespace"),
        pytest.param({"name": None}, "event.name", id="name-null"),
        pytest.param({"date": ""}, "event.date", id="date-empty"),
        pytest.param({"date": "", "venue": "Arena"}, "event.date", id="date-empty-with-venue"),
        pytest.param({"ticket_price": "-5"}, "event.ticket_price", id="price-negative"),
        pytest.param({"ticket_price": 1.5}, "event.ticket_price", id="price-float"),
        pytest.param({"total_tickets": 0}, "event.total_tickets", id="total-zero"),
        pytest.param({"total_tickets": "10"}, "event.total_tickets", id="total-string"),
        pytest.param({"status": "published"}, "event.status", id="status-not-writable"),
        pytest.param({"available_tickets": 5}, "event.available_tickets", id="available"),
        pytest.param({"date": "2031-01-01T00:00:00"}, "event.date", id="date-no-offset"),
    ],
)
def test_update_refuses_invalid_changes(testapp, changes, field):
    created = create(testapp)
    response = put(testapp, created["id"], changes, status=400)
    assert_validation_error(response, field)
    assert testapp.get(f"/api/events/{created['id']}").json["data"] == created


def test_update_refuses_a_date_in_the_past(testapp):
    created = create(testapp)
    response = put(testapp, created["id"], {"date": "2020-01-01T00:00:00Z"}, status=400)
    assert_validation_error(response, "event.date")
    assert testapp.get(f"/api/events/{created['id']}").json["data"]["date"] == FUTURE


def test_update_refuses_a_body_without_event(testapp):
    created = create(testapp)
    response = testapp.put_json(f"/api/events/{created['id']}", {"name": "x"}, status=400)
    assert_validation_error(response)


def test_a_completed_event_is_read_only(testapp, dbengine):
    created = create(testapp)
    set_columns(dbengine, created["id"], status="completed")
    response = put(testapp, created["id"], {"name": "Renamed"}, status=409)
    assert_problem(response, 409, "event_read_only")
    data = testapp.get(f"/api/events/{created['id']}").json["data"]
    assert (data["name"], data["status"]) == ("Concert", "completed")


def test_update_of_an_unknown_event_is_404(testapp):
    response = put(testapp, uuid.uuid4(), {"name": "Renamed"}, status=404)
    assert_problem(response, 404, "event_not_found")


def test_update_with_a_malformed_id_is_404(testapp):
    response = put(testapp, "abc", {"name": "Renamed"}, status=404)
    assert_problem(response, 404, "event_not_found")


def test_a_published_event_can_still_be_updated(testapp):
    created = create(testapp)
    testapp.post(f"/api/events/{created['id']}/publish", status=200)
    data = put(testapp, created["id"], {"ticket_price": "60"}).json["data"]
    assert (data["ticket_price"], data["status"]) == ("60.00", "published")


# --- delete ---------------------------------------------------------------------------------------


def test_delete_removes_the_event(testapp):
    created = create(testapp)
    other = create(testapp, name="Other")
    response = testapp.delete(f"/api/events/{created['id']}", status=204)
    assert response.body == b""
    assert "Content-Type" not in response.headers
    assert_problem(testapp.get(f"/api/events/{created['id']}", status=404), 404, "event_not_found")
    assert [item["id"] for item in testapp.get("/api/events").json["data"]] == [other["id"]]


def test_delete_of_an_unknown_event_is_404(testapp):
    response = testapp.delete(f"/api/events/{uuid.uuid4()}", status=404)
    assert_problem(response, 404, "event_not_found")


def test_deleting_twice_is_404_the_second_time(testapp):
    created = create(testapp)
    testapp.delete(f"/api/events/{created['id']}", status=204)
    assert_problem(
        testapp.delete(f"/api/events/{created['id']}", status=404), 404, "event_not_found"
    )


# --- publish --------------------------------------------------------------------------------------


def test_publish_puts_a_draft_on_sale(testapp):
    created = create(testapp)
    response = testapp.post(f"/api/events/{created['id']}/publish", status=200)
    data = response.json["data"]
    assert data["status"] == "published"
    assert {k: v for k, v in data.items() if k not in ("status", "updated_at")} == {
        k: v for k, v in created.items() if k not in ("status", "updated_at")
    }
    assert testapp.get(f"/api/events/{created['id']}").json["data"]["status"] == "published"


def test_publishing_twice_is_a_conflict(testapp):
    created = create(testapp)
    testapp.post(f"/api/events/{created['id']}/publish", status=200)
    response = testapp.post(f"/api/events/{created['id']}/publish", status=409)
    assert_problem(response, 409, "event_not_draft")


def test_a_completed_event_cannot_be_published(testapp, dbengine):
    created = create(testapp)
    set_columns(dbengine, created["id"], status="completed")
    response = testapp.post(f"/api/events/{created['id']}/publish", status=409)
    assert_problem(response, 409, "event_not_draft")


def test_an_event_whose_date_has_passed_cannot_be_published(testapp, dbengine):
    created = create(testapp)
    set_columns(dbengine, created["id"], date=past(hours=1))
    response = testapp.post(f"/api/events/{created['id']}/publish", status=409)
    assert_problem(response, 409, "event_date_passed")
    assert testapp.get(f"/api/events/{created['id']}").json["data"]["status"] == "draft"


def test_publish_of_an_unknown_event_is_404(testapp):
    response = testapp.post(f"/api/events/{uuid.uuid4()}/publish", status=404)
    assert_problem(response, 404, "event_not_found")


def test_publish_with_a_malformed_id_is_404(testapp):
    response = testapp.post("/api/events/1/publish", status=404)
    assert_problem(response, 404, "event_not_found")


# --- error shape ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nowhere", "/api", "/api/event", "/api/events/x/y/z"])
def test_an_unknown_route_is_a_404_problem(testapp, path):
    response = testapp.get(path, status=404)
    assert_problem(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/api/events", {"GET", "POST"}),
        ("DELETE", "/api/events", {"GET", "POST"}),
        ("PATCH", f"/api/events/{UNKNOWN_ID}", {"GET", "PUT", "DELETE"}),
        ("GET", f"/api/events/{UNKNOWN_ID}/publish", {"POST"}),
    ],
)
def test_a_wrong_method_is_a_405_problem_with_allow(testapp, method, path, allowed):
    response = testapp.request(path, method=method, status=405)
    assert_problem(response, 405, "method_not_allowed")
    allow = {value.strip() for value in response.headers["Allow"].split(",")}
    assert allowed <= allow
    assert method not in allow


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        ({"url": "/nowhere", "method": "GET"}, 404),
        ({"url": "/api/events", "method": "PATCH"}, 405),
        ({"url": "/api/events?limit=0", "method": "GET"}, 400),
        ({"url": "/api/events?cursor=x", "method": "GET"}, 400),
        ({"url": f"/api/events/{UNKNOWN_ID}", "method": "GET"}, 404),
        (
            {
                "url": "/api/events",
                "method": "POST",
                "body": b"{",
                "content_type": "application/json",
            },
            400,
        ),
        (
            {
                "url": "/api/events",
                "method": "POST",
                "body": b"a=b",
                "content_type": "application/x-www-form-urlencoded",
            },
            415,
        ),
    ],
)
def test_every_error_is_a_problem_document(testapp, request_kwargs, status):
    request_kwargs = dict(request_kwargs)
    url = request_kwargs.pop("url")
    response = testapp.request(url, status=status, **request_kwargs)
    assert response.content_type == PROBLEM
    body = response.json
    assert {"type", "title", "status", "code"} <= set(body)
    assert body["status"] == response.status_int == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["code"], str) and body["code"]


# --- database constraints -------------------------------------------------------------------------


def valid_row(**overrides):
    now = dt.datetime.now(dt.UTC)
    row = {
        "id": uuid.uuid4(),
        "name": "Concert",
        "venue": "Stadium",
        "date": now + dt.timedelta(days=30),
        "currency": "USD",
        "total_tickets": 100,
        "available_tickets": 100,
        "status": "draft",
        "created_at": now,
        "updated_at": now,
    }
    row.update(overrides)
    return row


def count_events(engine):
    with engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(Event.__table__))


def test_a_valid_row_is_accepted(dbengine):
    with dbengine.begin() as connection:
        connection.execute(sa.insert(Event.__table__).values(**valid_row()))
    assert count_events(dbengine) == 1


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"available_tickets": -1}, id="available-negative"),
        pytest.param({"available_tickets": 101}, id="available-above-total"),
    ],
)
def test_check_constraints_refuse_bad_inserts(dbengine, overrides):
    with pytest.raises(IntegrityError):
        with dbengine.begin() as connection:
            connection.execute(sa.insert(Event.__table__).values(**valid_row(**overrides)))
    assert count_events(dbengine) == 0


def test_check_constraints_refuse_a_bad_insert_through_the_orm(dbengine):
    factory = sa.orm.sessionmaker(bind=dbengine)
    with factory() as session:
        session.add(Event(**valid_row(available_tickets=150)))
        with pytest.raises(IntegrityError):
            session.commit()
    assert count_events(dbengine) == 0


@pytest.mark.parametrize(
    "assignment",
    [
        pytest.param("available_tickets = -1", id="available-negative"),
        pytest.param("available_tickets = total_tickets + 1", id="available-above-total"),
        pytest.param("total_tickets = available_tickets - 1", id="total-below-available"),
        pytest.param("status = 'cancelled'", id="status-unknown"),
        pytest.param("status = 'DRAFT'", id="status-wrong-case"),
    ],
)
def test_check_constraints_refuse_bad_updates_in_raw_sql(dbengine, assignment):
    with dbengine.begin() as connection:
        connection.execute(sa.insert(Event.__table__).values(**valid_row(available_tickets=50)))
    with pytest.raises(IntegrityError):
        with dbengine.begin() as connection:
            connection.execute(sa.text(f"UPDATE events SET {assignment}"))
    with dbengine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT available_tickets, total_tickets, status FROM events")
        ).one()
    assert tuple(row) == (50, 100, "draft")


@pytest.mark.parametrize("status", ["draft", "published", "completed"])
def test_every_known_status_is_accepted_in_raw_sql(dbengine, status):
    with dbengine.begin() as connection:
        connection.execute(sa.insert(Event.__table__).values(**valid_row()))
        connection.execute(sa.text(f"UPDATE events SET status = '{status}'"))
    with dbengine.connect() as connection:
        assert connection.scalar(sa.text("SELECT status FROM events")) == status
