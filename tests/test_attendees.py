"""An event's attendee list: JSON pages, the CSV download parsed back, and 100,000 tickets
exported in batches without ever holding them all."""

import csv
import io
import tracemalloc
import uuid

import sqlalchemy

from ticketing import main
from ticketing.domain.attendees import EXPORT_BATCH_SIZE

from .conftest import app_settings
from .factories import create_event, create_order
from .test_purchase_statements import recorded_statements
from .test_tickets import buy

NAME_LIKE_A_FORMULA = '=HYPERLINK("http://evil.example", "Zoë, the "best"")'


def parse_csv(body):
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def test_pages_list_every_ticket_once(testapp, dbengine):
    event = create_event(dbengine)
    orders = [buy(testapp, event, quantity=2).json["data"] for _ in range(3)]
    tickets = {
        t["id"]: t
        for order in orders
        for t in testapp.get(f"/api/orders/{order['id']}/tickets").json["data"]
    }

    seen, cursor = [], None
    while True:
        query = {"limit": 4} if cursor is None else {"limit": 4, "cursor": cursor}
        page = testapp.get(f"/api/events/{event.id}/attendees", query).json
        seen += page["data"]
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == 6 and {row["ticket_id"] for row in seen} == set(tickets)
    for row in seen:
        ticket = tickets[row["ticket_id"]]
        assert (row["order_id"], row["ticket_type"], row["attendee_email"], row["status"]) == (
            ticket["order_id"],
            "General admission",
            "ann@example.com",
            "valid",
        )
        assert "code" not in row


def test_the_csv_download_parses_back_to_the_tickets(testapp, dbengine):
    event = create_event(dbengine)
    order = buy(testapp, event, quantity=2).json["data"]
    cancelled = buy(testapp, event, quantity=1).json["data"]
    testapp.post(f"/api/orders/{cancelled['id']}/cancel")
    first, second = testapp.get(f"/api/orders/{order['id']}/tickets").json["data"]
    testapp.put_json(
        f"/api/tickets/{second['id']}",
        {
            "ticket": {
                "order_id": order["id"],
                "attendee_name": NAME_LIKE_A_FORMULA,
                "attendee_email": "zoe@example.com",
            }
        },
    )
    testapp.post_json(f"/api/events/{event.id}/check-ins", {"code": first["code"]})

    response = testapp.get(f"/api/events/{event.id}/attendees", {"format": "csv"})

    assert response.content_type == "text/csv" and response.charset == "utf-8"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="attendees-{str(event.id)[:8]}.csv"'
    )
    assert response.body.startswith(b"\xef\xbb\xbforder_id,ticket_id,ticket_type,")
    rows = {row["ticket_id"]: row for row in parse_csv(response.body)}
    assert len(rows) == 3
    assert rows[first["id"]]["checked_in_at"].endswith("Z")
    assert rows[first["id"]]["attendee_name"] == "Ann"
    # A name a spreadsheet would run as a formula is shown as text.
    assert rows[second["id"]]["attendee_name"] == "'" + NAME_LIKE_A_FORMULA
    assert rows[second["id"]]["checked_in_at"] == ""
    assert sorted(row["status"] for row in rows.values()) == ["valid", "valid", "void"]
    valid_only = testapp.get(f"/api/events/{event.id}/attendees?format=csv&status=valid")
    assert {row["ticket_id"] for row in parse_csv(valid_only.body)} == {first["id"], second["id"]}


def test_an_unknown_event_has_no_attendees(testapp):
    for query in ("", "?format=csv"):
        response = testapp.get(f"/api/events/{uuid.uuid4()}/attendees{query}", status=404)
        assert response.json["code"] == "event_not_found"
    bad = testapp.get(f"/api/events/{uuid.uuid4()}/attendees?format=xlsx", status=400)
    assert bad.json["code"] == "validation_failed"


ONE_HUNDRED_THOUSAND = 100_000


def test_one_hundred_thousand_tickets_export_in_batches_with_bounded_memory(pg_engine):
    event = create_event(pg_engine, total_tickets=ONE_HUNDRED_THOUSAND)
    order = create_order(pg_engine, event, quantity=1)
    with pg_engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                """INSERT INTO tickets (id, order_id, ticket_type_id, event_id, attendee_name,
                                        attendee_email, status, code_hash, created_at,
                                        updated_at)
                SELECT gen_random_uuid(), :order_id, :type_id, :event_id, 'Attendee ' || n,
                       'a' || n || '@example.com', 'valid', md5(n::text) || md5('x' || n),
                       now(), now()
                FROM generate_series(2, :count) AS n"""
            ),
            {
                "order_id": order.id,
                "type_id": event.ticket_types[0].id,
                "event_id": event.id,
                "count": ONE_HUNDRED_THOUSAND,
            },
        )
        # As autovacuum would after a bulk load: the planner then walks the event's index.
        connection.execute(sqlalchemy.text("ANALYZE tickets"))
    app = main({}, **app_settings(pg_engine))
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/api/events/{event.id}/attendees",
        "QUERY_STRING": "format=csv",
        "SERVER_NAME": "tickets.test",
        "SERVER_PORT": "80",
        "HTTP_HOST": "tickets.test",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
    }
    started = []
    lines = chunks = largest_chunk = 0
    previous = b""

    with recorded_statements(pg_engine) as statements:
        tracemalloc.start()
        try:
            body = app(environ, lambda status, headers: started.append(status))
            for chunk in body:
                chunks += 1
                largest_chunk = max(largest_chunk, len(chunk))
                lines += chunk.count(b"\n")
                rows = chunk.splitlines()[2 if chunks == 1 else 0 :]
                # Keyset order: each batch starts after the one before ended, so none repeats.
                first, last = (row.split(b",", 2)[1] for row in (rows[0], rows[-1]))
                assert previous < first <= last
                previous = last
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert started == ["200 OK"]
    assert lines == ONE_HUNDRED_THOUSAND + 1  # and the header
    batches = -(-ONE_HUNDRED_THOUSAND // EXPORT_BATCH_SIZE)
    assert chunks == batches
    # The event's look-up, then one SELECT per batch (and none for the last, short one).
    assert statements.count("SELECT") <= batches + 3
    # The whole CSV is some 12 MB; the server never held more than a batch and its rows.
    assert largest_chunk < 200_000
    assert peak < 4_000_000, f"peak {peak} bytes"
