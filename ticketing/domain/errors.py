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


class InvalidCursor(TicketingError):
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
