"""``python -m ticketing.scripts.postman [--check] [--output FILE]``: write the Postman
collection (v2.1) of the API, generated from the app's OpenAPI document.

Every operation but the automatic HEADs becomes a request, in an order that runs top to bottom
(create, publish, buy, cancel, and a delete that shows the 409 of an event with orders), with
the document's example bodies (the seed's "Create Event" and "Purchase Tickets"), its query
parameters (disabled until needed) and headers. Variables: ``baseUrl``, ``apiKey`` (sent as a
Bearer token on organiser operations), and ``eventId`` / ``orderId``, which the create and
purchase requests set from their responses so the collection runs top to bottom.

``--check`` writes nothing and exits 1 when the file differs from what it would write
(tests/test_postman.py does the same).
"""

import argparse
import json
import sys
import uuid
from pathlib import Path

from ticketing.openapi import standalone_document

DEFAULT_OUTPUT = "postman_collection.json"
COLLECTION_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
BASE_URL = "http://localhost:6543"
#: the order in which a run through the collection makes sense
OPERATION_ORDER = (
    "get_health",
    "create_event",
    "list_events",
    "get_event",
    "update_event",
    "publish_event",
    "purchase_tickets",
    "list_orders",
    "get_order",
    "cancel_order",
    "delete_event",
)


def collection_from_openapi(document):
    info = document["info"]
    requests = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "head":
                requests.append((operation["operationId"], _request(path, method, operation)))
    rank = _rank(OPERATION_ORDER)
    items = [request for _, request in sorted(requests, key=lambda pair: rank(pair[0]))]
    return {
        "info": {
            # Stable, so the generated file only changes when the API does.
            "_postman_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "ticketing/postman_collection")),
            "name": info["title"],
            "description": info["description"]
            + "\n\nGenerated from /api/openapi.json by `python -m ticketing.scripts.postman`.",
            "schema": COLLECTION_SCHEMA,
        },
        "item": items,
        "variable": [
            {"key": "baseUrl", "value": BASE_URL},
            {"key": "apiKey", "value": "", "description": "An organiser API key."},
            {"key": "eventId", "value": "", "description": "Set by Create a draft event."},
            {"key": "orderId", "value": "", "description": "Set by Buy tickets."},
        ],
    }


def _rank(order):
    return lambda name: (order.index(name) if name in order else len(order), name)


def _request(path, method, operation):
    segments = path.strip("/").split("/")
    path_variables = []
    postman_path = []
    for index, segment in enumerate(segments):
        if segment.startswith("{") and segment.endswith("}"):
            name = segment[1:-1]
            resource = segments[index - 1].removesuffix("s")  # events -> event
            postman_path.append(f":{name}")
            path_variables.append({"key": name, "value": f"{{{{{resource}Id}}}}"})
        else:
            postman_path.append(segment)
    parameters = operation.get("parameters", [])
    query = [
        {
            "key": p["name"],
            "value": str(p["schema"].get("default", p["schema"].get("enum", [""])[0])),
            "description": p.get("description", ""),
            "disabled": True,
        }
        for p in parameters
        if p["in"] == "query"
    ]
    headers = [
        {
            "key": p["name"],
            "value": "{{$guid}}" if p["name"] == "Idempotency-Key" else "",
            "description": p.get("description", ""),
            "disabled": True,
        }
        for p in parameters
        if p["in"] == "header"
    ]
    raw = "{{baseUrl}}/" + "/".join(postman_path)
    url = {"raw": raw, "host": ["{{baseUrl}}"], "path": postman_path}
    if query:
        url["query"] = query
    if path_variables:
        url["variable"] = path_variables
    request = {
        "method": method.upper(),
        "header": headers,
        "url": url,
        "description": "\n\n".join(
            text for text in (operation.get("summary"), operation.get("description")) if text
        ),
    }
    body = operation.get("requestBody")
    if body is not None:
        [(media_type, media)] = body["content"].items()
        request["header"].insert(0, {"key": "Content-Type", "value": media_type})
        request["body"] = {
            "mode": "raw",
            "raw": json.dumps(media.get("example", {}), indent=2),
            "options": {"raw": {"language": "json"}},
        }
    if {"organiserKey": []} in operation.get("security", []):
        request["auth"] = {
            "type": "bearer",
            "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}],
        }
    else:
        request["auth"] = {"type": "noauth"}
    item = {"name": operation["summary"], "request": request}
    script = _capture_id(operation)
    if script:
        item["event"] = [{"listen": "test", "script": {"type": "text/javascript", "exec": script}}]
    return item


def _capture_id(operation):
    """For an operation that creates a resource (201 with a Location), save its id."""
    created = operation["responses"].get("201")
    if not created or "Location" not in created.get("headers", {}):
        return None
    schema = created["content"]["application/json"]["schema"]
    name = schema["properties"]["data"]["$ref"].rsplit("/", 1)[-1]
    variable = name[0].lower() + name[1:] + "Id"
    return [
        "if (pm.response.code === 201) {",
        f'    pm.collectionVariables.set("{variable}", pm.response.json().data.id);',
        "}",
    ]


def render(collection):
    return json.dumps(collection, indent=2, ensure_ascii=False) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="default: %(default)s")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render(collection_from_openapi(standalone_document()))
    output = Path(args.output)
    if args.check:
        current = output.read_text() if output.exists() else None
        if current != text:
            print(f"{output} is out of date: run python -m ticketing.scripts.postman")
            return 1
        print(f"{output} is up to date")
        return 0
    output.write_text(text)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
