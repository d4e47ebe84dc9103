"""Orders: buying tickets, holding them and paying the hold, reading orders, cancelling them."""

import uuid

import colander
from cornice.validators import colander_querystring_validator

from ticketing.domain import holds, payments_async
from ticketing.domain import orders as domain
from ticketing.domain.errors import (
    AboveMaxPerOrder,
    BelowMinPerOrder,
    ChangeRefused,
    EventNotFound,
    EventNotOnSale,
    HoldExpired,
    IdempotencyKeyInvalid,
    IdempotencyKeyMismatch,
    IdempotencyKeyReused,
    InsufficientTickets,
    InvalidCursor,
    OrderNotCancellable,
    OrderNotFound,
    OrderNotPayable,
    OrderNotReleasable,
    PaymentDeclined,
    PaymentUnavailable,
    PromoCodeAlreadyApplied,
    PromoCodeExhausted,
    PromoCodeExpired,
    PromoCodeInvalid,
    PromoCodeNotApplicable,
    RefundFailed,
    RequestInProgress,
    TicketTypeNotFound,
    TicketTypeNotOnSale,
    TicketTypeRequired,
    TicketTypeWrongEvent,
)
from ticketing.domain.inventory import Item
from ticketing.models import OrderStatus
from ticketing.models.types import utcnow
from ticketing.openapi import Success, api_doc
from ticketing.security import READ

from . import JSON, MAX_PAGE_SIZE, ApiService, BuyerService, uuid_from_path
from .events import LOCATION, event_id_from
from .schemas import (
    QueryString,
    StrictInteger,
    StrictMappingSchema,
    StrictSequence,
    StrictString,
    invalid_child,
    json_body_validator,
    limit_field,
    strip,
    text_field,
)
from .serialize import AwaitingActionResource, OrderResource, awaiting_json, order_json, page_json

IDEMPOTENCY_HEADER = "Idempotency-Key"


@colander.deferred
def quantity_range(node, kw):
    return colander.Range(1, kw["request"].registry["max_tickets_per_order"])


def lower_and_strip(value):
    return value.strip().lower() if isinstance(value, str) else value


def ticket_type_id_field(**kwargs):
    return colander.SchemaNode(StrictString(), validator=colander.uuid, **kwargs)


def promo_code_field(description):
    return colander.SchemaNode(
        StrictString(),
        preparer=strip,
        validator=colander.Length(1, 64),
        missing=None,
        description=description,
    )


class ItemFields(StrictMappingSchema):
    ticket_type_id = ticket_type_id_field()
    quantity = colander.SchemaNode(StrictInteger(), validator=quantity_range)


class ItemList(colander.SequenceSchema):
    schema_type = StrictSequence
    item = ItemFields()
    validator = colander.Length(min=1)


@colander.deferred
def one_way_of_naming_tickets(node, kw):
    ceiling = kw["request"].registry["max_tickets_per_order"]

    def validate(node, value):
        if value["quantity"] is not None and value["items"] is not None:
            raise colander.Invalid(node, "Give either quantity (and ticket_type_id) or items.")
        if value["items"] is None:
            return
        if value["ticket_type_id"] is not None:
            raise invalid_child(
                node, "ticket_type_id", "With items, each item names its ticket_type_id."
            )
        items = value["items"]
        if len({item["ticket_type_id"] for item in items}) != len(items):
            raise invalid_child(node, "items", "Each ticket type may appear once.")
        if sum(item["quantity"] for item in items) > ceiling:
            raise invalid_child(node, "items", f"At most {ceiling} tickets per order in all.")

    return validate


class OrderFields(StrictMappingSchema):
    customer_email = colander.SchemaNode(
        StrictString(),
        preparer=lower_and_strip,
        validator=colander.All(colander.Length(max=254), colander.Email()),
    )
    customer_name = text_field()
    quantity = colander.SchemaNode(
        StrictInteger(),
        validator=quantity_range,
        missing=None,
        description="How many tickets, of `ticket_type_id` or, without it, of the event's only "
        "ticket type on sale. Or give `items` instead.",
    )
    ticket_type_id = ticket_type_id_field(
        missing=None, description="The ticket type of `quantity`."
    )
    items = ItemList(
        missing=None,
        description="Tickets of several types in one order; at most "
        "`ticketing.max_tickets_per_order` (10) in all.",
    )
    idempotency_key = colander.SchemaNode(
        StrictString(),
        preparer=strip,
        validator=colander.Length(1, 255),
        missing=None,
        description="Makes the purchase safe to retry: the same key with the same request "
        "returns the same order. Or send it as the Idempotency-Key header.",
    )
    payment_method = colander.SchemaNode(
        StrictString(),
        validator=colander.Length(1, 255),
        missing=None,
        description="The payment gateway's payment method (e.g. Stripe's `pm_card_visa`).",
    )
    promo_code = promo_code_field(
        "A promo code of the event (any case): its discount is applied to the items it applies "
        "to, and the hidden types it unlocks may be named. An order that costs nothing then "
        "needs no payment."
    )

    validator = one_way_of_naming_tickets
    json_schema_extra = {"anyOf": [{"required": ["quantity"]}, {"required": ["items"]}]}

    def absent_fields(self, cstruct):
        if cstruct.get("quantity") is None and cstruct.get("items") is None:
            yield "quantity", "Required (or give items)."


def items_from(fields):
    """The body's tickets as the domain's items: ``quantity`` of ``ticket_type_id`` (or of the
    event's only type on sale), or ``items``."""
    if fields["items"] is None:
        type_id = fields["ticket_type_id"]
        return (Item(type_id and uuid.UUID(type_id), fields["quantity"]),)
    return tuple(
        Item(uuid.UUID(item["ticket_type_id"]), item["quantity"]) for item in fields["items"]
    )


class PurchaseBody(StrictMappingSchema):
    order = OrderFields()

    example = {
        "order": {
            "customer_email": "john@example.com",
            "customer_name": "John Doe",
            "quantity": 2,
            "idempotency_key": "unique-key-123",
        }
    }


class ListOrdersQuery(colander.MappingSchema):
    limit = limit_field(MAX_PAGE_SIZE)
    cursor = colander.SchemaNode(
        QueryString(), missing=None, description="`meta.next_cursor` of the previous page."
    )
    event_id = colander.SchemaNode(QueryString(), missing=None, validator=colander.uuid)
    customer_email = colander.SchemaNode(QueryString(), missing=None, preparer=lower_and_strip)
    status = colander.SchemaNode(
        QueryString(), missing=None, validator=colander.OneOf([s.value for s in OrderStatus])
    )


class PaymentFields(StrictMappingSchema):
    payment_method = colander.SchemaNode(
        StrictString(),
        validator=colander.Length(1, 255),
        missing=None,
        description="The payment gateway's payment method (e.g. Stripe's `pm_card_visa`; "
        "`pm_card_threeDSecureRequired` needs 3-D Secure, with the mock gateway too).",
    )
    idempotency_key = colander.SchemaNode(
        StrictString(),
        preparer=strip,
        validator=colander.Length(1, 255),
        missing=None,
        description="The pay's own key: retried with it, a declined attempt answers its decline "
        "again; a new key after a decline tries another card. Or the Idempotency-Key header.",
    )
    promo_code = promo_code_field(
        "A promo code for a hold made without one: applied (its use taken) before the charge; "
        "a hold that then costs nothing is confirmed without any payment."
    )


class PayBody(StrictMappingSchema):
    payment = PaymentFields(
        missing={"payment_method": None, "idempotency_key": None, "promo_code": None}
    )

    example = {"payment": {"payment_method": "pm_card_visa"}}


class HoldBody(PurchaseBody):
    example = {
        "order": {
            "customer_email": "john@example.com",
            "customer_name": "John Doe",
            "quantity": 2,
            "idempotency_key": "hold-123",
        }
    }


event_purchase = BuyerService(
    name="event_purchase", path="/api/events/{id}/purchase", description="Buy tickets"
)
event_orders = BuyerService(
    name="event_orders", path="/api/events/{id}/orders", description="Hold tickets"
)
orders = ApiService(name="orders", path="/api/orders", description="Orders")
order = BuyerService(name="order", path="/api/orders/{id}", description="One order")
order_pay = BuyerService(name="order_pay", path="/api/orders/{id}/pay", description="Pay a hold")
order_release = BuyerService(
    name="order_release", path="/api/orders/{id}/release", description="Give a hold back"
)
order_cancel = ApiService(
    name="order_cancel", path="/api/orders/{id}/cancel", description="Cancel and refund an order"
)


def order_id_from(request):
    return uuid_from_path(request, OrderNotFound)


def idempotency_key_from(request, body_key):
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    header_key = None if raw is None else raw.strip()
    if header_key == "":
        # Sent but empty: not "no key", which would make a retry a second purchase.
        raise IdempotencyKeyInvalid(f"The {IDEMPOTENCY_HEADER} header is empty.")
    if header_key is not None and len(header_key) > 255:
        raise IdempotencyKeyInvalid(f"The {IDEMPOTENCY_HEADER} header is over 255 characters.")
    if header_key is not None and "\x00" in header_key:
        raise IdempotencyKeyInvalid(f"The {IDEMPOTENCY_HEADER} header contains a NUL character.")
    if body_key and header_key and body_key != header_key:
        raise IdempotencyKeyMismatch(
            f"The body's idempotency_key and the {IDEMPOTENCY_HEADER} header differ."
        )
    return body_key or header_key


IDEMPOTENCY_HEADER_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "The purchase's idempotency key (IETF Idempotency-Key draft), instead of or "
    "as well as `order.idempotency_key` (both: they must match).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


PAY_IDEMPOTENCY_HEADER_PARAMETER = {
    **IDEMPOTENCY_HEADER_PARAMETER,
    "description": "The pay's own idempotency key, instead of or as well as "
    "`payment.idempotency_key` (both: they must match).",
}

#: the header of an answer that replays an idempotency key's first one
REPLAYED = {
    "Idempotent-Replayed": {"required": True, "schema": {"type": "string", "enum": ["true"]}}
}
#: why a promo code cannot be used
PROMO_CODE_ERRORS = (
    PromoCodeInvalid,
    PromoCodeExpired,
    PromoCodeExhausted,
    PromoCodeNotApplicable,
)
#: why tickets cannot be taken, by a purchase or a hold alike
TAKING_TICKETS_ERRORS = (
    IdempotencyKeyInvalid,
    EventNotFound,
    EventNotOnSale,
    TicketTypeNotFound,
    TicketTypeWrongEvent,
    TicketTypeRequired,
    TicketTypeNotOnSale,
    BelowMinPerOrder,
    AboveMaxPerOrder,
    InsufficientTickets,
    IdempotencyKeyReused,
    IdempotencyKeyMismatch,
    *PROMO_CODE_ERRORS,
)

AWAITING_ACTION = Success(
    202,
    "The card needs 3-D Secure: the order is `awaiting_action`, held until `expires_at`. Finish "
    "the payment in the buyer's browser with `payment.client_secret` (Stripe.js "
    "`handleNextAction`); the gateway's webhook then confirms the order.",
    AwaitingActionResource(),
    wrap=False,
    headers=LOCATION,
)


def order_answer(request, result, created_status):
    """The order of a purchase or payment: ``created_status`` (201 or 200), 200 with
    ``Idempotent-Replayed`` for a replay, or 202 with the payment awaiting the buyer."""
    request.response.location = request.route_url("order", id=result.order.id)
    if result.payment is not None:
        request.response.status_code = 202
        return awaiting_json(result.order, result.payment)
    if result.replayed:
        request.response.headers["Idempotent-Replayed"] = "true"
    else:
        request.response.status_code = created_status
    return {"data": result.shown or order_json(result.order)}


def purchase_from(request, hold=False):
    fields = request.validated["order"]
    return domain.PurchaseRequest(
        event_id=event_id_from(request),
        customer_email=fields["customer_email"],
        customer_name=fields["customer_name"],
        items=items_from(fields),
        idempotency_key=idempotency_key_from(request, fields["idempotency_key"]),
        payment_method=fields["payment_method"],
        hold=hold,
        promo_code=fields["promo_code"],
    )


@event_purchase.post(schema=PurchaseBody(), validators=(json_body_validator,), content_type=JSON)
@api_doc(
    Success(201, "The confirmed order.", OrderResource(), headers=LOCATION),
    AWAITING_ACTION,
    Success(
        200,
        "A replay: the order this idempotency key already bought, with "
        "`Idempotent-Replayed: true`; nothing was charged or reserved again.",
        OrderResource(),
        headers={**LOCATION, **REPLAYED},
    ),
    raises=(
        *TAKING_TICKETS_ERRORS,
        PaymentDeclined,
        RequestInProgress,
        PaymentUnavailable,
        ChangeRefused,
    ),
    request_headers=(IDEMPOTENCY_HEADER_PARAMETER,),
)
def purchase_tickets(request):
    """Buy tickets

    Reserves the tickets, charges the card, and confirms the order; a card that needs 3-D
    Secure answers 202 with the order `awaiting_action`. Retry with the same idempotency key
    after a timeout: it never charges twice.
    """
    result = domain.purchase_tickets(
        request.dbsession,
        request.tm,
        request.payment_gateway,
        purchase_from(request),
        now=utcnow(),
        hold_for=request.registry["hold_for"],
        ticket_codes=request.ticket_codes,
    )
    return order_answer(request, result, 201)


@event_orders.post(schema=HoldBody(), validators=(json_body_validator,), content_type=JSON)
@api_doc(
    Success(
        201,
        "The hold: the order `reserved` until `expires_at`; pay it with "
        "`POST /api/orders/{id}/pay`.",
        OrderResource(),
        headers=LOCATION,
    ),
    Success(
        200,
        "A replay: the order this idempotency key already made, as it is now, with "
        "`Idempotent-Replayed: true`; nothing was reserved again.",
        OrderResource(),
        headers={**LOCATION, **REPLAYED},
    ),
    raises=TAKING_TICKETS_ERRORS,
    request_headers=(IDEMPOTENCY_HEADER_PARAMETER,),
)
def reserve_tickets(request):
    """Hold tickets

    Reserves the tickets without paying: the order is `reserved` until `expires_at` (setting
    `ticketing.hold_minutes`, 15 by default), and availability counts them as `held`. A hold not
    paid in time expires and its tickets go back (within a minute).
    """
    result = holds.reserve(
        request.dbsession,
        request.tm,
        purchase_from(request, hold=True),
        now=utcnow(),
        hold_for=request.registry["hold_for"],
    )
    return order_answer(request, result, 201)


@order_pay.post(schema=PayBody(), validators=(json_body_validator,), content_type=JSON)
@api_doc(
    Success(200, "The confirmed order (or, paid already, the order as it is).", OrderResource()),
    AWAITING_ACTION,
    raises=(
        IdempotencyKeyInvalid,
        OrderNotFound,
        OrderNotPayable,
        HoldExpired,
        PaymentDeclined,
        RequestInProgress,
        IdempotencyKeyMismatch,
        PaymentUnavailable,
        *PROMO_CODE_ERRORS,
        PromoCodeAlreadyApplied,
    ),
    request_headers=(PAY_IDEMPOTENCY_HEADER_PARAMETER,),
)
def pay_hold(request):
    """Pay a hold

    Charges the hold's total and confirms it; a card that needs 3-D Secure answers 202 with
    the payment to finish in the buyer's browser. Safe to retry: a paid order answers as it is,
    one awaiting authentication answers with its payment again, and after a decline the hold
    stays, to be paid with another card. An expired hold first takes its tickets again: if they
    are gone, 409 `hold_expired` and nothing is charged. A `promo_code` applies to a hold made
    without one (a hold keeps the code it has: another is 409 `promo_code_already_applied`).
    """
    fields = request.validated["payment"]
    result = payments_async.pay_hold(
        request.dbsession,
        request.tm,
        request.payment_gateway,
        order_id_from(request),
        fields["payment_method"],
        now=utcnow(),
        hold_for=request.registry["hold_for"],
        ticket_codes=request.ticket_codes,
        idempotency_key=idempotency_key_from(request, fields["idempotency_key"]),
        promo_code=fields["promo_code"],
    )
    return order_answer(request, result, 200)


@order_release.post()
@api_doc(
    Success(200, "The hold, given back: the order `cancelled`.", OrderResource()),
    raises=(OrderNotFound, OrderNotReleasable),
)
def release_hold(request):
    """Give a hold back

    Releases the hold's tickets at once, before it expires. A hold awaiting 3-D Secure has its
    payment cancelled first; if that payment went through meanwhile, 409
    `order_not_releasable` (the order is paid).
    """
    released = holds.release_hold(
        request.dbsession, request.payment_gateway, order_id_from(request), now=utcnow()
    )
    return {"data": order_json(released)}


@orders.get(schema=ListOrdersQuery(), validators=(colander_querystring_validator,), permission=READ)
@api_doc(
    Success(200, "A page of orders, oldest first.", OrderResource(), many=True),
    raises=(InvalidCursor,),
)
def list_orders(request):
    """List orders

    Filtered by event, customer email (case-insensitive) or status.
    """
    query = request.validated
    page = domain.list_orders(
        request.dbsession,
        limit=query["limit"],
        cursor=query["cursor"],
        event_id=uuid.UUID(query["event_id"]) if query["event_id"] else None,
        customer_email=query["customer_email"],
        status=query["status"],
    )
    return page_json(page, order_json)


@order.get()
@api_doc(Success(200, "The order.", OrderResource()), raises=(OrderNotFound,))
def get_order(request):
    """Read an order

    Its UUID is the buyer's proof of ownership.
    """
    return {"data": order_json(domain.get_order(request.dbsession, order_id_from(request)))}


@order_cancel.post()
@api_doc(
    Success(200, "The cancelled order.", OrderResource()),
    raises=(OrderNotFound, OrderNotCancellable, RefundFailed),
)
def cancel_order(request):
    """Cancel an order

    Refunds it in full and gives its tickets back to the event. Only confirmed orders of events
    still to come can be cancelled.
    """
    cancelled = domain.cancel_order(
        request.dbsession, request.payment_gateway, order_id_from(request), now=utcnow()
    )
    return {"data": order_json(cancelled)}
