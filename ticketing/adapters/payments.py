"""Payment gateways."""

import itertools
import threading
import time
from dataclasses import dataclass, field

from pyramid.exceptions import ConfigurationError
from zope.interface import implementer

from ticketing.domain.errors import PaymentDeclined, PaymentUnavailable
from ticketing.interfaces import IPaymentGateway
from ticketing.settings import as_int


@dataclass
class Charge:
    id: str
    amount_cents: int
    currency: str
    idempotency_key: str
    metadata: dict = field(default_factory=dict)
    refund_id: str | None = None

    @property
    def refunded(self):
        return self.refund_id is not None


@implementer(IPaymentGateway)
class MockPaymentGateway:
    """An in-memory gateway that keeps a ledger of charges and refunds.

    It honours idempotency keys like a real gateway, and can be told to fail or to be slow:

    - ``card_declined``: every charge is declined;
    - ``timeout``: the call times out before the gateway takes the money;
    - ``timeout_after_charge``: the gateway takes the money, but the answer never arrives;
    - ``server_error``: the gateway answers with an internal error and takes nothing.

    ``failure_mode`` applies to charges, ``refund_failure_mode`` to refunds and
    ``lookup_failure_mode`` to :meth:`find_charge`. Each application builds its own instance, so
    no state is shared between apps (or tests).
    """

    name = "mock"
    FAILURE_MODES = frozenset({"card_declined", "timeout", "timeout_after_charge", "server_error"})

    def __init__(
        self, failure_mode=None, refund_failure_mode=None, lookup_failure_mode=None, latency_ms=0
    ):
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.charges = {}
        self.refunds = {}
        self.calls = []
        self.configure(failure_mode, refund_failure_mode, lookup_failure_mode, latency_ms)

    @classmethod
    def from_settings(cls, settings):
        return cls(
            failure_mode=settings.get("payments.mock.failure_mode") or None,
            refund_failure_mode=settings.get("payments.mock.refund_failure_mode") or None,
            lookup_failure_mode=settings.get("payments.mock.lookup_failure_mode") or None,
            latency_ms=as_int(settings, "payments.mock.latency_ms", 0),
        )

    def configure(
        self, failure_mode=None, refund_failure_mode=None, lookup_failure_mode=None, latency_ms=0
    ):
        for mode in (failure_mode, refund_failure_mode, lookup_failure_mode):
            if mode is not None and mode not in self.FAILURE_MODES:
                raise ConfigurationError(
                    f"unknown mock payment failure mode {mode!r}; "
                    f"known: {', '.join(sorted(self.FAILURE_MODES))}"
                )
        self.failure_mode = failure_mode
        self.refund_failure_mode = refund_failure_mode
        self.lookup_failure_mode = lookup_failure_mode
        self.latency_ms = latency_ms

    def charge(
        self, amount_cents, currency, idempotency_key, description, metadata, payment_method=None
    ):
        self._wait()
        with self._lock:
            self.calls.append(("charge", idempotency_key, amount_cents))
            self._fail_before("charge", self.failure_mode)
            existing = self.charges.get(idempotency_key)
            if existing is None:
                existing = Charge(
                    id=f"ch_mock_{next(self._ids)}",
                    amount_cents=amount_cents,
                    currency=currency,
                    idempotency_key=idempotency_key,
                    metadata=dict(metadata or {}),
                )
                self.charges[idempotency_key] = existing
            elif existing.amount_cents != amount_cents:
                # What Stripe does when a key is replayed with different parameters.
                raise PaymentUnavailable("idempotency key reused with a different amount")
            if self.failure_mode == "timeout_after_charge":
                raise PaymentUnavailable("payment gateway timed out")
            return existing

    def refund(self, charge_id, idempotency_key):
        self._wait()
        with self._lock:
            self.calls.append(("refund", idempotency_key, charge_id))
            self._fail_before("refund", self.refund_failure_mode)
            refund_id = self.refunds.get(idempotency_key)
            if refund_id is None:
                charge = next((c for c in self.charges.values() if c.id == charge_id), None)
                if charge is None:
                    raise PaymentUnavailable(f"no such charge {charge_id}")
                if charge.refunded:
                    # A second refund with another key: a real gateway refuses it too.
                    raise PaymentUnavailable(f"charge {charge_id} is already refunded")
                refund_id = f"re_mock_{next(self._ids)}"
                charge.refund_id = refund_id
                self.refunds[idempotency_key] = refund_id
            if self.refund_failure_mode == "timeout_after_charge":
                raise PaymentUnavailable("payment gateway timed out")
            return refund_id

    def find_charge(self, idempotency_key):
        self._wait()
        with self._lock:
            self.calls.append(("find_charge", idempotency_key, None))
            self._fail_before("find_charge", self.lookup_failure_mode)
            return self.charges.get(idempotency_key)

    def kept_charges(self):
        """Charges that took money and were not refunded."""
        with self._lock:
            return [charge for charge in self.charges.values() if not charge.refunded]

    def _wait(self):
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)

    @staticmethod
    def _fail_before(operation, mode):
        if mode == "card_declined" and operation == "charge":
            raise PaymentDeclined("Your card was declined.", decline_code="generic_decline")
        if mode == "timeout":
            raise PaymentUnavailable("payment gateway timed out")
        if mode == "server_error":
            raise PaymentUnavailable("payment gateway error")
