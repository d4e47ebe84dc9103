"""The webhooks Stripe would send, for the mock gateway: development and tests complete a
payment's 3-D Secure with :func:`complete_payment_action`, and the event it causes is signed with
Stripe's own scheme (``stripe.WebhookSignature``) and delivered through the app's real webhook
view, so the mock path runs the Stripe path's code. No route of the app does this: it is called
from ``pshell`` and from tests, in-process."""

import json
import time
import uuid

import stripe
from pyramid.request import Request

from ticketing.interfaces import PaymentStatus

WEBHOOK_PATH = "/api/webhooks/stripe"

#: the event Stripe sends for each outcome of an authentication
EVENT_OF = {
    PaymentStatus.SUCCEEDED: "payment_intent.succeeded",
    PaymentStatus.REQUIRES_PAYMENT_METHOD: "payment_intent.payment_failed",
    PaymentStatus.CANCELED: "payment_intent.canceled",
}


def payment_intent_event(event_type, payment, event_id=None):
    """A Stripe event about ``payment`` (a :class:`~ticketing.adapters.payments.Charge`), as
    Stripe shapes it; its payload says what Stripe's would, which the app does not trust."""
    return {
        "id": event_id or f"evt_mock_{uuid.uuid4().hex}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "type": event_type,
        "data": {
            "object": {
                "id": payment.id,
                "object": "payment_intent",
                "amount": payment.amount_cents,
                "currency": payment.currency.lower(),
                "status": str(payment.status),
                "metadata": dict(payment.metadata or {}),
            }
        },
    }


def signed(event, secret, timestamp=None):
    """(body, ``Stripe-Signature`` header) of ``event``, signed as Stripe signs."""
    body = json.dumps(event)
    return body, stripe.WebhookSignature.generate_signature_header(body, secret, timestamp)


def deliver(app, event, secret, timestamp=None):
    """Post ``event``, signed, to the app's webhook view, as Stripe would; return the response."""
    body, signature = signed(event, secret, timestamp)
    request = Request.blank(
        WEBHOOK_PATH,
        method="POST",
        body=body.encode(),
        content_type="application/json",
        headers={"Stripe-Signature": signature},
    )
    return request.get_response(app)


def complete_payment_action(app, gateway, payment_id, succeed=True):
    """Play the buyer's 3-D Secure on the mock ``gateway`` (it succeeds or fails), then deliver
    the webhook Stripe would send about it; return the webhook's response."""
    payment = gateway.complete_action(payment_id, succeed=succeed)
    secret = app.registry.settings.get("stripe.webhook_secret")
    return deliver(app, payment_intent_event(EVENT_OF[payment.status], payment), secret)
