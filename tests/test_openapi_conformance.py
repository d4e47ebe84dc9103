"""Schemathesis against the app, from the app's own OpenAPI document: for every operation it
generates requests (valid ones and, in its negative mode, invalid ones), sends them through the
whole WSGI app, and checks that no response is a 5xx and that every response conforms to the
document: a documented status code, the documented content type, a body that matches the
schema, the documented headers.

The app runs on PostgreSQL (the production database, stricter than SQLite: it refuses a NUL
character in text, for one), with organiser API keys required and rate limits off. Schemathesis
sends a valid key (Bearer) where the document asks for one, and checks that the organiser
operations refuse requests without it. Some requests go to a real published event, a draft and a
confirmed order rather than to random ids, so that purchases, changes and cancellations get
past the 404. Generation is derandomized, so CI sees the same requests on every run.

Not checked: positive_data_acceptance (a request can match the schema and still be refused by
a rule no schema states: a date in the past, a cursor this API never handed out), and unknown
query parameters (ignored by design; only bodies refuse unknown keys).
SCHEMATHESIS_MAX_EXAMPLES raises the examples per operation for a longer hunt.
"""

import datetime as dt
import os

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from ticketing import main
from ticketing.openapi import standalone_document

from .conftest import app_settings

API_KEY = "schemathesis-organiser-key"
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "30"))

SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


@pytest.fixture
def api_app(pg_engine):
    return main(
        {},
        **app_settings(
            pg_engine,
            **{"ticketing.require_api_key": "true", "ticketing.api_keys": API_KEY},
        ),
    )


@pytest.fixture
def known_ids(api_app, pg_engine):
    """A published event with a confirmed order, and a draft, made through the API."""
    from webtest import TestApp

    client = TestApp(api_app, extra_environ={"HTTP_HOST": "tickets.test"})
    auth = {"Authorization": f"Bearer {API_KEY}"}
    date = (dt.datetime.now(dt.UTC) + dt.timedelta(days=60)).isoformat()
    fields = {"name": "Concert", "venue": "Stadium", "date": date, "ticket_price": "50.00"}
    published = client.post_json(
        "/api/events", {"event": {**fields, "total_tickets": 1000}}, headers=auth
    ).json["data"]["id"]
    client.post(f"/api/events/{published}/publish", headers=auth)
    draft = client.post_json(
        "/api/events", {"event": {**fields, "total_tickets": 10}}, headers=auth
    ).json["data"]["id"]
    order = client.post_json(
        f"/api/events/{published}/purchase",
        {"order": {"customer_email": "a@example.com", "customer_name": "A", "quantity": 1}},
    ).json["data"]["id"]
    return {"events": [published, draft], "orders": [order]}


@pytest.fixture
def api_schema(api_app):
    config = schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"organiserKey": {"bearer": API_KEY}}},
            # Unknown query parameters are ignored by design (only bodies refuse unknown keys).
            "generation": {"allow-extra-parameters": False},
        }
    )
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", api_app, config=config)

    @schema.hook
    def filter_query(context, query):
        # allowEmptyValue: "?status=" is the same as no status (schemathesis does not know).
        allowed_empty = {
            parameter["name"]
            for parameter in context.operation.definition.raw.get("parameters", [])
            if parameter.get("allowEmptyValue")
        }
        return not any(query.get(name) == "" for name in allowed_empty)

    return schema


def _cases():
    """(method, path, mode) for every operation in the document, read at collection time
    without a database (the document does not depend on one). Negative mode only where there is
    something to make invalid: parameters or a body."""
    document = standalone_document()
    cases = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            modes = [GenerationMode.POSITIVE]
            if operation.get("parameters") or operation.get("requestBody"):
                modes.append(GenerationMode.NEGATIVE)
            cases += [
                pytest.param(method.upper(), path, mode, id=f"{method.upper()} {path} {mode}")
                for mode in modes
            ]
    return cases


@pytest.mark.parametrize(("method", "path", "mode"), _cases())
def test_api_conforms_to_its_openapi_document(api_schema, known_ids, method, path, mode):
    operation = api_schema[path][method]
    strategy = operation.as_strategy(generation_mode=mode)
    if "{id}" in path:
        kind = "orders" if path.startswith("/api/orders") else "events"
        strategy = st.one_of(
            strategy,
            *[
                operation.as_strategy(generation_mode=mode, path_parameters={"id": known})
                for known in known_ids[kind]
            ],
        )

    @SETTINGS
    @hypothesis.given(case=strategy)
    def check(case):
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    check()
