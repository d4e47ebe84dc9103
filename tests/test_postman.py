"""postman_collection.json: generated from the OpenAPI document by
``python -m ticketing.scripts.postman``; these tests fail when the committed file is stale, and
run its requests in order against the app the way Postman's collection runner would."""

import json
import re
from pathlib import Path

import pytest
from webtest import TestApp

from ticketing import main
from ticketing.openapi import standalone_document
from ticketing.scripts import postman

from .conftest import app_settings

REPO = Path(__file__).resolve().parent.parent
COLLECTION = REPO / "postman_collection.json"
API_KEY = "postman-organiser-key"


@pytest.fixture
def served_document(testapp):
    return testapp.get("/api/openapi.json").json


def test_the_committed_collection_is_up_to_date(served_document):
    expected = postman.render(postman.collection_from_openapi(served_document))
    assert COLLECTION.read_text() == expected, (
        "postman_collection.json is out of date: run `python -m ticketing.scripts.postman`"
    )


def test_the_script_builds_the_same_document_as_the_app(served_document):
    assert standalone_document() == served_document


def test_the_script_checks_and_writes(tmp_path, capsys):
    target = tmp_path / "collection.json"
    assert postman.main(["--check", "--output", str(target)]) == 1
    assert postman.main(["--output", str(target)]) == 0
    assert postman.main(["--check", "--output", str(target)]) == 0
    assert target.read_text() == COLLECTION.read_text()


def test_every_endpoint_is_in_the_collection(served_document):
    collection = json.loads(COLLECTION.read_text())
    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    requests = {
        (item["request"]["method"], "/" + "/".join(item["request"]["url"]["path"]))
        for item in collection["item"]
    }
    documented = {
        (method.upper(), path.replace("{id}", ":id"))
        for path, item in served_document["paths"].items()
        for method in item
        if method != "head"
    }
    assert requests == documented


def test_the_seed_examples_are_the_bodies(served_document):
    collection = {item["name"]: item for item in json.loads(COLLECTION.read_text())["item"]}
    create = json.loads(collection["Create a draft event"]["request"]["body"]["raw"])
    assert create["event"] == {
        "name": "Concert",
        "venue": "Stadium",
        "date": "2030-07-15T18:00:00Z",  # the seed's 2026-07-15, moved into the future
        "ticket_price": "50.00",
        "total_tickets": 100,
    }
    buy = json.loads(collection["Buy tickets"]["request"]["body"]["raw"])
    assert buy["order"] == {
        "customer_email": "john@example.com",
        "customer_name": "John Doe",
        "quantity": 2,
        "idempotency_key": "unique-key-123",
    }


def test_the_collection_runs_top_to_bottom(dbengine):
    """Each request in order, as the collection runner sends it, with the variables it sets."""
    settings = app_settings(
        dbengine, **{"ticketing.require_api_key": "true", "ticketing.api_keys": API_KEY}
    )
    client = TestApp(main({}, **settings))
    collection = json.loads(COLLECTION.read_text())
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    variables.update(baseUrl="http://tickets.test", apiKey=API_KEY)

    def fill(text):
        return re.sub(r"\{\{(\w+)\}\}", lambda m: variables[m.group(1)], text)

    statuses = {}
    for item in collection["item"]:
        request = item["request"]
        path = "/" + "/".join(request["url"]["path"])
        for variable in request["url"].get("variable", []):
            path = path.replace(f":{variable['key']}", fill(variable["value"]))
        headers = {h["key"]: fill(h["value"]) for h in request["header"] if not h.get("disabled")}
        if request["auth"]["type"] == "bearer":
            headers["Authorization"] = f"Bearer {fill(request['auth']['bearer'][0]['value'])}"
        body = fill(request["body"]["raw"]).encode() if "body" in request else None
        response = client.request(
            path, method=request["method"], headers=headers, body=body, expect_errors=True
        )
        statuses[item["name"]] = response.status_int
        for line in item.get("event", [{}])[0].get("script", {}).get("exec", []):
            saved = re.search(r'collectionVariables\.set\("(\w+)"', line)
            if saved and response.status_int == 201:
                variables[saved.group(1)] = response.json["data"]["id"]
    assert statuses == {
        "Check health": 200,
        "Create a draft event": 201,
        "List events": 200,
        "Read an event": 200,
        "Change an event": 200,
        "Publish an event": 200,
        "Buy tickets": 201,
        "List orders": 200,
        "Read an order": 200,
        "Cancel an order": 200,
        "Delete an event": 409,  # it has sales history
    }
