"""postman_collection.json: generated from the OpenAPI document by
``python -m ticketing.scripts.postman``; these tests fail when the committed file is stale, and
run it with newman, Postman's own collection runner, against a live ``pserve development.ini``
(what ``make run`` serves): every request's own tests must pass, top to bottom."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from ticketing.openapi import standalone_document
from ticketing.scripts import postman

from .live_server import live_server

REPO = Path(__file__).resolve().parent.parent
COLLECTION = REPO / "postman_collection.json"
# Installed by `make test` from package.json (the npm registry).
NEWMAN = REPO / "node_modules" / ".bin" / "newman"


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
        (method.upper(), re.sub(r"\{(\w+)\}", r":\1", path))
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
        # The seed's "unique-key-123", made fresh for each run: the same key a second time,
        # for the next run's new event, would be refused as reused.
        "idempotency_key": "{{$guid}}",
    }
    seed = served_document["paths"]["/api/events/{id}/purchase"]["post"]["requestBody"]
    assert seed["content"]["application/json"]["example"]["order"]["idempotency_key"] == (
        "unique-key-123"
    )


def test_every_request_checks_its_answer():
    collection = json.loads(COLLECTION.read_text())
    for item in collection["item"]:
        [tests] = [event for event in item["event"] if event["listen"] == "test"]
        script = "\n".join(tests["script"]["exec"])
        assert "pm.response.to.have.status(" in script, item["name"]
        if item["request"]["method"] != "DELETE":
            assert "pm.expect(" in script, item["name"]


def test_the_collection_runs_green_with_newman_twice(tmp_path):
    """Postman's runner, top to bottom, twice against the same server: every request's tests
    pass both times (a fresh idempotency key each run, the delete on a draft of its own)."""
    assert NEWMAN.exists(), "newman is missing: `make test` installs it (npm ci)"
    items = json.loads(COLLECTION.read_text())["item"]
    declared_tests = sum(
        line.startswith("pm.test(")
        for item in items
        for event in item["event"]
        for line in event["script"]["exec"]
    )
    sent_by_scripts = sum(
        "pm.sendRequest({" in event["script"]["exec"]
        for item in items
        for event in item["event"]
        if event["listen"] == "prerequest"
    )
    assert sent_by_scripts == 3  # the draft to delete, the hold to give back, the sold-out type
    # Two runs back to back send one client's more than the 100 requests a minute that
    # development.ini allows (the rate limit doing its job); one run stays within it.
    with live_server(tmp_path, settings={"ratelimit.general": "1000/minute"}) as base:
        for run in (1, 2):
            report = tmp_path / f"newman-{run}.json"
            result = subprocess.run(
                [
                    str(NEWMAN),
                    "run",
                    str(COLLECTION),
                    "--env-var",
                    f"baseUrl={base}",
                    "--reporters",
                    "cli,json",
                    "--reporter-json-export",
                    str(report),
                    "--color",
                    "off",
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stdout + result.stderr
            stats = json.loads(report.read_text())["run"]["stats"]
            # The requests, and those their pre-request scripts send: the draft Delete an event
            # deletes, the hold Give a hold back releases, the type a waiting list is joined for.
            assert stats["requests"] == {
                "total": len(items) + sent_by_scripts, "pending": 0, "failed": 0,
            }  # fmt: skip
            assert stats["assertions"] == {"total": declared_tests, "pending": 0, "failed": 0}
