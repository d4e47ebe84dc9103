"""Managing webhooks over HTTP (admin scope: tests/test_scopes.py), and the SSRF guard at
registration in production mode (``webhooks.allow_private_targets = false``)."""

import base64
import datetime as dt
import uuid

import pytest
from webtest import TestApp

from ticketing import main
from ticketing.events import LOGGED_TYPES
from ticketing.plugins.webhooks.targets import IHostResolver

from .conftest import app_settings
from .receivers import NamesResolver

RECEIVER = "http://127.0.0.1:9/hooks"


def register(testapp, url=RECEIVER, events=("order.confirmed",), status=201, **fields):
    body = {"webhook": {"url": url, "events": list(events), **fields}}
    return testapp.post_json("/api/webhooks", body, status=status)


def test_a_webhook_is_made_with_its_secret_shown_once(testapp):
    made = register(testapp, description="CRM")

    shown = made.json["data"]
    assert made.location == f"http://tickets.test/api/webhooks/{shown['id']}"
    assert shown["secret"].startswith("whsec_")
    assert len(base64.b64decode(shown["secret"].removeprefix("whsec_"))) == 32
    assert shown["events"] == ["order.confirmed"] and shown["description"] == "CRM"
    assert shown["enabled"] is True and shown["disabled_reason"] is None
    read = testapp.get(f"/api/webhooks/{shown['id']}").json["data"]
    assert "secret" not in read
    assert read == {name: value for name, value in shown.items() if name != "secret"}
    listed = testapp.get("/api/webhooks").json
    assert listed == {"data": [read], "meta": {"next_cursor": None}}


def test_a_webhook_is_changed_disabled_enabled_and_deleted(testapp):
    webhook_id = register(testapp).json["data"]["id"]
    path = f"/api/webhooks/{webhook_id}"

    changed = testapp.put_json(
        path, {"webhook": {"events": ["order.cancelled", "order.confirmed"]}}
    )
    assert changed.json["data"]["events"] == ["order.confirmed", "order.cancelled"]
    disabled = testapp.put_json(path, {"webhook": {"enabled": False}}).json["data"]
    assert disabled["enabled"] is False and disabled["disabled_reason"] == "disabled by an admin"
    assert disabled["disabled_at"] is not None
    enabled = testapp.put_json(path, {"webhook": {"enabled": True}}).json["data"]
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None

    testapp.delete(path, status=204)
    assert testapp.get(path, status=404).json["code"] == "webhook_not_found"


def test_rotating_keeps_the_previous_secret_for_a_day(testapp):
    made = register(testapp).json["data"]

    rotated = testapp.post(f"/api/webhooks/{made['id']}/rotate-secret", status=200).json["data"]

    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != made["secret"]
    expires = dt.datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert abs(expires - (dt.datetime.now(dt.UTC) + dt.timedelta(hours=24))) < dt.timedelta(
        minutes=1
    )


@pytest.mark.parametrize(
    ("webhook", "field"),
    [
        ({"url": RECEIVER, "events": ["order.paid"]}, "webhook.events.0"),
        ({"url": RECEIVER, "events": []}, "webhook.events"),
        ({"url": RECEIVER, "events": ["order.reserved"]}, "webhook.events.0"),
        ({"events": ["order.confirmed"]}, "webhook.url"),
        ({"url": RECEIVER, "events": ["order.confirmed"], "secret": "mine"}, "webhook.secret"),
    ],
)
def test_a_malformed_webhook_is_refused_naming_the_field(testapp, webhook, field):
    refused = testapp.post_json("/api/webhooks", {"webhook": webhook}, status=400)
    assert refused.json["code"] == "validation_failed"
    assert field in [error["field"] for error in refused.json["errors"]]


def test_every_logged_type_can_be_subscribed_to(testapp):
    shown = register(testapp, events=LOGGED_TYPES).json["data"]
    assert shown["events"] == list(LOGGED_TYPES)


def test_unknown_ids_answer_404_with_their_own_codes(testapp):
    webhook_id = register(testapp).json["data"]["id"]
    unknown = uuid.uuid4()
    for call in (
        lambda: testapp.get(f"/api/webhooks/{unknown}", status=404),
        lambda: testapp.get(f"/api/webhooks/{unknown}/deliveries", status=404),
        lambda: testapp.post(f"/api/webhooks/{unknown}/rotate-secret", status=404),
        lambda: testapp.get("/api/webhooks/not-a-uuid", status=404),
    ):
        assert call().json["code"] in ("webhook_not_found", "not_found")
    missing = testapp.post(f"/api/webhooks/{webhook_id}/deliveries/{unknown}/retry", status=404)
    assert missing.json["code"] == "delivery_not_found"


def test_a_disabled_webhook_delivers_nothing_again_until_enabled(testapp):
    webhook_id = register(testapp).json["data"]["id"]
    testapp.put_json(f"/api/webhooks/{webhook_id}", {"webhook": {"enabled": False}})

    refused = testapp.post(
        f"/api/webhooks/{webhook_id}/deliveries/{uuid.uuid4()}/retry", status=409
    )

    assert refused.json["code"] == "webhook_disabled"


def test_the_stripe_receiver_s_path_is_never_taken_for_a_webhook(testapp):
    # /api/webhooks/stripe belongs to the Stripe receiver: these routes take ids of a UUID's
    # characters only, so none of them answers for it, whatever the method.
    for method in ("get", "put", "delete"):
        answer = getattr(testapp, method)("/api/webhooks/stripe", status=405)
        assert answer.json["code"] == "method_not_allowed"
        assert answer.headers["Allow"] == "POST"
    unsigned = testapp.post_json("/api/webhooks/stripe", {"type": "ping"}, status=400)
    assert unsigned.json["code"] == "webhook_signature_invalid"


# --- production mode: the SSRF guard at registration ---------------------------------------

PUBLIC = "93.184.216.34"


@pytest.fixture
def production(dbengine):
    app = main({}, **app_settings(dbengine, **{"webhooks.allow_private_targets": "false"}))
    app.registry.registerUtility(
        NamesResolver(
            {
                "hooks.example.com": [PUBLIC],
                "internal.example.com": ["10.0.0.1"],
                "metadata.example.com": ["169.254.169.254"],
                "loopback.example.com": ["127.0.0.1"],
                "mixed.example.com": [PUBLIC, "192.168.1.20"],
                "mapped.example.com": ["::ffff:127.0.0.1"],
            }
        ),
        IHostResolver,
    )
    return TestApp(app, extra_environ={"HTTP_HOST": "tickets.test"})


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://10.0.0.1/hooks",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hooks",
        "https://localhost/hooks",
        "https://loopback.example.com/hooks",
        "https://internal.example.com/hooks",
        "https://metadata.example.com/hooks",
        "https://mixed.example.com/hooks",
        "https://mapped.example.com/hooks",
        "http://hooks.example.com/hooks",
        "ftp://hooks.example.com/hooks",
        "https:///hooks",
    ],
)
def test_production_refuses_urls_that_are_not_https_to_a_public_address(production, url):
    refused = register(production, url=url, status=400)

    assert refused.json["code"] == "webhook_url_refused"
    assert production.get("/api/webhooks").json["data"] == []


def test_production_takes_an_https_url_on_a_public_address(production):
    assert register(production, url="https://hooks.example.com/hooks").json["data"]["enabled"]


def test_production_refuses_a_change_of_url_to_a_private_address(production):
    webhook_id = register(production, url="https://hooks.example.com/hooks").json["data"]["id"]

    refused = production.put_json(
        f"/api/webhooks/{webhook_id}",
        {"webhook": {"url": "https://internal.example.com/hooks"}},
        status=400,
    )

    assert refused.json["code"] == "webhook_url_refused"
    assert "10.0.0.1" in refused.json["detail"]
