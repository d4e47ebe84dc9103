"""Domain errors. Each carries a stable machine-readable ``code``; the HTTP layer maps the kind of
error (its base class) to a status code, so the rules never mention HTTP."""


class TicketingError(Exception):
    code = "ticketing_error"
    title = "Request failed"

    def __init__(self, detail=None, **extra):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class NotFound(TicketingError):
    code = "not_found"
    title = "Not found"


class Conflict(TicketingError):
    """The request is well formed but the resource's current state forbids it."""

    code = "conflict"
    title = "Conflict"


class InvalidRequest(TicketingError):
    """The request is well formed, but its values are refused by a business rule."""

    code = "invalid_request"
    title = "Invalid request"


class BadRequest(TicketingError):
    """The request itself is malformed, in a way the schemas cannot see."""

    code = "bad_request"
    title = "Bad request"


class InvalidCursor(BadRequest):
    code = "invalid_cursor"
    title = "Invalid pagination cursor"


class EventNotFound(NotFound):
    code = "event_not_found"
    title = "Event not found"


class EventNotDraft(Conflict):
    code = "event_not_draft"
    title = "Only draft events can be published"


class EventDatePassed(Conflict):
    code = "event_date_passed"
    title = "The event's date has passed"


class EventReadOnly(Conflict):
    code = "event_read_only"
    title = "Completed events cannot be changed"


class TotalBelowSold(Conflict):
    code = "total_below_sold"
    title = "total_tickets cannot be lower than the tickets already sold"


class EventHasOrders(Conflict):
    code = "event_has_orders"
    title = "An event with orders cannot be deleted"


class PaymentError(TicketingError):
    """Raised by payment gateways."""


class PaymentDeclined(PaymentError):
    code = "payment_declined"
    title = "The payment was declined"


class PaymentUnavailable(PaymentError):
    """The gateway could not be reached, timed out, or failed on its side: the outcome of a charge
    is unknown or negative, and retrying later with the same idempotency key is safe."""

    code = "payment_unavailable"
    title = "The payment service is unavailable"


class EmailDeliveryError(TicketingError):
    """Raised by email senders when a message could not be handed over; the job layer retries."""

    code = "email_delivery_failed"
    title = "The email could not be sent"


class EventNotOnSale(Conflict):
    code = "event_not_on_sale"
    title = "The event is not on sale"


class InsufficientTickets(Conflict):
    code = "insufficient_tickets"
    title = "Not enough tickets left"


class OrderNotFound(NotFound):
    code = "order_not_found"
    title = "Order not found"


class EmailNotFound(NotFound):
    code = "email_not_found"
    title = "Email not found"


class OrderNotCancellable(Conflict):
    code = "order_not_cancellable"
    title = "The order cannot be cancelled"


class HoldExpired(Conflict):
    code = "hold_expired"
    title = "The hold expired and its tickets are gone; nothing was charged"


class OrderNotPayable(Conflict):
    code = "order_not_payable"
    title = "The order cannot be paid"


class OrderNotReleasable(Conflict):
    code = "order_not_releasable"
    title = "Only a hold not yet paid can be released"


class WebhookSignatureInvalid(BadRequest):
    code = "webhook_signature_invalid"
    title = "The webhook's signature is missing, wrong or too old"


class IdempotencyKeyReused(InvalidRequest):
    code = "idempotency_key_reused"
    title = "The idempotency key was used for a different request"


class IdempotencyKeyMismatch(InvalidRequest):
    code = "idempotency_key_mismatch"
    title = "The body's idempotency_key and the Idempotency-Key header differ"


class IdempotencyKeyInvalid(BadRequest):
    code = "idempotency_key_invalid"
    title = "The Idempotency-Key header must be 1 to 255 characters"


class RequestInProgress(Conflict):
    """A request with the same idempotency key is still being processed."""

    code = "request_in_progress"
    title = "A request with this idempotency key is in progress"


class RefundFailed(PaymentError):
    code = "refund_failed"
    title = "The refund could not be made; the order is unchanged"


class TicketTypeNotFound(NotFound):
    code = "ticket_type_not_found"
    title = "Ticket type not found"


class TicketTypeWrongEvent(BadRequest):
    code = "ticket_type_wrong_event"
    title = "The ticket type belongs to another event"


class TicketTypeRequired(BadRequest):
    code = "ticket_type_required"
    title = "Name the ticket type: the event sells several"


class TicketTypeNotOnSale(Conflict):
    code = "ticket_type_not_on_sale"
    title = "The ticket type is not on sale"


class BelowMinPerOrder(BadRequest):
    code = "below_min_per_order"
    title = "Fewer tickets of this type than one order must take"


class AboveMaxPerOrder(BadRequest):
    code = "above_max_per_order"
    title = "More tickets of this type than one order may take"


class InvalidTicketType(BadRequest):
    """The type's fields contradict each other (e.g. its sales end before they start)."""

    code = "invalid_ticket_type"
    title = "The ticket type's fields contradict each other"


class TicketTypeHasOrders(Conflict):
    code = "ticket_type_has_orders"
    title = "A ticket type that was sold cannot be deleted"


class LastTicketType(Conflict):
    code = "last_ticket_type"
    title = "An event keeps at least one ticket type"


class CapacityBelowSold(Conflict):
    code = "capacity_below_sold"
    title = "capacity cannot be lower than the tickets already taken"


class CurrencyLocked(Conflict):
    code = "currency_locked"
    title = "The currency cannot change once anything was sold"


class PriceNotInCurrency(BadRequest):
    code = "price_not_in_currency"
    title = "A price cannot be expressed in the currency"


class KeyNotFound(NotFound):
    code = "key_not_found"
    title = "API key not found"


class EventIdsNeedCheckinScope(BadRequest):
    code = "event_ids_need_checkin_scope"
    title = "Only checkin keys are limited to events"


class TicketNotFound(NotFound):
    code = "ticket_not_found"
    title = "Ticket not found"


class TicketVoid(Conflict):
    code = "ticket_void"
    title = "The ticket is void"


class AlreadyCheckedIn(Conflict):
    code = "already_checked_in"
    title = "The ticket was checked in already"


class WrongEvent(Conflict):
    code = "wrong_event"
    title = "The ticket is for another event"


class NonceReused(InvalidRequest):
    code = "nonce_reused"
    title = "The nonce was used for a scan of another code"


class CheckInNotFound(NotFound):
    code = "check_in_not_found"
    title = "Check-in not found"


class OrderCheckedIn(Conflict):
    code = "order_checked_in"
    title = "An order with a checked-in ticket cannot be cancelled"


class OrderHasNoTickets(Conflict):
    code = "order_has_no_tickets"
    title = "The order has no valid tickets"


class ChangeRefused(InvalidRequest):
    """A plugin's subscriber refused the change (``ticketing.events``); nothing was changed.
    Plugins raise it with a ``detail`` saying why."""

    code = "change_refused"
    title = "The change was refused"


class PromoCodeInvalid(BadRequest):
    """An unknown code and a disabled one get this same answer, so that codes cannot be probed
    for ones that exist."""

    code = "promo_code_invalid"
    title = "The promo code is not valid"


class PromoCodeExpired(Conflict):
    code = "promo_code_expired"
    title = "The promo code is not valid at this time"


class PromoCodeExhausted(Conflict):
    code = "promo_code_exhausted"
    title = "The promo code is used up"


class PromoCodeNotApplicable(BadRequest):
    code = "promo_code_not_applicable"
    title = "The promo code does not apply to these tickets"


class PromoCodeAlreadyApplied(Conflict):
    code = "promo_code_already_applied"
    title = "The order has another promo code already"


class PromoCodeNotFound(NotFound):
    code = "promo_code_not_found"
    title = "Promo code not found"


class PromoCodeTaken(Conflict):
    code = "promo_code_taken"
    title = "The event has a promo code with this text already"


class PromoCodeUsed(Conflict):
    code = "promo_code_used"
    title = "A promo code that was used cannot be deleted; disable it instead"


class MaxUsesBelowUses(Conflict):
    code = "max_uses_below_uses"
    title = "max_uses cannot be lower than the uses orders hold"


class InvalidPromoCode(BadRequest):
    """The code's fields contradict each other or its event (a type of another event, say)."""

    code = "invalid_promo_code"
    title = "The promo code's fields contradict each other"


class TicketsAvailable(Conflict):
    code = "tickets_available"
    title = "Tickets are on sale: buy them instead of waiting"


class AlreadyOnWaitingList(Conflict):
    code = "already_on_waiting_list"
    title = "This email is already on the waiting list of this ticket type"


class WaitingListEntryNotFound(NotFound):
    code = "waiting_list_entry_not_found"
    title = "Waiting list entry not found"


class WaitingListEntryPurchased(Conflict):
    code = "waiting_list_entry_purchased"
    title = "The entry's offer was paid; cancel the order instead"
