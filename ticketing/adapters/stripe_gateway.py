"""Payments through Stripe (``ticketing.payments = stripe``), on the official ``stripe`` package.

A charge is a PaymentIntent created and confirmed in one call, for the order's total in cents,
with the order's ids and the charge's idempotency key in its metadata and that key as Stripe's
``Idempotency-Key``: a retry of any kind is answered with the first attempt's PaymentIntent. A
refund is a Refund of the PaymentIntent, with its own key.

Settings (``stripe.api_key`` is required; production reads it from ``STRIPE_SECRET_KEY``):

- ``stripe.api_key``: the secret key;
- ``stripe.api_base``: another server to talk to (a fake in tests, a mock server in staging);
- ``stripe.timeout_seconds`` (default 10): the HTTP timeout of each attempt;
- ``stripe.max_network_retries`` (default 2): retries of connection errors, 409s and 5xx, always
  with the same idempotency key.

Outcomes map to the domain's errors:

- a card error (HTTP 402) is :class:`PaymentDeclined` with Stripe's ``decline_code`` (or its error
  code) in ``extra["decline_code"]``; a charge without a ``payment_method`` is declined before
  any call, with ``decline_code="payment_method_required"``, and so is a ``payment_method``
  Stripe does not know (``"invalid_payment_method"``);
- a card that needs 3-D Secure answers ``requires_action``: the charge comes back with that
  status, the PaymentIntent's ``client_secret`` and ``next_action``, for the buyer's browser to
  finish with Stripe.js; the outcome arrives by webhook (``ticketing.views.stripe_webhooks``,
  verified with ``stripe.webhook_secret``, required, from ``STRIPE_WEBHOOK_SECRET``);
- no answer (refused connection, timeout) is :class:`PaymentUnavailable`;
- anything else Stripe refuses or fails at (5xx, invalid request, bad key, rate limit...) is
  logged with Stripe's details and raised as a :class:`PaymentUnavailable` whose message says
  nothing of them.
"""

import logging
import time
from contextlib import contextmanager

import stripe
from pyramid.exceptions import ConfigurationError
from zope.interface import implementer

from ticketing.adapters.payments import REQUIRES_ACTION, SUCCEEDED, Charge
from ticketing.domain.errors import PaymentDeclined, PaymentUnavailable
from ticketing.interfaces import IPaymentGateway
from ticketing.settings import as_float, as_int, require

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_NETWORK_RETRIES = 2

#: the metadata entry that makes a PaymentIntent findable by the charge's idempotency key
KEY_METADATA = "idempotency_key"
#: what find_charge asks Stripe to expand: the charge of each intent, and its refunds
EXPAND = ["data.latest_charge.refunds"]


@implementer(IPaymentGateway)
class StripePaymentGateway:
    """Charges, refunds and lookups on Stripe; see the module's documentation."""

    name = "stripe"

    def __init__(
        self,
        api_key,
        *,
        api_base=None,
        timeout_seconds=DEFAULT_TIMEOUT_SECONDS,
        max_network_retries=DEFAULT_MAX_NETWORK_RETRIES,
        lookup_window_seconds=3600,
        lookup_max_pages=10,
    ):
        if not api_key or not str(api_key).strip():
            raise ConfigurationError("missing setting 'stripe.api_key'")
        if not timeout_seconds > 0:
            raise ConfigurationError("setting 'stripe.timeout_seconds' must be above 0")
        if max_network_retries < 0:
            raise ConfigurationError("setting 'stripe.max_network_retries' must be 0 or more")
        self.api_base = (api_base or stripe.DEFAULT_API_BASE).rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.max_network_retries = max_network_retries
        #: how far back find_charge lists PaymentIntents when search has not indexed one yet
        self.lookup_window_seconds = lookup_window_seconds
        #: how many pages of 100 it lists before it gives up and says it cannot tell
        self.lookup_max_pages = lookup_max_pages
        self._client = stripe.StripeClient(
            str(api_key).strip(),
            base_addresses={"api": self.api_base},
            max_network_retries=max_network_retries,
            # The requests client keeps one session per thread: safe to share between requests.
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )

    @classmethod
    def from_settings(cls, settings):
        api_key = require(
            settings, "stripe.api_key", " (set the STRIPE_SECRET_KEY environment variable)"
        )
        # The webhook view verifies Stripe's events with it: without it, no 3-D Secure payment
        # could ever be confirmed, so a Stripe deployment without it must not start.
        require(
            settings,
            "stripe.webhook_secret",
            " (set the STRIPE_WEBHOOK_SECRET environment variable)",
        )
        return cls(
            api_key=api_key,
            api_base=str(settings.get("stripe.api_base") or "").strip() or None,
            timeout_seconds=as_float(settings, "stripe.timeout_seconds", DEFAULT_TIMEOUT_SECONDS),
            max_network_retries=as_int(
                settings, "stripe.max_network_retries", DEFAULT_MAX_NETWORK_RETRIES
            ),
        )

    def __repr__(self):
        return f"<StripePaymentGateway api_base={self.api_base!r}>"  # never the key

    # --- IPaymentGateway ------------------------------------------------------------------------

    def charge(
        self, amount_cents, currency, idempotency_key, description, metadata, payment_method=None
    ):
        if not payment_method:
            raise PaymentDeclined(
                "A payment_method is required.", decline_code="payment_method_required"
            )
        params = {
            "amount": amount_cents,
            "currency": currency.lower(),
            "confirm": True,
            "payment_method": payment_method,
            "description": description,
            "metadata": {
                **{str(k): str(v) for k, v in (metadata or {}).items()},
                KEY_METADATA: idempotency_key,
            },
            # Cards are confirmed here, server-side: no payment method that needs a redirect.
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
        with self._translated_errors("charge", idempotency_key):
            intent = self._client.v1.payment_intents.create(
                params, options={"idempotency_key": idempotency_key}
            ).to_dict()
        status = intent.get("status")
        if status == "succeeded":
            return self._charge_of(intent, idempotency_key)
        if status == "processing":
            raise PaymentUnavailable("The payment is still being processed.")
        if status == REQUIRES_ACTION:
            return self._payment_of(intent, idempotency_key)
        # Any other state took no money and cannot take it without the buyer: cancel, so the
        # intent can never complete.
        self._cancel(intent, idempotency_key)
        log.error("stripe charge %s: unexpected PaymentIntent status %r", idempotency_key, status)
        raise PaymentDeclined("The payment was not completed.", decline_code="incomplete")

    def refund(self, charge_id, idempotency_key):
        with self._translated_errors("refund", idempotency_key):
            refund = self._client.v1.refunds.create(
                {"payment_intent": charge_id}, options={"idempotency_key": idempotency_key}
            ).to_dict()
        if refund.get("status") in ("failed", "canceled"):
            log.error(
                "stripe refund %s of %s: status %r", refund.get("id"), charge_id, refund["status"]
            )
            raise PaymentUnavailable("The payment service could not make the refund.")
        return refund["id"]

    def find_charge(self, idempotency_key):
        """The PaymentIntent whose metadata carries ``idempotency_key``, as a :class:`Charge`.

        Search finds it by metadata, but Stripe's search index lags (usually under a minute,
        longer in incidents), and the purchase asks right after a charge that timed out. So when
        search finds nothing, the intents of the last ``lookup_window_seconds`` are listed too
        (the list API is consistent at once). ``None`` is returned only when both agree there is
        none; when the listing would take more than ``lookup_max_pages`` pages, or an intent is
        still processing, :class:`PaymentUnavailable` says the answer is not known yet.
        """
        with self._translated_errors("find_charge", idempotency_key):
            intents = self._search(idempotency_key) or self._list_recent(idempotency_key)
            return self._charge_among(intents, idempotency_key)

    def retrieve_payment(self, charge_id):
        with self._translated_errors("retrieve_payment", charge_id):
            intent = self._client.v1.payment_intents.retrieve(
                charge_id, {"expand": ["latest_charge.refunds"]}
            ).to_dict()
        return self._payment_of(intent, (intent.get("metadata") or {}).get(KEY_METADATA))

    def cancel_payment(self, charge_id):
        try:
            with self._translated_errors("cancel_payment", charge_id):
                self._client.v1.payment_intents.cancel(
                    charge_id, options={"idempotency_key": f"{charge_id}-cancel"}
                )
        except PaymentUnavailable as error:
            # Stripe refuses to cancel an intent that succeeded meanwhile: say what it is now.
            if not isinstance(error.__cause__, stripe.InvalidRequestError):
                raise
        return self.retrieve_payment(charge_id)

    def _payment_of(self, intent, idempotency_key):
        """Any PaymentIntent as a :class:`Charge` carrying its status (and, while it waits for
        the buyer, its client secret and next action)."""
        if intent.get("status") == SUCCEEDED:
            return self._charge_of(intent, idempotency_key)
        metadata = {k: v for k, v in (intent.get("metadata") or {}).items() if k != KEY_METADATA}
        return Charge(
            id=intent["id"],
            amount_cents=intent["amount"],
            currency=intent["currency"].upper(),
            idempotency_key=idempotency_key,
            metadata=metadata,
            status=intent.get("status"),
            client_secret=intent.get("client_secret"),
            next_action=intent.get("next_action"),
        )

    # --- lookups --------------------------------------------------------------------------------

    def _search(self, idempotency_key):
        quoted = idempotency_key.replace("\\", "\\\\").replace("'", "\\'")
        result = self._client.v1.payment_intents.search(
            {"query": f"metadata['{KEY_METADATA}']:'{quoted}'", "limit": 10, "expand": EXPAND}
        ).to_dict()
        return result.get("data") or []

    def _list_recent(self, idempotency_key):
        params = {
            "limit": 100,
            "created": {"gte": int(time.time()) - self.lookup_window_seconds},
            "expand": EXPAND,
        }
        for _ in range(self.lookup_max_pages):
            page = self._client.v1.payment_intents.list(params).to_dict()
            data = page.get("data") or []
            found = [
                i for i in data if (i.get("metadata") or {}).get(KEY_METADATA) == idempotency_key
            ]
            if found:
                return found
            if not page.get("has_more") or not data:
                return []
            params["starting_after"] = data[-1]["id"]
        log.warning(
            "stripe find_charge %s: not indexed by search, and more than %d recent "
            "PaymentIntents to list; left for a later lookup",
            idempotency_key,
            self.lookup_max_pages * 100,
        )
        raise PaymentUnavailable("The payment service could not tell yet whether it was charged.")

    def _charge_among(self, intents, idempotency_key):
        succeeded = [
            self._charge_of(intent, idempotency_key)
            for intent in intents
            if intent.get("status") == "succeeded"
        ]
        kept = [charge for charge in succeeded if not charge.refunded]
        if kept:
            return kept[0]
        if any(intent.get("status") == "processing" for intent in intents):
            raise PaymentUnavailable("The payment is still being processed.")
        return succeeded[0] if succeeded else None

    def _charge_of(self, intent, idempotency_key):
        """A :class:`Charge` for a succeeded PaymentIntent, with ``refund_id`` when refunded."""
        metadata = {k: v for k, v in (intent.get("metadata") or {}).items() if k != KEY_METADATA}
        charge = Charge(
            id=intent["id"],
            amount_cents=intent["amount"],
            currency=intent["currency"].upper(),
            idempotency_key=idempotency_key,
            metadata=metadata,
        )
        latest = intent.get("latest_charge")  # an object where expanded, else its id
        if isinstance(latest, dict) and latest.get("refunded"):
            refunds = (latest.get("refunds") or {}).get("data") or []
            charge.refund_id = refunds[0]["id"] if refunds else self._refund_id_of(intent["id"])
        return charge

    def _refund_id_of(self, intent_id):
        # Only where the refunds were not expanded; a refunded intent always has one.
        refunds = self._client.v1.refunds.list({"payment_intent": intent_id, "limit": 1})
        data = refunds.to_dict().get("data") or []
        return data[0]["id"] if data else f"refunded:{intent_id}"

    def _cancel(self, intent, idempotency_key):
        try:
            self._client.v1.payment_intents.cancel(
                intent["id"], options={"idempotency_key": f"{idempotency_key}-cancel"}
            )
        except stripe.StripeError as error:
            # Left as it is, it cannot take money either: nobody holds its client secret.
            log.warning(
                "stripe charge %s: could not cancel %s (%s)",
                idempotency_key,
                intent["id"],
                type(error).__name__,
            )

    # --- errors ---------------------------------------------------------------------------------

    @contextmanager
    def _translated_errors(self, operation, idempotency_key):
        try:
            yield
        except stripe.CardError as error:
            decline_code = getattr(error.error, "decline_code", None) or error.code
            raise PaymentDeclined(
                error.user_message or "The card was declined.",
                decline_code=decline_code or "card_declined",
            ) from error
        except stripe.APIConnectionError as error:
            log.warning(
                "stripe %s %s: no answer from %s (%s)",
                operation,
                idempotency_key,
                self.api_base,
                _describe(error),
            )
            raise PaymentUnavailable(
                "The payment service could not be reached or did not answer in time."
            ) from error
        except stripe.InvalidRequestError as error:
            _log_failure(operation, idempotency_key, error)
            if operation == "charge" and error.param == "payment_method":
                raise PaymentDeclined(
                    "The payment_method was not accepted.", decline_code="invalid_payment_method"
                ) from error
            raise PaymentUnavailable("The payment service refused the request.") from error
        except stripe.StripeError as error:
            _log_failure(operation, idempotency_key, error)
            raise PaymentUnavailable("The payment service failed; try again later.") from error


def _log_failure(operation, idempotency_key, error):
    # Stripe's messages mask API keys; they are logged, never returned to clients.
    log.error(
        "stripe %s %s failed: %s (http %s, type %s, code %s, request %s): %s",
        operation,
        idempotency_key,
        type(error).__name__,
        error.http_status,
        getattr(error.error, "type", None),
        error.code,
        error.request_id,
        _describe(error),
    )


def _describe(error):
    return " ".join(str(error).split()) or type(error).__name__
