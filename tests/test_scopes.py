"""Every route the app serves, with the key scopes that may call it: a table that must name
every route and method the app has (a new route that forgets its scope fails here), walked with
no key, a wrong key, a revoked key, a key of each scope and a key of the settings.

Path ids are random, and bodies empty, so an allowed call stops at 404 or 400 and changes
nothing; what matters is whether the key got past the permission check (no 401, no 403).
"""

import uuid

import pytest
from webtest import TestApp

from ticketing import main
from ticketing.openapi import PATH_PARAMETER

from .conftest import app_settings
from .factories import create_key

SETTINGS_KEY = "settings-admin-key"
#: no key needed, and a key changes nothing
PUBLIC = frozenset()
#: no key needed; an admin or read key is shown more (drafts, hidden ticket types)
SHOWS_MORE = frozenset({"public", "admin", "read"})
ADMIN = frozenset({"admin"})
READ = frozenset({"admin", "read"})
CHECK_IN = frozenset({"admin", "checkin"})
#: the door's figures: read keys, and checkin keys (of their events)
SEE_CHECK_INS = frozenset({"admin", "read", "checkin"})

ACCESS = {
    ("GET", "/api/health"): PUBLIC,
    ("HEAD", "/api/health"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC,
    ("HEAD", "/api/openapi.json"): PUBLIC,
    ("GET", "/api/docs"): PUBLIC,
    ("HEAD", "/api/docs"): PUBLIC,
    ("GET", "/api/docs/init.js"): PUBLIC,
    ("HEAD", "/api/docs/init.js"): PUBLIC,
    ("GET", "api/docs/static/*subpath"): PUBLIC,
    ("GET", "/api/events"): SHOWS_MORE,
    ("HEAD", "/api/events"): SHOWS_MORE,
    ("POST", "/api/events"): ADMIN,
    ("GET", "/api/events/{id}"): SHOWS_MORE,
    ("HEAD", "/api/events/{id}"): SHOWS_MORE,
    ("PUT", "/api/events/{id}"): ADMIN,
    ("DELETE", "/api/events/{id}"): ADMIN,
    ("POST", "/api/events/{id}/publish"): ADMIN,
    ("GET", "/api/events/{id}/availability"): SHOWS_MORE,
    ("HEAD", "/api/events/{id}/availability"): SHOWS_MORE,
    ("GET", "/api/events/{id}/ticket-types"): SHOWS_MORE,
    ("HEAD", "/api/events/{id}/ticket-types"): SHOWS_MORE,
    ("POST", "/api/events/{id}/ticket-types"): ADMIN,
    ("GET", "/api/events/{id}/ticket-types/{ticket_type_id}"): SHOWS_MORE,
    ("HEAD", "/api/events/{id}/ticket-types/{ticket_type_id}"): SHOWS_MORE,
    ("PUT", "/api/events/{id}/ticket-types/{ticket_type_id}"): ADMIN,
    ("DELETE", "/api/events/{id}/ticket-types/{ticket_type_id}"): ADMIN,
    ("GET", "/api/events/{id}/promo-codes"): READ,
    ("HEAD", "/api/events/{id}/promo-codes"): READ,
    ("POST", "/api/events/{id}/promo-codes"): ADMIN,
    ("GET", "/api/events/{id}/promo-codes/{code_id}"): READ,
    ("HEAD", "/api/events/{id}/promo-codes/{code_id}"): READ,
    ("PUT", "/api/events/{id}/promo-codes/{code_id}"): ADMIN,
    ("DELETE", "/api/events/{id}/promo-codes/{code_id}"): ADMIN,
    ("POST", "/api/events/{id}/purchase"): PUBLIC,
    ("OPTIONS", "/api/events/{id}/purchase"): PUBLIC,
    ("POST", "/api/events/{id}/orders"): PUBLIC,
    ("OPTIONS", "/api/events/{id}/orders"): PUBLIC,
    ("GET", "/api/orders"): READ,
    ("HEAD", "/api/orders"): READ,
    ("GET", "/api/orders/{id}"): PUBLIC,
    ("HEAD", "/api/orders/{id}"): PUBLIC,
    ("OPTIONS", "/api/orders/{id}"): PUBLIC,
    ("POST", "/api/orders/{id}/cancel"): PUBLIC,
    ("POST", "/api/orders/{id}/pay"): PUBLIC,
    ("OPTIONS", "/api/orders/{id}/pay"): PUBLIC,
    ("POST", "/api/orders/{id}/release"): PUBLIC,
    ("OPTIONS", "/api/orders/{id}/release"): PUBLIC,
    # Stripe's: its signature, not a key, lets it in.
    ("POST", "/api/webhooks/stripe"): PUBLIC,
    ("GET", "/api/orders/{id}/tickets"): PUBLIC,
    ("HEAD", "/api/orders/{id}/tickets"): PUBLIC,
    ("GET", "/api/orders/{id}/tickets.pdf"): PUBLIC,
    ("HEAD", "/api/orders/{id}/tickets.pdf"): PUBLIC,
    ("PUT", "/api/tickets/{id}"): PUBLIC,
    ("POST", "/api/events/{id}/waiting-list"): PUBLIC,
    ("GET", "/api/events/{id}/waiting-list"): READ,
    ("HEAD", "/api/events/{id}/waiting-list"): READ,
    # The entry's UUID is its holder's proof, as an order's is.
    ("GET", "/api/waiting-list/{id}"): PUBLIC,
    ("HEAD", "/api/waiting-list/{id}"): PUBLIC,
    ("DELETE", "/api/waiting-list/{id}"): PUBLIC,
    ("GET", "/api/events/{id}/attendees"): READ,
    ("HEAD", "/api/events/{id}/attendees"): READ,
    ("POST", "/api/events/{id}/check-ins"): CHECK_IN,
    ("DELETE", "/api/check-ins/{id}"): CHECK_IN,
    ("GET", "/api/events/{id}/check-ins/stats"): SEE_CHECK_INS,
    ("HEAD", "/api/events/{id}/check-ins/stats"): SEE_CHECK_INS,
    ("GET", "/api/keys"): ADMIN,
    ("HEAD", "/api/keys"): ADMIN,
    ("POST", "/api/keys"): ADMIN,
    ("DELETE", "/api/keys/{id}"): ADMIN,
    ("GET", "/api/webhooks"): ADMIN,
    ("HEAD", "/api/webhooks"): ADMIN,
    ("POST", "/api/webhooks"): ADMIN,
    ("GET", "/api/webhooks/{id}"): ADMIN,
    ("HEAD", "/api/webhooks/{id}"): ADMIN,
    ("PUT", "/api/webhooks/{id}"): ADMIN,
    ("DELETE", "/api/webhooks/{id}"): ADMIN,
    ("POST", "/api/webhooks/{id}/rotate-secret"): ADMIN,
    ("GET", "/api/webhooks/{id}/deliveries"): ADMIN,
    ("HEAD", "/api/webhooks/{id}/deliveries"): ADMIN,
    ("POST", "/api/webhooks/{id}/deliveries/{delivery_id}/retry"): ADMIN,
}
SCOPES = ("admin", "read", "checkin")


def needs_a_key(access):
    return "public" not in access and access != PUBLIC


def served_routes(app):
    """(method, pattern) of every view the app serves, from Pyramid's own registry of routes
    and views (Cornice's catch-all 405 views, of no method, aside)."""
    served = set()
    for route in app.registry.introspector.get_category("routes"):
        # Placeholders as the document names them: {id}, not {id:[0-9a-fA-F-]+}.
        pattern = PATH_PARAMETER.sub(r"{\1}", route["introspectable"]["pattern"])
        methods = set()
        for view in route["related"]:
            if view.category_name != "views":
                continue
            declared = view["request_methods"]
            methods.update([declared] if isinstance(declared, str) else declared or ())
        # A static view answers whatever is asked of it: GET is what browsers ask.
        served.update((method, pattern) for method in methods or {"GET"})
    return served


@pytest.fixture
def app(dbengine):
    settings = app_settings(
        dbengine, **{"ticketing.require_api_key": "true", "ticketing.api_keys": SETTINGS_KEY}
    )
    return main({}, **settings)


@pytest.fixture
def keys(dbengine):
    """The Bearer headers to try: one key of each scope, a revoked key, a wrong one."""
    made = {scope: create_key(dbengine, scope)[1] for scope in SCOPES}
    made["revoked"] = create_key(dbengine, "admin", revoked=True)[1]
    made["settings"] = SETTINGS_KEY
    made["wrong"] = "tk_000000000000_" + "x" * 43
    return made


def test_the_table_names_every_route_and_method_the_app_serves(app):
    assert served_routes(app) == set(ACCESS)


def test_the_document_states_each_operation_s_scopes(app):
    document = TestApp(app).get("/api/openapi.json").json
    for path, item in document["paths"].items():
        for method, operation in item.items():
            access = ACCESS[(method.upper(), path)]
            expected = sorted(access - {"public"})
            assert sorted(operation.get("x-scopes", [])) == expected, (method, path)
            assert bool(operation["security"]) == bool(expected), (method, path)


def call(client, method, pattern, headers):
    path = PATH_PARAMETER.sub(lambda _: str(uuid.uuid4()), pattern)
    if not path.startswith("/"):
        path = "/" + path.replace("*subpath", "index.html")
    if method in ("POST", "PUT"):
        return client._gen_request(
            method, path, params="{}", headers={**headers, "Content-Type": "application/json"},
            status="*",
        )  # fmt: skip
    return getattr(client, method.lower())(path, headers=headers, status="*")


@pytest.mark.parametrize(("method", "pattern"), sorted(ACCESS))
def test_each_route_lets_in_exactly_the_scopes_of_the_table(app, keys, method, pattern):
    client = TestApp(app, extra_environ={"HTTP_HOST": "tickets.test"})
    access = ACCESS[(method, pattern)]

    def code(response):
        return None if method == "HEAD" else response.json["code"]

    anonymous = call(client, method, pattern, {})
    if not needs_a_key(access):
        # Anyone: no key, a wrong, a revoked, any scope's key, and none is refused for it.
        for name, key in keys.items():
            response = call(client, method, pattern, {"Authorization": f"Bearer {key}"})
            assert response.status_int not in (401, 403), (name, response)
        assert anonymous.status_int not in (401, 403)
        return

    assert anonymous.status_int == 401 and code(anonymous) in (None, "unauthorized")
    revoked = call(client, method, pattern, {"Authorization": f"Bearer {keys['revoked']}"})
    assert revoked.status_int == 401 and code(revoked) in (None, "key_revoked")
    wrong = call(client, method, pattern, {"Authorization": f"Bearer {keys['wrong']}"})
    assert wrong.status_int == 403 and code(wrong) in (None, "forbidden")
    settings = call(client, method, pattern, {"Authorization": f"Bearer {SETTINGS_KEY}"})
    assert settings.status_int not in (401, 403), settings
    for scope in SCOPES:
        response = call(client, method, pattern, {"Authorization": f"Bearer {keys[scope]}"})
        if scope in access:
            assert response.status_int not in (401, 403), (scope, response)
        else:
            assert response.status_int == 403, (scope, response)
            assert code(response) in (None, "insufficient_scope"), scope
