"""Contracts for the services the ticketing rules depend on.

An implementation is a class that declares ``@implementer(...)`` and offers a
``from_settings(settings)`` classmethod; ``ticketing.adapters`` picks one from the ini file at
configuration time and registers the instance in the registry under its interface.
"""

import enum

from zope.interface import Attribute, Interface


class PaymentStatus(enum.StrEnum):
    """Where a payment stands at the gateway (Stripe's PaymentIntent statuses)."""

    SUCCEEDED = "succeeded"  # the money is taken
    REQUIRES_ACTION = "requires_action"  # the buyer must authenticate (3-D Secure) first
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"  # it failed; another card may be tried
    CANCELED = "canceled"  # given up; it can never take money
    PROCESSING = "processing"  # not decided yet


class IPaymentGateway(Interface):
    """Takes and returns money.

    Every operation that moves money carries an idempotency key: the same key always yields the
    same charge or refund, so any caller may safely retry. Failures are reported by raising
    :class:`ticketing.domain.errors.PaymentDeclined` (the customer's card said no) or
    :class:`ticketing.domain.errors.PaymentUnavailable` (timeout, network, or gateway error: the
    outcome is unknown, a retry with the same key is safe).
    """

    name = Attribute("Short name of the implementation, e.g. 'mock' or 'stripe'.")

    def charge(amount_cents, currency, idempotency_key, description, metadata, payment_method=None):
        """Charge ``amount_cents`` (integer minor units) in ``currency`` and return a
        :class:`ticketing.adapters.payments.Charge` whose status is ``succeeded``, or
        ``requires_action`` (with ``client_secret`` and ``next_action``) when the buyer must
        authenticate first: its outcome arrives later, by the gateway's webhook."""

    def refund(charge_id, idempotency_key):
        """Refund a charge in full; return the refund's reference."""

    def find_charge(idempotency_key):
        """Return the :class:`~ticketing.adapters.payments.Charge` made with ``idempotency_key``,
        or ``None`` when the gateway never took one; used to settle purchases left pending."""

    def retrieve_payment(charge_id):
        """The payment ``charge_id`` as the gateway sees it now (a
        :class:`~ticketing.adapters.payments.Charge` with its current ``status``): what a webhook
        acts on, never the webhook's own payload."""

    def cancel_payment(charge_id):
        """Cancel a payment that has not taken money, so that it never can; return it as it is
        afterwards (``succeeded`` if it took the money first)."""


class IEmailSender(Interface):
    """Hands email messages to a delivery service."""

    name = Attribute("Short name of the implementation, e.g. 'smtp' or 'console'.")

    def send(message):
        """Deliver one :class:`email.message.EmailMessage`; raise
        :class:`ticketing.domain.errors.EmailDeliveryError` when it could not be handed over."""
