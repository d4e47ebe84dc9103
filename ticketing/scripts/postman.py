"""``python -m ticketing.scripts.postman [--check] [--output FILE]``: write the Postman
collection (v2.1) of the API, generated from the app's OpenAPI document.

Every operation but the automatic HEADs becomes a request, in an order that runs top to bottom
(register a webhook, create, publish, buy, hold and pay, give a hold back; the door: make a
checkin key, list the tickets, download their PDF, scan one (201), scan it again (409
``already_checked_in``, the one request that is no operation of its own), the figures (1 of 4
checked in), the attendees, undo the scan; add a ticket type; add, read, disable and delete a
promo code; join a sold-out type's waiting list, read the entry, the queue, leave; cancel,
Stripe's webhook, delete; revoke the key),
with the document's example bodies (the seed's "Create Event" and "Purchase Tickets"; the
purchase's idempotency key is a fresh ``{{$guid}}`` each run, so that the collection can run
again), its query parameters (disabled until needed) and headers. Each request carries tests, as
Postman users expect: its success status, and the fields of the answer that the rest of the
collection relies on. Variables: ``baseUrl``, ``apiKey`` (sent as a Bearer token on organiser
operations), ``doorKey`` (the checkin key's, sent by the door's requests), and ``eventId``,
``orderId``, ``ticketTypeId``, ``promoCodeId``, ``waitingListEntryId``, ``keyId``,
``ticketId``, ``ticketCode`` and ``checkInId``, which the requests set from their answers. The
delete of an event deletes a draft its pre-request script creates, as the event the collection
sold tickets for keeps its sales history; Give a hold back releases a hold its pre-request
script makes (``holdId``); joining a waiting list waits for a type of no capacity its
pre-request script adds (``soldOutTypeId``); Stripe's webhook is posted with a body its
pre-request script signs as Stripe does, with ``stripeWebhookSecret`` (development.ini's
``stripe.webhook_secret``): an event the app acknowledges and ignores. ``newman run
postman_collection.json --env-var baseUrl=http://127.0.0.1:6543`` runs it green against ``make
run`` (tests/test_postman.py).

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
#: the door's second scan of the same ticket: not an operation of its own, but the scan again
SCAN_AGAIN = "check_in_ticket_again"
#: operations the door's checkin key makes (``doorKey``), not the organiser's ``apiKey``
AT_THE_DOOR = {"check_in_ticket", SCAN_AGAIN, "check_in_stats", "undo_check_in"}
#: the order in which a run through the collection makes sense
OPERATION_ORDER = (
    "get_health",
    # First, so that the purchase below owes it a delivery.
    "create_webhook",
    "list_webhooks",
    "get_webhook",
    "update_webhook",
    "rotate_webhook_secret",
    "create_event",
    "list_events",
    "get_event",
    "update_event",
    "publish_event",
    # The seed's purchase names no ticket type: it buys while the event has only one.
    "purchase_tickets",
    # A hold (it becomes orderId), paid, and another one given back; like the purchase, while
    # the event sells one type only.
    "reserve_tickets",
    "pay_hold",
    "release_hold",
    "list_orders",
    "get_order",
    # The door: a checkin key, the buyer's tickets and their PDF, a scan (201), the same
    # ticket again (409 already_checked_in), the figures (1 of 4 checked in), the attendee
    # list; the scan is undone so that the order can be cancelled below.
    "create_key",
    "list_order_tickets",
    "update_ticket",
    "download_order_tickets",
    "check_in_ticket",
    SCAN_AGAIN,
    "check_in_stats",
    "list_attendees",
    "undo_check_in",
    "create_ticket_type",
    "list_ticket_types",
    "get_ticket_type",
    "update_ticket_type",
    "get_availability",
    # A promo code, changed (disabled) and deleted, never used.
    "create_promo_code",
    "list_promo_codes",
    "get_promo_code",
    "update_promo_code",
    "delete_promo_code",
    # The waiting list of a type that sells nothing (its pre-request script makes it): join
    # it, read the entry, see the queue, leave.
    "join_waiting_list",
    "get_waiting_list_entry",
    "list_waiting_list",
    "leave_waiting_list",
    "cancel_order",
    "list_webhook_deliveries",
    "retry_webhook_delivery",
    "receive_stripe_event",
    "delete_ticket_type",
    "delete_event",
    # Last: the door's key is revoked again, so a run leaves no key behind that works.
    "list_keys",
    "revoke_key",
    "delete_webhook",
)
#: operations whose ``{id}`` is not the collection's event but a draft made for them
ON_A_DRAFT = {"delete_event"}
#: operations on a delivery, which only a running job worker makes
NEEDS_A_DELIVERY = {"retry_webhook_delivery"}
#: operations whose ``{id}`` is a hold made for them
ON_A_HOLD = {"release_hold"}
#: operations on a sold-out ticket type made for them
ON_A_SOLD_OUT_TYPE = {"join_waiting_list"}
#: path segments whose ``{id}`` is not named after the segment
ID_VARIABLES = {"waiting-list": "waitingListEntryId"}
#: operations called by Stripe, with a signed body
SIGNED_BY_STRIPE = {"receive_stripe_event"}
#: development.ini's stripe.webhook_secret
DEVELOPMENT_WEBHOOK_SECRET = "whsec_development_only"


def collection_from_openapi(document):
    info = document["info"]
    requests = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "head":
                requests.append(
                    (operation["operationId"], _request(path, method, operation, document))
                )
            if operation["operationId"] == "check_in_ticket":
                requests.append((SCAN_AGAIN, _scan_again(path, operation, document)))
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
            {"key": "ticketTypeId", "value": "", "description": "Set by Add a ticket type."},
            {"key": "promoCodeId", "value": "", "description": "Set by Add a promo code."},
            {"key": "keyId", "value": "", "description": "Set by Make an API key."},
            {"key": "webhookId", "value": "", "description": "Set by Register a webhook."},
            {
                "key": "deliveryId",
                "value": "",
                "description": "Set by List a webhook's deliveries (when a worker made one).",
            },
            {
                "key": "doorKey",
                "value": "",
                "description": "The checkin key's secret, set by Make an API key.",
            },
            {"key": "ticketId", "value": "", "description": "Set by List an order's tickets."},
            {
                "key": "ticketCode",
                "value": "",
                "description": "The first ticket's code, set by List an order's tickets.",
            },
            {"key": "checkInId", "value": "", "description": "Set by Check a ticket in."},
            {
                "key": "draftEventId",
                "value": "",
                "description": "Set by Delete an event's pre-request script.",
            },
            {
                "key": "holdId",
                "value": "",
                "description": "Set by Give a hold back's pre-request script.",
            },
            {
                "key": "soldOutTypeId",
                "value": "",
                "description": "Set by Join a ticket type's waiting list's pre-request script.",
            },
            {
                "key": "waitingListEntryId",
                "value": "",
                "description": "Set by Join a ticket type's waiting list.",
            },
            {
                "key": "stripeWebhookSecret",
                "value": DEVELOPMENT_WEBHOOK_SECRET,
                "description": "The server's stripe.webhook_secret, to sign Stripe's events.",
            },
        ],
    }


def _rank(order):
    return lambda name: (order.index(name) if name in order else len(order), name)


#: path parameters whose variable is not named after them: the one the creating request sets
#: (named after the resource's component, ``PromoCode``)
PATH_VARIABLES = {"code_id": "promoCodeId"}


def _variable_of(segments, index, name):
    """The collection variable of a path parameter: ``{id}`` after ``events`` is ``eventId``,
    ``{ticket_type_id}`` is ``ticketTypeId``."""
    if name in PATH_VARIABLES:
        return PATH_VARIABLES[name]
    if name == "id" and segments[index - 1] in ID_VARIABLES:
        return ID_VARIABLES[segments[index - 1]]
    if name == "id":
        # events -> eventId, webhooks -> webhookId, check-ins -> checkInId
        first, *rest = segments[index - 1].removesuffix("s").split("-")
        return first + "".join(word.title() for word in rest) + "Id"
    first, *rest = name.split("_")
    return first + "".join(word.title() for word in rest)


def _request(path, method, operation, document):
    segments = path.strip("/").split("/")
    path_variables = []
    postman_path = []
    on_a_draft = operation["operationId"] in ON_A_DRAFT
    on_a_hold = operation["operationId"] in ON_A_HOLD
    for index, segment in enumerate(segments):
        if segment.startswith("{") and segment.endswith("}"):
            name = segment[1:-1]
            variable = _variable_of(segments, index, name)
            if on_a_draft:
                variable = "draftEventId"
            elif on_a_hold:
                variable = "holdId"
            postman_path.append(f":{name}")
            path_variables.append({"key": name, "value": f"{{{{{variable}}}}}"})
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
            "raw": json.dumps(_fresh_keys(media.get("example", {})), indent=2),
            "options": {"raw": {"language": "json"}},
        }
    if {"organiserKey": []} in operation.get("security", []):
        key = "{{doorKey}}" if operation["operationId"] in AT_THE_DOOR else "{{apiKey}}"
        request["auth"] = {
            "type": "bearer",
            "bearer": [{"key": "token", "value": key, "type": "string"}],
        }
    else:
        request["auth"] = {"type": "noauth"}
    item = {"name": operation["summary"], "request": request}
    tests = _tests(operation, document["components"]["schemas"])
    tests += FURTHER_TESTS.get(operation["operationId"], [])
    events = [{"listen": "test", "script": {"type": "text/javascript", "exec": tests}}]
    if on_a_draft:
        events.insert(0, _create_a_draft(document))
    if on_a_hold:
        events.insert(0, _create_a_hold(document))
    if operation["operationId"] in ON_A_SOLD_OUT_TYPE:
        events.insert(0, _create_a_sold_out_type())
    if operation["operationId"] in SIGNED_BY_STRIPE:
        request["header"].insert(0, {"key": "Content-Type", "value": "application/json"})
        request["body"] = {"mode": "raw", "raw": "", "options": {"raw": {"language": "json"}}}
        events.insert(0, _sign_as_stripe())
    item["event"] = events
    return item


def _fresh_keys(example):
    """The example, with a new idempotency key each run (a key used again with another event
    would be refused, 422 ``idempotency_key_reused``), the collection's ticket code and a new
    nonce for each scan, and the collection's order as a ticket's proof."""
    order = example.get("order")
    if isinstance(order, dict) and "idempotency_key" in order:
        return {**example, "order": {**order, "idempotency_key": "{{$guid}}"}}
    if "code" in example and "nonce" in example:
        return {**example, "code": "{{ticketCode}}", "nonce": "{{$guid}}"}
    ticket = example.get("ticket")
    if isinstance(ticket, dict) and "order_id" in ticket:
        return {**example, "ticket": {**ticket, "order_id": "{{orderId}}"}}
    entry = example.get("entry")
    if isinstance(entry, dict) and "quantity" in entry:
        return {**example, "entry": {**entry, "ticket_type_id": "{{soldOutTypeId}}"}}
    return example


#: checks beyond the generic ones, and the variables the door's requests set for the next
FURTHER_TESTS = {
    "create_key": [
        "if (pm.response.code === 201) {",
        '    pm.collectionVariables.set("doorKey", pm.response.json().data.secret);',
        "}",
    ],
    "list_order_tickets": [
        'pm.test("answers a ticket per ticket bought, each with its code", function () {',
        "    const tickets = pm.response.json().data;",
        "    pm.expect(tickets).to.have.lengthOf(2);",
        "    pm.expect(tickets[0].code).to.match(/^[0-9A-Z]{4}(-[0-9A-Z]{4}){6}$/);",
        '    pm.collectionVariables.set("ticketId", tickets[0].id);',
        '    pm.collectionVariables.set("ticketCode", tickets[0].code);',
        "});",
    ],
    "download_order_tickets": [
        'pm.test("answers a PDF", function () {',
        '    pm.expect(pm.response.headers.get("Content-Type")).to.include("application/pdf");',
        '    pm.expect(pm.response.stream.slice(0, 5).toString()).to.equal("%PDF-");',
        "});",
    ],
    "join_waiting_list": [
        'pm.test("is first in line", function () {',
        "    const entry = pm.response.json().data;",
        '    pm.expect(entry.status).to.equal("waiting");',
        "    pm.expect(entry.position).to.equal(1);",
        "});",
    ],
    "check_in_stats": [
        # Sold: the purchase's 2 and the paid hold's 2 (the hold given back sold none).
        'pm.test("counts 1 of the 4 tickets sold checked in", function () {',
        "    const stats = pm.response.json().data;",
        "    pm.expect(stats.sold).to.equal(4);",
        "    pm.expect(stats.checked_in).to.equal(1);",
        "});",
    ],
}


def _scan_again(path, operation, document):
    """The door scanning the same ticket a second time: 409 ``already_checked_in``, saying
    when it was first scanned."""
    item = _request(path, "post", operation, document)
    item["name"] = "Check the same ticket in again (refused)"
    item["request"]["description"] = (
        "The same code a second time, with a new nonce: 409 `already_checked_in`, with when "
        "and by which key the ticket was first scanned."
    )
    item["event"] = [
        {
            "listen": "test",
            "script": {
                "type": "text/javascript",
                "exec": [
                    'pm.test("answers 409", function () {',
                    "    pm.response.to.have.status(409);",
                    "});",
                    'pm.test("says when and by which key it was first scanned", function () {',
                    "    const problem = pm.response.json();",
                    '    pm.expect(problem.code).to.equal("already_checked_in");',
                    '    pm.expect(problem).to.include.all.keys("checked_in_at", "checked_in_by");',
                    "});",
                ],
            },
        }
    ]
    return item


def _tests(operation, schemas):
    """Postman tests: the operation's success status, the fields the answer must carry, and, for
    an operation that creates a resource, saving its id for the requests after it."""
    status, response = next(
        (int(code), response)
        for code, response in operation["responses"].items()
        if code.startswith("2")
    )
    if operation["operationId"] in NEEDS_A_DELIVERY:
        return _tests_needing_a_delivery(status)
    lines = [
        f'pm.test("answers {status}", function () {{',
        f"    pm.response.to.have.status({status});",
        "});",
    ]
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return lines
    data = schema.get("properties", {}).get("data", {})
    if "$ref" in schema:  # a page of resources
        lines += [
            'pm.test("answers a page", function () {',
            "    const body = pm.response.json();",
            '    pm.expect(body.data).to.be.an("array");',
            '    pm.expect(body.meta).to.have.property("next_cursor");',
            "});",
        ]
    elif "$ref" in data:
        name = data["$ref"].rsplit("/", 1)[-1]
        fields = ", ".join(json.dumps(field) for field in schemas[name].get("required", []))
        lines += [
            f'pm.test("answers the {name} with its fields", function () {{',
            f"    pm.expect(pm.response.json().data).to.include.all.keys({fields});",
            "});",
        ]
        if status == 201:
            variable = name[0].lower() + name[1:] + "Id"
            lines += [
                "if (pm.response.code === 201) {",
                f'    pm.collectionVariables.set("{variable}", pm.response.json().data.id);',
                "}",
            ]
    else:
        fields = ", ".join(json.dumps(field) for field in schema.get("required", []))
        lines += [
            'pm.test("answers with its fields", function () {',
            f"    pm.expect(pm.response.json()).to.include.all.keys({fields});",
            "});",
        ]
    if operation["operationId"] == "list_webhook_deliveries":
        lines += [
            "const deliveries = pm.response.json().data;",
            'pm.collectionVariables.set("deliveryId", deliveries.length ? deliveries[0].id : "");',
        ]
    return lines


def _tests_needing_a_delivery(status):
    """Deliveries are made by the job worker from the events the collection causes: with one
    running there is a delivery to act on; with none (a bare ``pserve``), there is not yet."""
    return [
        f'pm.test("answers {status} to a delivery, or 404 while no worker made one", '
        "function () {",
        '    if (pm.collectionVariables.get("deliveryId")) {',
        f"        pm.response.to.have.status({status});",
        '        pm.expect(pm.response.json().data.status).to.equal("pending");',
        "    } else {",
        "        pm.response.to.have.status(404);",
        '        pm.expect(pm.response.json().code).to.equal("not_found");',
        "    }",
        "});",
    ]


def _create_a_draft(document):
    """A pre-request script that creates a draft event (from the create operation's example)
    and saves its id as ``draftEventId``."""
    create = document["paths"]["/api/events"]["post"]["requestBody"]["content"]
    example = create["application/json"]["example"]
    return {
        "listen": "prerequest",
        "script": {
            "type": "text/javascript",
            "exec": [
                "pm.sendRequest({",
                '    url: pm.variables.get("baseUrl") + "/api/events",',
                '    method: "POST",',
                "    header: {",
                '        "Content-Type": "application/json",',
                '        "Authorization": "Bearer " + pm.variables.get("apiKey")',
                "    },",
                '    body: {mode: "raw", raw: JSON.stringify(' + json.dumps(example) + ")}",
                "}, function (error, response) {",
                '    pm.expect(error, "creating the draft to delete").to.equal(null);',
                '    pm.collectionVariables.set("draftEventId", response.json().data.id);',
                "});",
            ],
        },
    }


def _create_a_hold(document):
    """A pre-request script that reserves a hold on the collection's event (from the reserve
    operation's example, with a fresh key) and saves its id as ``holdId``."""
    reserve = document["paths"]["/api/events/{id}/orders"]["post"]["requestBody"]["content"]
    example = reserve["application/json"]["example"]
    return {
        "listen": "prerequest",
        "script": {
            "type": "text/javascript",
            "exec": [
                "const hold = " + json.dumps(example) + ";",
                'hold.order.idempotency_key = pm.variables.replaceIn("{{$guid}}");',
                "pm.sendRequest({",
                '    url: pm.variables.get("baseUrl") + "/api/events/" + '
                'pm.variables.get("eventId") + "/orders",',
                '    method: "POST",',
                '    header: {"Content-Type": "application/json"},',
                '    body: {mode: "raw", raw: JSON.stringify(hold)}',
                "}, function (error, response) {",
                '    pm.expect(error, "reserving the hold to give back").to.equal(null);',
                '    pm.collectionVariables.set("holdId", response.json().data.id);',
                "});",
            ],
        },
    }


def _create_a_sold_out_type():
    """A pre-request script that adds a ticket type of no capacity to the collection's event (on
    sale, nothing left: its waiting list is open) and saves its id as ``soldOutTypeId``."""
    body = {"ticket_type": {"name": "Sold out", "price": "10.00", "capacity": 0}}
    return {
        "listen": "prerequest",
        "script": {
            "type": "text/javascript",
            "exec": [
                "pm.sendRequest({",
                '    url: pm.variables.get("baseUrl") + "/api/events/" + '
                'pm.variables.get("eventId") + "/ticket-types",',
                '    method: "POST",',
                "    header: {",
                '        "Content-Type": "application/json",',
                '        "Authorization": "Bearer " + pm.variables.get("apiKey")',
                "    },",
                '    body: {mode: "raw", raw: JSON.stringify(' + json.dumps(body) + ")}",
                "}, function (error, response) {",
                '    pm.expect(error, "adding the sold-out type to wait for").to.equal(null);',
                '    pm.collectionVariables.set("soldOutTypeId", response.json().data.id);',
                "});",
            ],
        },
    }


def _sign_as_stripe():
    """A pre-request script that writes a Stripe event as the body and signs it as Stripe does
    (``Stripe-Signature: t=<unix>,v1=<HMAC-SHA256 of "<t>.<body>">``): an event of a type the
    app acknowledges and ignores, so a run changes nothing."""
    return {
        "listen": "prerequest",
        "script": {
            "type": "text/javascript",
            "exec": [
                "const body = JSON.stringify({",
                '    id: "evt_postman_" + pm.variables.replaceIn("{{$guid}}"),',
                '    object: "event",',
                '    type: "customer.created",',
                '    data: {object: {object: "customer", id: "cus_postman"}}',
                "});",
                "const timestamp = Math.floor(Date.now() / 1000);",
                'const secret = pm.variables.get("stripeWebhookSecret");',
                'const signature = CryptoJS.HmacSHA256(timestamp + "." + body, secret)'
                ".toString(CryptoJS.enc.Hex);",
                "pm.request.body.update(body);",
                'pm.request.headers.upsert({key: "Stripe-Signature", '
                'value: "t=" + timestamp + ",v1=" + signature});',
            ],
        },
    }


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
