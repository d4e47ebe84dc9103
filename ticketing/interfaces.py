"""Contracts for the services the ticketing rules depend on.

An implementation is a class that declares ``@implementer(...)`` and offers a
``from_settings(settings)`` classmethod; ``ticketing.adapters`` picks one from the ini file at
configuration time and registers the instance in the registry under its interface.
"""

from zope.interface import Attribute, Interface


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
        :class:`ticketing.adapters.payments.Charge` whose status is ``succeeded``."""

    def refund(charge_id, idempotency_key):
        """Refund a charge in full; return the refund's reference."""

    def find_charge(idempotency_key):
        """Return the :class:`~ticketing.adapters.payments.Charge` made with ``idempotency_key``,
        or ``None`` when the gateway never took one; used to settle purchases left pending."""


class IEmailSender(Interface):
    """Hands email messages to a delivery service."""

    name = Attribute("Short name of the implementation, e.g. 'smtp' or 'console'.")

    def send(message):
        """Deliver one :class:`email.message.EmailMessage`; raise
        :class:`ticketing.domain.errors.EmailDeliveryError` when it could not be handed over."""
