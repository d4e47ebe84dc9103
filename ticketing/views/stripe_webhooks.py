"""Stripe's webhook: the outcome of payments that finish later (3-D Secure), and refunds made in
Stripe's dashboard.

Each event's ``Stripe-Signature`` is verified by the official library
(:meth:`stripe.Webhook.construct_event`, with its default tolerance of 300 s) against the setting
``stripe.webhook_secret`` (production: ``STRIPE_WEBHOOK_SECRET``), over the raw body; a bad or
old signature is 400 and changes nothing. The event only names the payment: the domain fetches
it from the gateway before acting (``ticketing.domain.payments_async``). The mock gateway's
webhooks (``ticketing.adapters.mock_webhooks``) come through this same view.
"""

import logging

import colander
import stripe

from ticketing.domain import payments_async
from ticketing.domain.errors import PaymentUnavailable, WebhookSignatureInvalid
from ticketing.models.types import utcnow
from ticketing.openapi import Success, api_doc

from . import ApiService
from .schemas import StrictMappingSchema

log = logging.getLogger(__name__)

#: the events this app acts on; any other is acknowledged and ignored
HANDLED_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.requires_action",
        "charge.refunded",
    }
)

stripe_webhook = ApiService(
    name="stripe_webhook", path="/api/webhooks/stripe", description="Stripe's events"
)


class Received(StrictMappingSchema):
    received = colander.SchemaNode(colander.Boolean())
    outcome = colander.SchemaNode(
        colander.String(),
        description="What the event did: confirmed, refunded, back_to_hold, failed, cancelled, "
        "duplicate (seen before), or ignored.",
    )


def payment_id_of(event):
    """The PaymentIntent an event is about: the object itself, or a charge's intent."""
    data = event.data.object.to_dict()
    if data.get("object") == "payment_intent":
        return data.get("id")
    if data.get("object") == "charge":
        return data.get("payment_intent")
    return None


@stripe_webhook.post()
@api_doc(
    Success(200, "The event was processed (or had been before).", Received(), wrap=False),
    raises=(WebhookSignatureInvalid, PaymentUnavailable),
)
def receive_stripe_event(request):
    """Receive a Stripe event

    Called by Stripe, signed with `Stripe-Signature`. A redelivered event answers 200 and does
    nothing; while the payment service cannot be reached, 503, and Stripe delivers it again
    later.
    """
    secret = request.registry.settings.get("stripe.webhook_secret")
    if not secret:
        raise WebhookSignatureInvalid("No stripe.webhook_secret is configured to verify it.")
    try:
        event = stripe.Webhook.construct_event(
            request.body, request.headers.get("Stripe-Signature", ""), secret
        )
    except (stripe.SignatureVerificationError, ValueError) as error:
        raise WebhookSignatureInvalid(str(error).split("\n")[0]) from None
    if event.type not in HANDLED_EVENTS:
        return {"received": True, "outcome": "ignored"}
    try:
        outcome = payments_async.process_gateway_event(
            request.dbsession,
            request.tm,
            request.payment_gateway,
            event.id,
            event.type,
            payment_id_of(event),
            now=utcnow(),
            hold_for=request.registry["hold_for"],
            ticket_codes=request.ticket_codes,
        )
    except PaymentUnavailable:
        log.warning("stripe event %s (%s): payment service unavailable", event.id, event.type)
        raise
    log.info("stripe event %s (%s): %s", event.id, event.type, outcome)
    return {"received": True, "outcome": outcome}
