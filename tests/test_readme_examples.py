"""The README's curl examples, run as written against a live ``pserve development.ini``, so that
they stay true."""

import json
import re
import shlex
import subprocess

from .live_server import REPO, live_server

PLACEHOLDERS = {"{id}": "event_id", "{order_id}": "order_id"}


def readme_examples():
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Examples", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [command.strip() for command in block.replace("\\\n", " ").split("\n\n")]


def url_of(command):
    return next(token for token in shlex.split(command) if token.startswith("http"))


def test_the_readme_examples_work_as_written(tmp_path):
    examples = readme_examples()
    assert [url_of(e).rsplit("/", 1)[-1] for e in examples] == [
        "events",
        "publish",
        "purchase",
        "cancel",
    ]
    found = {}
    with live_server(tmp_path) as base:
        for command in examples:
            command = command.replace("http://localhost:6543", base)
            for placeholder, name in PLACEHOLDERS.items():
                command = command.replace(placeholder, found.get(name, placeholder))
            result = subprocess.run(
                [*shlex.split(command), "--silent", "--write-out", "\n%{http_code}"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            body, _, status = result.stdout.rpartition("\n")
            assert status in ("200", "201"), f"{command}\n{status} {body}"
            data = json.loads(body)["data"]
            action = url_of(command).rsplit("/", 1)[-1]
            if action == "events":
                found["event_id"] = data["id"]
            elif action == "publish":
                assert data["status"] == "published"
            elif action == "purchase":
                found["order_id"] = data["id"]
                assert data["status"] == "confirmed"
            elif action == "cancel":
                assert data["status"] == "cancelled"
    assert set(found) == {"event_id", "order_id"}


def section_examples(title):
    readme = (REPO / "README.md").read_text()
    section = readme.split(f"### {title}", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [command.strip() for command in block.replace("\\\n", " ").split("\n\n")]


def run_curl(command, base, found):
    command = command.replace("http://localhost:6543", base)
    for placeholder, name in PLACEHOLDERS.items():
        command = command.replace(placeholder, found.get(name, placeholder))
    result = subprocess.run(
        [*shlex.split(command), "--silent", "--write-out", "\n%{http_code}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    body, _, status = result.stdout.rpartition("\n")
    return status, json.loads(body)


def test_the_readme_hold_examples_work_as_written(tmp_path):
    create, publish = readme_examples()[:2]
    reserve, pay, release = section_examples("Holds and 3-D Secure")
    found = {}
    with live_server(tmp_path) as base:
        status, body = run_curl(create, base, found)
        found["event_id"] = body["data"]["id"]
        assert run_curl(publish, base, found)[0] == "200"

        status, body = run_curl(reserve, base, found)
        assert (status, body["data"]["status"]) == ("201", "reserved")
        assert body["data"]["expires_at"]
        found["order_id"] = body["data"]["id"]

        status, body = run_curl(pay, base, found)
        assert (status, body["data"]["status"]) == ("202", "awaiting_action")
        assert body["payment"]["client_secret"]

        status, body = run_curl(release, base, found)
        assert (status, body["data"]["status"]) == ("200", "cancelled")


def test_the_readme_promo_code_examples_work_as_written(tmp_path):
    create, publish = readme_examples()[:2]
    add_code, list_types, purchase = section_examples("Promo codes")
    found = {}
    with live_server(tmp_path) as base:
        status, body = run_curl(create, base, found)
        found["event_id"] = body["data"]["id"]
        assert run_curl(publish, base, found)[0] == "200"

        status, body = run_curl(add_code, base, found)
        assert (status, body["data"]["code"], body["data"]["uses"]) == ("201", "PARTNER20", 0)

        status, body = run_curl(list_types, base, found)
        assert status == "200"
        assert [(t["price"], t["discounted_price"]) for t in body["data"]] == [("50.00", "40.00")]

        status, body = run_curl(purchase, base, found)
        order = body["data"]
        assert (status, order["status"], order["promo_code"]) == ("201", "confirmed", "PARTNER20")
        assert (order["total_amount"], order["discount_total"]) == ("80.00", "20.00")
        assert [(i["subtotal"], i["discount"], i["paid"]) for i in order["items"]] == [
            ("100.00", "20.00", "80.00")
        ]
