"""The OpenAPI document at /api/openapi.json: a valid OpenAPI 3 document that describes every
route and method Cornice serves, with the strict request types, the response shapes, the
problem responses, security and headers. (tests/test_openapi_conformance.py checks the app's
behaviour against it; tests/test_docs_page.py renders it in a browser.)"""

import json

import pytest
from cornice.service import get_services
from openapi_spec_validator import validate
from webtest import TestApp

from ticketing import main
from ticketing.domain import errors
from ticketing.openapi import PATH_PARAMETER
from ticketing.views.docs import DOCUMENT_KEY
from ticketing.views.problems import status_of_domain_error
from ticketing.views.schemas import MONEY_PATTERN

from .conftest import app_settings
from .factories import create_event


@pytest.fixture(scope="module")
def docs_app(sqlite_engine):
    return main({}, **app_settings(sqlite_engine))


@pytest.fixture(scope="module")
def document(docs_app):
    return TestApp(docs_app).get("/api/openapi.json").json


def operation(document, method, path):
    return document["paths"][path][method.lower()]


def resolve(document, schema):
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def request_schema(document, method, path):
    body = operation(document, method, path)["requestBody"]["content"]["application/json"]
    return body["schema"]


def test_the_document_is_valid_openapi_3(document):
    assert document["openapi"].startswith("3.0.")
    validate(document)


def test_every_cornice_route_and_method_is_in_the_document(docs_app, document):
    registered = list(docs_app.registry.cornice_services.values())
    served = [service for service in get_services() if service in registered]
    assert served, "the app registers Cornice services"
    # Every service in the app's modules is served, and every method of each is documented.
    defined_here = [
        s for s in get_services() if s.definitions and _module(s).startswith("ticketing")
    ]
    assert {s.path for s in defined_here} == {s.path for s in served}
    for service in served:
        path = PATH_PARAMETER.sub(r"{\1}", service.path)  # /api/webhooks/{id:[0-9a-f-]+}
        assert path in document["paths"], service.path
        documented = {method.upper() for method in document["paths"][path]}
        # A buyer service's OPTIONS is Cornice's CORS preflight, which browsers send on their
        # own: not an operation of the API (tests/test_cors.py tests it).
        preflight = {"OPTIONS"} if service.cors_enabled else set()
        assert documented == set(service.defined_methods) - preflight, service.path


def _module(service):
    return service.definitions[0][1].__module__


def test_the_document_lists_the_api_and_nothing_else(document):
    assert sorted(
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method != "head"
    ) == [
        ("/api/check-ins/{id}", "DELETE"),
        ("/api/events", "GET"),
        ("/api/events", "POST"),
        ("/api/events/{id}", "DELETE"),
        ("/api/events/{id}", "GET"),
        ("/api/events/{id}", "PUT"),
        ("/api/events/{id}/attendees", "GET"),
        ("/api/events/{id}/availability", "GET"),
        ("/api/events/{id}/check-ins", "POST"),
        ("/api/events/{id}/check-ins/stats", "GET"),
        ("/api/events/{id}/orders", "POST"),
        ("/api/events/{id}/promo-codes", "GET"),
        ("/api/events/{id}/promo-codes", "POST"),
        ("/api/events/{id}/promo-codes/{code_id}", "DELETE"),
        ("/api/events/{id}/promo-codes/{code_id}", "GET"),
        ("/api/events/{id}/promo-codes/{code_id}", "PUT"),
        ("/api/events/{id}/publish", "POST"),
        ("/api/events/{id}/purchase", "POST"),
        ("/api/events/{id}/ticket-types", "GET"),
        ("/api/events/{id}/ticket-types", "POST"),
        ("/api/events/{id}/ticket-types/{ticket_type_id}", "DELETE"),
        ("/api/events/{id}/ticket-types/{ticket_type_id}", "GET"),
        ("/api/events/{id}/ticket-types/{ticket_type_id}", "PUT"),
        ("/api/events/{id}/waiting-list", "GET"),
        ("/api/events/{id}/waiting-list", "POST"),
        ("/api/health", "GET"),
        ("/api/keys", "GET"),
        ("/api/keys", "POST"),
        ("/api/keys/{id}", "DELETE"),
        ("/api/orders", "GET"),
        ("/api/orders/{id}", "GET"),
        ("/api/orders/{id}/cancel", "POST"),
        ("/api/orders/{id}/pay", "POST"),
        ("/api/orders/{id}/release", "POST"),
        ("/api/orders/{id}/tickets", "GET"),
        ("/api/orders/{id}/tickets.pdf", "GET"),
        ("/api/tickets/{id}", "PUT"),
        ("/api/waiting-list/{id}", "DELETE"),
        ("/api/waiting-list/{id}", "GET"),
        ("/api/webhooks", "GET"),
        ("/api/webhooks", "POST"),
        ("/api/webhooks/stripe", "POST"),
        ("/api/webhooks/{id}", "DELETE"),
        ("/api/webhooks/{id}", "GET"),
        ("/api/webhooks/{id}", "PUT"),
        ("/api/webhooks/{id}/deliveries", "GET"),
        ("/api/webhooks/{id}/deliveries/{delivery_id}/retry", "POST"),
        ("/api/webhooks/{id}/rotate-secret", "POST"),
    ]


def test_operation_ids_are_unique(document):
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_the_create_event_body_carries_the_strict_types(document):
    body = request_schema(document, "POST", "/api/events")
    assert body["additionalProperties"] is False and body["required"] == ["event"]
    event = body["properties"]["event"]
    assert event["additionalProperties"] is False
    assert set(event["required"]) == {"name", "venue", "date", "ticket_price", "total_tickets"}
    fields = event["properties"]
    assert fields["name"] == {"type": "string", "minLength": 1, "maxLength": 200}
    assert fields["date"]["type"] == "string" and fields["date"]["format"] == "date-time"
    total_tickets = dict(fields["total_tickets"])
    assert "shared by all its ticket types" in total_tickets.pop("description")
    assert total_tickets == {"type": "integer", "minimum": 1, "maximum": 1_000_000}
    assert fields["currency"]["default"] == "USD" and fields["currency"]["enum"] == ["USD"]
    price_as_string, price_as_integer = fields["ticket_price"]["oneOf"]
    assert price_as_string["type"] == "string"
    assert price_as_string["pattern"] == MONEY_PATTERN
    assert price_as_integer == {"type": "integer", "minimum": 0, "maximum": 1_000_000}
    # The seed's example body.
    example = operation(document, "POST", "/api/events")["requestBody"]["content"][
        "application/json"
    ]["example"]
    assert example["event"]["ticket_price"] == "50.00"


def test_an_update_names_at_least_one_field(document):
    changes = request_schema(document, "PUT", "/api/events/{id}")["properties"]["event"]
    assert changes["minProperties"] == 1
    assert "required" not in changes


def test_the_purchase_body_and_idempotency_header(document):
    purchase = operation(document, "POST", "/api/events/{id}/purchase")
    order = request_schema(document, "POST", "/api/events/{id}/purchase")["properties"]["order"]
    assert set(order["required"]) == {"customer_email", "customer_name"}
    # quantity (of one type) or items (of several): one of the two.
    assert order["anyOf"] == [{"required": ["quantity"]}, {"required": ["items"]}]
    item = order["properties"]["items"]
    assert item["type"] == "array" and item["minItems"] == 1
    assert set(item["items"]["required"]) == {"ticket_type_id", "quantity"}
    assert order["properties"]["customer_email"]["format"] == "email"
    assert order["properties"]["customer_email"]["maxLength"] == 254
    # The deferred range reads ticketing.max_tickets_per_order.
    quantity = dict(order["properties"]["quantity"])
    assert quantity.pop("description")
    assert quantity == {"type": "integer", "minimum": 1, "maximum": 10}
    [path_id, header] = purchase["parameters"]
    assert path_id == {**path_id, "name": "id", "in": "path", "required": True}
    assert header["name"] == "Idempotency-Key" and header["in"] == "header"
    assert header["schema"]["maxLength"] == 255
    assert purchase["security"] == []
    assert set(purchase["responses"]) == {
        "200", "201", "202", "400", "402", "404", "409", "413", "415", "422", "429", "500", "503",
    }  # fmt: skip
    assert purchase["responses"]["200"]["headers"]["Idempotent-Replayed"]["required"] is True


def test_the_maximum_quantity_follows_the_setting(sqlite_engine):
    settings = app_settings(sqlite_engine, **{"ticketing.max_tickets_per_order": "4"})
    document = TestApp(main({}, **settings)).get("/api/openapi.json").json
    order = request_schema(document, "POST", "/api/events/{id}/purchase")["properties"]["order"]
    assert order["properties"]["quantity"]["maximum"] == 4


def test_query_parameters_come_from_the_query_schemas(document):
    parameters = {p["name"]: p for p in operation(document, "GET", "/api/events")["parameters"]}
    assert set(parameters) == {"limit", "cursor", "status", "updated_since"}
    assert all(p["in"] == "query" and not p["required"] for p in parameters.values())
    assert parameters["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 20,
    }
    assert parameters["status"]["schema"]["enum"] == ["draft", "published", "completed"]
    assert parameters["updated_since"]["schema"]["format"] == "date-time"
    orders = {p["name"]: p for p in operation(document, "GET", "/api/orders")["parameters"]}
    assert orders["event_id"]["schema"]["format"] == "uuid"
    assert set(orders) == {"limit", "cursor", "event_id", "customer_email", "status"}


def test_responses_wrap_resources_in_data_and_pages_add_meta(document):
    get_event = operation(document, "GET", "/api/events/{id}")["responses"]["200"]
    body = get_event["content"]["application/json"]["schema"]
    assert body["required"] == ["data"]
    assert body["properties"]["data"] == {"$ref": "#/components/schemas/Event"}
    page = resolve(
        document,
        operation(document, "GET", "/api/orders")["responses"]["200"]["content"][
            "application/json"
        ]["schema"],
    )
    assert set(page["required"]) == {"data", "meta"}
    assert page["properties"]["data"]["items"] == {"$ref": "#/components/schemas/Order"}
    meta = resolve(document, page["properties"]["meta"])
    assert meta["properties"]["next_cursor"]["nullable"] is True
    event = document["components"]["schemas"]["Event"]
    # As many decimals as the event's currency has: "50.00" USD, "5000" JPY.
    assert event["properties"]["ticket_price"]["pattern"] == r"^[0-9]+(\.[0-9]{1,4})?$"
    assert event["additionalProperties"] is False
    order = document["components"]["schemas"]["Order"]
    assert order["properties"]["cancelled_at"] == {
        "type": "string",
        "format": "date-time",
        "nullable": True,
    }
    assert (
        operation(document, "DELETE", "/api/events/{id}")["responses"]["204"].get("content") is None
    )


def test_every_error_is_a_documented_problem(document):
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "code"}
    assert {"detail", "errors"} <= set(problem["properties"])
    for path, item in document["paths"].items():
        for method, op in item.items():
            statuses = {int(status) for status in op["responses"]}
            assert 500 in statuses, (method, path)
            for status, response in op["responses"].items():
                if int(status) < 400 or method == "head":
                    continue
                [media_type] = response["content"]
                assert media_type == "application/problem+json", (method, path, status)
                schema = response["content"][media_type]["schema"]
                assert schema["allOf"][0] == {"$ref": "#/components/schemas/Problem"}


def test_each_endpoint_lists_the_statuses_it_can_return(document):
    def statuses(method, path):
        return {int(status) for status in operation(document, method, path)["responses"]}

    assert statuses("GET", "/api/health") == {200, 500, 503}
    # 503: the database does not answer, or the server is at capacity (Retry-After).
    assert statuses("GET", "/api/events/{id}") == {200, 404, 429, 500, 503}
    assert statuses("POST", "/api/events") == {201, 400, 401, 403, 413, 415, 429, 500, 503}
    assert statuses("DELETE", "/api/events/{id}") == {204, 401, 403, 404, 409, 429, 500, 503}
    assert statuses("POST", "/api/orders/{id}/cancel") == {
        200,
        404,
        409,
        413,
        429,
        500,
        502,
        503,
    }
    unavailable = operation(document, "POST", "/api/events/{id}/purchase")["responses"]["503"]
    codes = unavailable["content"]["application/problem+json"]["schema"]["allOf"][1]
    assert set(codes["properties"]["code"]["enum"]) == {
        "payment_unavailable",
        "database_unavailable",
        "server_busy",
    }
    assert "Retry-After" in unavailable["headers"]
    conflict = operation(document, "POST", "/api/events/{id}/publish")["responses"]["409"]
    codes = conflict["content"]["application/problem+json"]["schema"]["allOf"][1]
    assert codes["properties"]["code"]["enum"] == ["event_not_draft", "event_date_passed"]


def test_domain_errors_are_documented_with_their_status(document):
    documented = {}
    for item in document["paths"].values():
        for op in item.values():
            for status, response in op["responses"].items():
                problem = response.get("content", {}).get("application/problem+json")
                if problem is None:
                    continue
                for code in problem["schema"]["allOf"][1]["properties"]["code"]["enum"]:
                    documented.setdefault(code, set()).add(int(status))
    for kind in (
        errors.EventNotFound,
        errors.EventNotDraft,
        errors.EventHasOrders,
        errors.InsufficientTickets,
        errors.PaymentDeclined,
        errors.PaymentUnavailable,
        errors.IdempotencyKeyReused,
        errors.RefundFailed,
        errors.OrderNotCancellable,
        errors.InvalidCursor,
    ):
        assert documented[kind.code] == {status_of_domain_error(kind)}, kind


def test_organiser_operations_need_the_bearer_key(document):
    scheme = document["components"]["securitySchemes"]["organiserKey"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    organiser = [
        ("POST", "/api/events"),
        ("PUT", "/api/events/{id}"),
        ("DELETE", "/api/events/{id}"),
        ("POST", "/api/events/{id}/publish"),
        ("GET", "/api/orders"),
    ]
    for method, path in organiser:
        op = operation(document, method, path)
        assert op["security"] == [{"organiserKey": []}], (method, path)
        assert {"401", "403"} <= set(op["responses"]), (method, path)
        assert op["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
    for method, path in (("GET", "/api/events"), ("GET", "/api/events/{id}")):
        # Buyers need no key; with one, organisers also see drafts.
        assert operation(document, method, path)["security"] == [{}, {"organiserKey": []}]
    for method, path in (("GET", "/api/orders/{id}"), ("POST", "/api/orders/{id}/cancel")):
        assert operation(document, method, path)["security"] == []


def test_the_document_is_built_once_per_app(sqlite_engine):
    app = main({}, **app_settings(sqlite_engine))
    assert DOCUMENT_KEY not in app.registry  # nothing is built until it is asked for
    client = TestApp(app)
    first = client.get("/api/openapi.json")
    cached = app.registry[DOCUMENT_KEY]
    second = client.get("/api/openapi.json")
    assert app.registry[DOCUMENT_KEY] is cached
    assert first.body == second.body == cached[0]
    assert first.content_type == "application/json"
    assert first.etag
    client.get("/api/openapi.json", headers={"If-None-Match": f'"{first.etag}"'}, status=304)
    json.loads(first.body)


def test_the_document_needs_no_api_key(sqlite_engine):
    settings = app_settings(
        sqlite_engine, **{"ticketing.require_api_key": "true", "ticketing.api_keys": "k"}
    )
    client = TestApp(main({}, **settings))
    client.get("/api/openapi.json", status=200)
    client.get("/api/docs", status=200)


def test_nul_characters_are_refused_not_a_database_error(testapp, dbengine):
    """Found by schemathesis: PostgreSQL cannot store NUL, which made these a 500."""
    event = create_event(dbengine)
    order = {"customer_email": "a@example.com", "customer_name": "A\x00", "quantity": 1}
    response = testapp.post_json(f"/api/events/{event.id}/purchase", {"order": order}, status=400)
    assert response.json["errors"][0]["field"] == "order.customer_name"
    fields = {"name": "N\x00", "venue": "V", "date": "2031-01-01T00:00:00Z", "ticket_price": 1}
    response = testapp.post_json(
        "/api/events", {"event": {**fields, "total_tickets": 1}}, status=400
    )
    assert response.json["errors"][0]["field"] == "event.name"
    response = testapp.get("/api/orders", {"customer_email": "a\x00"}, status=400)
    assert response.json["errors"][0]["field"] == "customer_email"
    response = testapp.post_json(
        f"/api/events/{event.id}/purchase",
        {"order": {**order, "customer_name": "A"}},
        headers={"Idempotency-Key": "k\x00"},
        status=400,
    )
    assert response.json["code"] == "idempotency_key_invalid"


def test_an_empty_idempotency_key_header_is_refused(testapp, dbengine):
    """Found by schemathesis: an empty header counted as no key, so a retry bought twice."""
    event = create_event(dbengine)
    order = {"customer_email": "a@example.com", "customer_name": "A", "quantity": 1}
    response = testapp.post_json(
        f"/api/events/{event.id}/purchase",
        {"order": order},
        headers={"Idempotency-Key": ""},
        status=400,
    )
    assert response.json["code"] == "idempotency_key_invalid"


@pytest.mark.parametrize("price", ["5e1", " 50", "+50", ".5", "50.000", "50.", "0x10", "１"])
def test_prices_outside_the_documented_format_are_refused(testapp, price):
    """The document says what a price looks like; the server takes nothing else."""
    fields = {"name": "N", "venue": "V", "date": "2031-01-01T00:00:00Z", "total_tickets": 1}
    response = testapp.post_json(
        "/api/events", {"event": {**fields, "ticket_price": price}}, status=400
    )
    assert response.json["errors"][0]["field"] == "event.ticket_price"
