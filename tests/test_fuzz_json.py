"""Arbitrary JSON thrown at the write endpoints never produces a 5xx."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketing.domain.ticket_types import FIELDS as TICKET_TYPE_FIELDS

from .factories import create_event

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=15), children, max_size=5)
    ),
    max_leaves=12,
)
field_values = st.one_of(
    json_values,
    st.sampled_from(
        ["", " ", "50.00", "NaN", "1e999", "2030-01-01T00:00:00Z", "a@b.co", "x" * 300]
    ),
)
event_bodies = st.fixed_dictionaries(
    {},
    optional={
        "event": st.dictionaries(
            st.sampled_from(
                ["name", "venue", "date", "ticket_price", "currency", "total_tickets", "x"]
            ),
            field_values,
        )
        | json_values
    },
)
type_ids = st.sampled_from(["00000000-0000-4000-8000-000000000000", "not-a-uuid", ""]) | st.uuids(
    version=4
).map(str)
item_lists = st.lists(
    st.fixed_dictionaries(
        {}, optional={"ticket_type_id": type_ids | json_values, "quantity": field_values}
    ),
    max_size=4,
)
order_bodies = st.fixed_dictionaries(
    {},
    optional={
        "order": st.dictionaries(
            st.sampled_from(
                [
                    "customer_email",
                    "customer_name",
                    "quantity",
                    "ticket_type_id",
                    "items",
                    "idempotency_key",
                    "payment_method",
                ]
            ),
            field_values | item_lists | type_ids,
        )
        | json_values
    },
)
ticket_type_bodies = st.fixed_dictionaries(
    {},
    optional={
        "ticket_type": st.dictionaries(
            st.sampled_from([*TICKET_TYPE_FIELDS, "x"]),
            field_values,
        )
        | json_values
    },
)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(body=st.one_of(event_bodies, json_values))
def test_event_endpoints_never_answer_5xx(testapp, dbengine, body):
    event = create_event(dbengine)
    raw = json.dumps(body)
    for method, path in (("POST", "/api/events"), ("PUT", f"/api/events/{event.id}")):
        response = testapp.request(
            path, method=method, body=raw.encode(), content_type="application/json", status="*"
        )
        assert response.status_int < 500, response.text


@FUZZ
@given(body=st.one_of(order_bodies, json_values))
def test_purchase_never_answers_5xx(testapp, dbengine, body):
    event = create_event(dbengine)
    response = testapp.post(
        f"/api/events/{event.id}/purchase",
        json.dumps(body).encode(),
        content_type="application/json",
        status="*",
    )
    assert response.status_int < 500, response.text


@FUZZ
@given(body=st.one_of(ticket_type_bodies, json_values))
def test_ticket_type_endpoints_never_answer_5xx(testapp, dbengine, body):
    event = create_event(dbengine)
    raw = json.dumps(body)
    collection = f"/api/events/{event.id}/ticket-types"
    for method, path in (
        ("POST", collection),
        ("PUT", f"{collection}/{event.ticket_types[0].id}"),
    ):
        response = testapp.request(
            path, method=method, body=raw.encode(), content_type="application/json", status="*"
        )
        assert response.status_int < 500, response.text
