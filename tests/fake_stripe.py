"""A fake of the few Stripe endpoints the gateway uses, served on 127.0.0.1 by the standard library.

It keeps PaymentIntents, their charges and refunds in memory and answers like Stripe does
(form-encoded requests, JSON objects, ``{"error": {...}}`` bodies), including what matters for
retries: a replayed ``Idempotency-Key`` gets the first answer back, and the same key with other
parameters is refused. Tests read every request it received in :attr:`FakeStripe.requests`, and
script failures with :meth:`FakeStripe.fail` and :meth:`FakeStripe.hang`.

Cards follow Stripe's test PaymentMethods: ``pm_card_visa`` (and any other ``pm_...``) succeeds,
``pm_card_chargeDeclined``, ``pm_card_chargeDeclinedInsufficientFunds`` and
``pm_card_chargeDeclinedExpiredCard`` are declined, ``pm_card_authenticationRequired`` (and
``pm_card_threeDSecure2Required``) needs 3-D Secure, and a value not starting with ``pm_`` is no
such PaymentMethod. :meth:`FakeStripe.complete_action` plays the buyer's authentication and
:meth:`FakeStripe.refund_in_dashboard` an organiser's refund in Stripe's dashboard; neither sends
a webhook (tests sign and post Stripe's events themselves).
"""

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

DECLINES = {
    "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", None, "Your card has expired."),
}
NEEDS_AUTHENTICATION = frozenset(
    {"pm_card_authenticationRequired", "pm_card_threeDSecure2Required"}
)
SEARCH_QUERY = re.compile(r"^metadata\['(?P<key>[^']+)'\]:'(?P<value>(?:[^'\\]|\\.)*)'$")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict
    params: dict  # form fields (POST) or query parameters (GET), flattened: "metadata[order_id]"
    expand: list = field(default_factory=list)


@dataclass
class Fault:
    method: str
    path: str
    status: int = 500
    error: dict | None = None
    sleep: float = 0.0
    after_processing: bool = False
    times: int = 1


class FakeStripe:
    def __init__(self, api_key="sk_test_x"):
        self.api_key = api_key
        self.requests = []
        self.payment_intents = {}  # id -> PaymentIntent (insertion order is creation order)
        self.charges = {}  # id -> Charge, refunds not embedded
        self.refunds = {}  # id -> Refund
        #: while True, new PaymentIntents stay out of search results (Stripe's search lags)
        self.search_lags = False
        #: while False, ``expand[]=...refunds`` is ignored (as an older API version would)
        self.expand_refunds = True
        self._faults = []
        self._idempotent = {}  # key -> (method, path, params, status, body)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._release.set()  # wake handlers that hang
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- scripting ------------------------------------------------------------------------------

    def fail(self, method, path, status=500, error=None, times=1):
        """Answer the next ``times`` requests to ``method path`` with an error, doing nothing."""
        error = error or {"type": "api_error", "message": "Something went wrong on Stripe's end."}
        self._faults.append(Fault(method, path, status=status, error=error, times=times))

    def hang(self, method, path, seconds, after_processing=False, times=1):
        """Sit on the next ``times`` requests for ``seconds`` (past the client's timeout).

        ``after_processing``: do the work first (the money moves) and only the answer is late;
        otherwise nothing is done and the late answer is a 500.
        """
        self._faults.append(
            Fault(method, path, sleep=seconds, after_processing=after_processing, times=times)
        )

    def index_search(self):
        """Let search see every PaymentIntent made so far."""
        with self._lock:
            for intent in self.payment_intents.values():
                intent["_searchable"] = True

    def seed_intent(self, status="succeeded", metadata=None, amount=5000, searchable=True):
        """Put a PaymentIntent straight into the books, as if made earlier; return its id."""
        with self._lock:
            intent = {
                "id": f"pi_seed{next(self._ids)}",
                "object": "payment_intent",
                "amount": amount,
                "amount_received": amount if status == "succeeded" else 0,
                "currency": "usd",
                "description": None,
                "metadata": dict(metadata or {}),
                "payment_method": "pm_card_visa",
                "status": status,
                "latest_charge": None,
                "last_payment_error": None,
                "created": int(time.time()),
                "livemode": False,
                "_searchable": searchable,
            }
            self.payment_intents[intent["id"]] = intent
            if status == "succeeded":
                intent["latest_charge"] = self._new_charge(intent, status="succeeded")["id"]
        return intent["id"]

    def complete_action(self, intent_id, succeed=True):
        """The buyer's 3-D Secure authentication of a ``requires_action`` intent, in their
        browser: it succeeds (the money is taken) or fails (``requires_payment_method``)."""
        with self._lock:
            intent = self.payment_intents[intent_id]
            assert intent["status"] == "requires_action", intent["status"]
            intent.pop("next_action", None)
            if succeed:
                intent["latest_charge"] = self._new_charge(intent, status="succeeded")["id"]
                intent["amount_received"] = intent["amount"]
                intent["status"] = "succeeded"
            else:
                intent["status"] = "requires_payment_method"
                intent["last_payment_error"] = {
                    "type": "card_error",
                    "code": "payment_intent_authentication_failure",
                    "message": "The provided PaymentMethod has failed authentication.",
                }
            return _public(intent)

    def refund_in_dashboard(self, intent_id):
        """An organiser refunds a payment in Stripe's dashboard; returns the Charge."""
        status, body = self._create_refund({"payment_intent": intent_id})
        assert status == 200, body
        return self.charges[body["charge"]]

    def requests_to(self, method, path):
        return [r for r in self.requests if r.method == method and r.path == path]

    def _take_fault(self, method, path):
        with self._lock:
            for fault in self._faults:
                if fault.method == method and fault.path == path and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    # --- dispatch -------------------------------------------------------------------------------

    def handle(self, method, path, headers, params, expand):
        """Return (status, body) for one request."""
        self.requests.append(RecordedRequest(method, path, headers, params, expand))
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            supplied = headers.get("Authorization", "").removeprefix("Bearer ")
            return 401, _error(
                "invalid_request_error",
                f"Invalid API Key provided: {supplied[:8]}****{supplied[-4:]}",
            )
        fault = self._take_fault(method, path)
        if fault is not None and not fault.after_processing:
            if fault.sleep:
                self._release.wait(fault.sleep)
                return 500, _error("api_error", "The request took too long.")
            return fault.status, {"error": fault.error}
        key = headers.get("Idempotency-Key") if method == "POST" else None
        if key is not None:
            status, body = self._idempotently(key, method, path, params, expand)
        else:
            status, body = self._route(method, path, params, expand)
        if fault is not None:
            self._release.wait(fault.sleep)
        return status, body

    def _idempotently(self, key, method, path, params, expand):
        with self._lock:
            earlier = self._idempotent.get(key)
        if earlier is not None:
            if earlier[:3] != (method, path, params):
                return 400, _error(
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                )
            return earlier[3], earlier[4]
        status, body = self._route(method, path, params, expand)
        if status < 500:
            with self._lock:
                self._idempotent[key] = (method, path, params, status, body)
        return status, body

    def _route(self, method, path, params, expand):
        if (method, path) == ("POST", "/v1/payment_intents"):
            return self._create_payment_intent(params)
        if (method, path) == ("GET", "/v1/payment_intents"):
            return self._list_payment_intents(params, expand)
        if (method, path) == ("GET", "/v1/payment_intents/search"):
            return self._search_payment_intents(params, expand)
        one = re.fullmatch(r"/v1/payment_intents/(pi_\w+)", path)
        if method == "GET" and one:
            return self._retrieve_payment_intent(one.group(1), expand)
        cancel = re.fullmatch(r"/v1/payment_intents/(pi_\w+)/cancel", path)
        if method == "POST" and cancel:
            return self._cancel_payment_intent(cancel.group(1))
        if (method, path) == ("POST", "/v1/refunds"):
            return self._create_refund(params)
        if (method, path) == ("GET", "/v1/refunds"):
            return self._list_refunds(params)
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method} {path}).")

    # --- PaymentIntents -------------------------------------------------------------------------

    def _create_payment_intent(self, params):
        payment_method = params.get("payment_method", "")
        if not payment_method.startswith("pm_"):
            return 400, _error(
                "invalid_request_error",
                f"No such PaymentMethod: '{payment_method}'",
                code="resource_missing",
                param="payment_method",
            )
        with self._lock:
            intent = {
                "id": f"pi_fake{next(self._ids)}",
                "object": "payment_intent",
                "amount": int(params["amount"]),
                "amount_received": 0,
                "currency": params["currency"],
                "description": params.get("description"),
                "metadata": _nested(params, "metadata"),
                "payment_method": payment_method,
                "status": "requires_payment_method",
                "latest_charge": None,
                "last_payment_error": None,
                "created": int(time.time()),
                "livemode": False,
                "_searchable": not self.search_lags,
            }
            intent["client_secret"] = f"{intent['id']}_secret_fake"
            self.payment_intents[intent["id"]] = intent
            if payment_method in DECLINES:
                code, decline_code, message = DECLINES[payment_method]
                charge = self._new_charge(intent, status="failed")
                intent["latest_charge"] = charge["id"]
                error = {
                    "type": "card_error",
                    "code": code,
                    "decline_code": decline_code,
                    "message": message,
                    "charge": charge["id"],
                    "payment_intent": _public(intent),
                }
                intent["last_payment_error"] = {k: error[k] for k in ("type", "code", "message")}
                return 402, {"error": error}
            if payment_method in NEEDS_AUTHENTICATION:
                intent["status"] = "requires_action"
                intent["next_action"] = {"type": "use_stripe_sdk"}
                return 200, _public(intent)
            charge = self._new_charge(intent, status="succeeded")
            intent["latest_charge"] = charge["id"]
            intent["amount_received"] = intent["amount"]
            intent["status"] = "succeeded"
            return 200, _public(intent)

    def _new_charge(self, intent, status):
        charge = {
            "id": f"ch_fake{next(self._ids)}",
            "object": "charge",
            "amount": intent["amount"],
            "amount_refunded": 0,
            "currency": intent["currency"],
            "paid": status == "succeeded",
            "payment_intent": intent["id"],
            "refunded": False,
            "status": status,
        }
        self.charges[charge["id"]] = charge
        return charge

    def _cancel_payment_intent(self, intent_id):
        with self._lock:
            intent = self.payment_intents.get(intent_id)
            if intent is None:
                return 404, _missing("payment_intent", intent_id)
            if intent["status"] == "succeeded":
                return 400, _error(
                    "invalid_request_error",
                    "You cannot cancel this PaymentIntent because it has a status of succeeded.",
                    code="payment_intent_unexpected_state",
                )
            intent["status"] = "canceled"
            return 200, _public(intent)

    def _retrieve_payment_intent(self, intent_id, expand):
        with self._lock:
            intent = self.payment_intents.get(intent_id)
            if intent is None:
                return 404, _missing("payment_intent", intent_id)
            return 200, self._expanded(intent, [f"data.{path}" for path in expand])

    def _list_payment_intents(self, params, expand):
        limit = int(params.get("limit", 10))
        since = int(params.get("created[gte]", 0))
        with self._lock:
            newest_first = [
                i for i in reversed(self.payment_intents.values()) if i["created"] >= since
            ]
            after = params.get("starting_after")
            if after:
                ids = [i["id"] for i in newest_first]
                newest_first = newest_first[ids.index(after) + 1 :]
            page = newest_first[:limit]
            data = [self._expanded(i, expand) for i in page]
        return 200, {
            "object": "list",
            "data": data,
            "has_more": len(newest_first) > limit,
            "url": "/v1/payment_intents",
        }

    def _search_payment_intents(self, params, expand):
        match = SEARCH_QUERY.match(params.get("query", ""))
        if match is None:
            return 400, _error("invalid_request_error", "Invalid search query.", param="query")
        key, value = match["key"], re.sub(r"\\(.)", r"\1", match["value"])
        with self._lock:
            found = [
                self._expanded(i, expand)
                for i in reversed(self.payment_intents.values())
                if i["_searchable"] and i["metadata"].get(key) == value
            ]
        return 200, {
            "object": "search_result",
            "data": found,
            "has_more": False,
            "next_page": None,
            "url": "/v1/payment_intents/search",
        }

    def _expanded(self, intent, expand):
        shown = _public(intent)
        if intent["latest_charge"] and "data.latest_charge" in _prefixes(expand):
            charge = dict(self.charges[intent["latest_charge"]])
            if self.expand_refunds and "data.latest_charge.refunds" in expand:
                refunds = [r for r in self.refunds.values() if r["charge"] == charge["id"]]
                charge["refunds"] = {
                    "object": "list",
                    "data": list(reversed(refunds)),
                    "has_more": False,
                    "url": f"/v1/charges/{charge['id']}/refunds",
                }
            shown["latest_charge"] = charge
        return shown

    # --- refunds --------------------------------------------------------------------------------

    def _create_refund(self, params):
        intent_id = params.get("payment_intent", "")
        with self._lock:
            intent = self.payment_intents.get(intent_id)
            if intent is None:
                return 404, _missing("payment_intent", intent_id, param="payment_intent")
            charge = self.charges.get(intent["latest_charge"] or "")
            if intent["status"] != "succeeded" or charge is None:
                return 400, _error(
                    "invalid_request_error",
                    f"This PaymentIntent ({intent_id}) does not have a successful charge to "
                    "refund.",
                    code="charge_not_refundable",
                )
            if charge["refunded"]:
                return 400, _error(
                    "invalid_request_error",
                    f"Charge {charge['id']} has already been refunded.",
                    code="charge_already_refunded",
                )
            refund = {
                "id": f"re_fake{next(self._ids)}",
                "object": "refund",
                "amount": charge["amount"],
                "charge": charge["id"],
                "currency": charge["currency"],
                "payment_intent": intent_id,
                "status": "succeeded",
            }
            self.refunds[refund["id"]] = refund
            charge["refunded"] = True
            charge["amount_refunded"] = charge["amount"]
            return 200, refund

    def _list_refunds(self, params):
        intent_id = params.get("payment_intent")
        with self._lock:
            data = [
                r
                for r in reversed(self.refunds.values())
                if intent_id is None or r["payment_intent"] == intent_id
            ][: int(params.get("limit", 10))]
        return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/refunds"}


def _public(intent):
    return {k: v for k, v in intent.items() if not k.startswith("_")}


def _prefixes(expand):
    prefixes = set()
    for path in expand:
        parts = path.split(".")
        prefixes.update(".".join(parts[:n]) for n in range(1, len(parts) + 1))
    return prefixes


def _nested(params, name):
    prefix = f"{name}["
    return {k[len(prefix) : -1]: v for k, v in params.items() if k.startswith(prefix)}


def _error(kind, message, code=None, param=None):
    error = {"type": kind, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return {"error": error}


def _missing(kind, identifier, param=None):
    return _error(
        "invalid_request_error", f"No such {kind}: '{identifier}'", "resource_missing", param
    )


def _handler_for(fake):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self._answer("GET")

        def do_POST(self):
            self._answer("POST")

        def _answer(self, method):
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            pairs = parse_qsl(url.query if method == "GET" else body, keep_blank_values=True)
            expand = [v for k, v in pairs if k == "expand[]" or re.fullmatch(r"expand\[\d*\]", k)]
            params = {k: v for k, v in pairs if not k.startswith("expand[")}
            status, payload = fake.handle(method, url.path, dict(self.headers), params, expand)
            encoded = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                self.send_header("Request-Id", f"req_fake{next(fake._ids)}")
                self.end_headers()
                self.wfile.write(encoded)
            except OSError:
                pass  # the client gave up waiting (a timeout under test)

        def log_message(self, format, *args):
            pass

    return Handler
