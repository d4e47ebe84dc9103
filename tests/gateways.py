"""Payment gateways for tests that need to stop a payment in the middle. They are registered in
the app's registry like any adapter."""

import threading

from zope.interface import implementer

from ticketing.adapters.payments import MockPaymentGateway
from ticketing.interfaces import IPaymentGateway


@implementer(IPaymentGateway)
class GatedPaymentGateway(MockPaymentGateway):
    """Holds the first charge until ``release`` is set; ``holding`` says it has arrived."""

    def __init__(self):
        super().__init__()
        self.holding = threading.Event()
        self.release = threading.Event()
        self._first = threading.Lock()

    def charge(
        self, amount_cents, currency, idempotency_key, description, metadata, payment_method=None
    ):
        if self._first.acquire(blocking=False):
            self.holding.set()
            if not self.release.wait(timeout=30):
                raise AssertionError("the held charge was never released")
        return super().charge(
            amount_cents, currency, idempotency_key, description, metadata, payment_method
        )


@implementer(IPaymentGateway)
class OverlongReferenceGateway(MockPaymentGateway):
    """Takes the money, then answers with a reference the database refuses to store: the
    confirmation fails after the charge went through."""

    def charge(
        self, amount_cents, currency, idempotency_key, description, metadata, payment_method=None
    ):
        charge = super().charge(
            amount_cents, currency, idempotency_key, description, metadata, payment_method
        )
        charge.id = "ch_" + "x" * 300
        return charge
