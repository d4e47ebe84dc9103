"""Plain-JSON shapes of domain objects, and their colander schemas for the OpenAPI document
(schemathesis checks every response of the API against them, so they cannot drift apart). The
shapes the domain's events carry too live in ``ticketing.representations``."""

from decimal import Decimal

import colander

from ticketing.models import (
    WHOLE_PERCENT,
    DiscountType,
    EntryStatus,
    EventStatus,
    KeyScope,
    OrderStatus,
    TicketStatus,
)
from ticketing.money import format_money

# The views take the shapes from here, beside their schemas.
from ticketing.representations import (  # noqa: F401
    check_in_json,
    event_json,
    order_json,
    ticket_type_json,
    timestamp,
)

from .schemas import StrictMappingSchema, StrictSequence

#: an amount as the API shows it: as many decimals as its currency has ("50.00", "5000")
AMOUNT = colander.Regex(r"^[0-9]+(\.[0-9]{1,4})?$")
CURRENCY = colander.Regex(r"^[A-Z]{3}$")


def _node(typ, validator=None, nullable=False, **kwargs):
    # colander keeps unknown keywords as attributes: ticketing.openapi reads ``nullable``.
    return colander.SchemaNode(typ, validator=validator, nullable=nullable, **kwargs)


def _text(**kwargs):
    return _node(colander.String(), **kwargs)


def _id(**kwargs):
    return _node(colander.String(), validator=colander.uuid, **kwargs)


def _time(**kwargs):
    return _node(colander.DateTime(), **kwargs)


def _count(minimum, **kwargs):
    return _node(colander.Integer(), validator=colander.Range(min=minimum), **kwargs)


def _list_of(item, **kwargs):
    return colander.SequenceSchema(StrictSequence(), item, **kwargs)


class TicketTypeSummary(StrictMappingSchema):
    id = _id()
    name = _text(example="General admission")
    price = _text(validator=AMOUNT, example="50.00")
    available = _count(0)


class EventResource(StrictMappingSchema):
    component_name = "Event"

    id = _id()
    name = _text(example="Concert")
    venue = _text(example="Stadium")
    date = _time(description="When the event takes place (UTC).")
    ticket_price = _text(
        validator=AMOUNT,
        example="50.00",
        description="The price of the event's first ticket type on sale, in display order (else "
        "of its first type buyers can see); each type's own price is in `ticket_types`.",
    )
    currency = _text(validator=CURRENCY, example="USD")
    total_tickets = _count(1, description="The event's capacity, shared by all its types.")
    available_tickets = _count(0)
    ticket_types = _list_of(
        TicketTypeSummary(),
        description="The types buyers can see (organisers: all), in display order.",
    )
    status = _text(
        validator=colander.OneOf([s.value for s in EventStatus]),
        description="draft (seen by organisers only), published (on sale until its date), "
        "completed (its date has passed).",
    )
    created_at = _time()
    updated_at = _time()


class TicketTypeResource(StrictMappingSchema):
    component_name = "TicketType"

    id = _id()
    event_id = _id()
    name = _text(example="VIP")
    description = _text(nullable=True)
    price = _text(validator=AMOUNT, example="120.00")
    currency = _text(validator=CURRENCY, example="USD")
    capacity = _count(
        0, nullable=True, description="Its own capacity; null: limited by the event's alone."
    )
    available = _count(0, description="What is left of it, within what is left of the event.")
    sales_start = _time(nullable=True)
    sales_end = _time(nullable=True)
    on_sale = _node(colander.Boolean(), description="Whether buyers can take it now.")
    min_per_order = _count(1)
    max_per_order = _count(1)
    hidden = _node(colander.Boolean())
    position = _count(0)
    created_at = _time()
    updated_at = _time()
    discounted_price = _text(
        validator=AMOUNT,
        nullable=True,
        missing=colander.drop,
        example="96.00",
        description="Listed with `?promo_code=`: each ticket's price with the code; null for a "
        "type it does not apply to.",
    )


class AvailabilityCounts(StrictMappingSchema):
    capacity = _count(0, nullable=True)
    sold = _count(0, description="Taken by orders being paid for or confirmed.")
    held = _count(0, description="Held for buyers who have not paid yet (offers included).")
    set_aside = _count(
        0,
        description="Given back while people wait for them: kept off public sale for the "
        "waiting list, about to be offered. available + set_aside + held + sold = capacity.",
    )
    offered = _count(0, description="Held by the waiting list's offers (part of `held`).")
    waiting = _count(0, description="People on the waiting list, not offered tickets yet.")
    available = _count(0)


class TypeAvailability(AvailabilityCounts):
    ticket_type_id = _id()
    name = _text()


class AvailabilityResource(StrictMappingSchema):
    component_name = "Availability"

    event_id = _id()
    event = AvailabilityCounts()
    ticket_types = _list_of(TypeAvailability())


class OrderItemResource(StrictMappingSchema):
    ticket_type_id = _id()
    name = _text(example="General admission", description="The type's name when it was bought.")
    quantity = _count(1)
    unit_price = _text(validator=AMOUNT, example="50.00", description="The list price.")
    subtotal = _text(validator=AMOUNT, example="100.00", description="At the list price.")
    discount = _text(
        validator=AMOUNT, example="20.00", description="The promo code's, for all its tickets."
    )
    paid = _text(
        validator=AMOUNT, example="80.00", description="What its tickets cost: subtotal - discount."
    )


class OrderResource(StrictMappingSchema):
    component_name = "Order"

    id = _id()
    event_id = _id()
    customer_email = _text(example="john@example.com")
    customer_name = _text(example="John Doe")
    quantity = _count(1, description="Tickets of every item together.")
    unit_price = _text(
        validator=AMOUNT,
        example="50.00",
        nullable=True,
        description="When every item has the same price; null otherwise.",
    )
    total_amount = _text(
        validator=AMOUNT,
        example="80.00",
        description="What the buyer pays (was charged): the items' `paid` together; 0 needs no "
        "payment at all.",
    )
    discount_total = _text(validator=AMOUNT, example="20.00", description="The items' discounts.")
    promo_code = _text(
        nullable=True, example="PARTNER20", description="The code the order was made with."
    )
    items = _list_of(OrderItemResource())
    currency = _text(validator=CURRENCY, example="USD")
    status = _text(
        validator=colander.OneOf([s.value for s in OrderStatus]),
        description="reserved (a hold: tickets kept until `expires_at`, no money), pending "
        "(payment under way), awaiting_action (the buyer must finish 3-D Secure; still held), "
        "confirmed (paid), expired (a hold not paid in time), failed (payment refused or "
        "abandoned; or `hold_expired_refunded`: paid after its hold expired and refunded), "
        "cancelled (refunded in full, or a hold given back).",
    )
    payment_reference = _text(nullable=True)
    refund_reference = _text(nullable=True)
    failure_code = _text(nullable=True)
    expires_at = _time(
        nullable=True,
        description="Until when a hold (reserved or awaiting_action) keeps its tickets; null "
        "for other states.",
    )
    created_at = _time()
    confirmed_at = _time(nullable=True)
    cancelled_at = _time(nullable=True)
    refunded_at = _time(nullable=True)


class PaymentAction(StrictMappingSchema):
    status = _text(validator=colander.OneOf(["requires_action"]))
    client_secret = _text(
        description="The PaymentIntent's client secret, for Stripe.js in the buyer's browser."
    )
    next_action = _node(
        colander.Mapping(unknown="preserve"),
        nullable=True,
        description="What the buyer's browser must do (Stripe's `next_action`).",
    )


class AwaitingActionResource(StrictMappingSchema):
    data = OrderResource()
    payment = PaymentAction()


class KeyEventIds(colander.SequenceSchema):
    schema_type = StrictSequence
    event_id = _id()


class KeyResource(StrictMappingSchema):
    component_name = "Key"

    id = _id()
    name = _text(example="Door scanners")
    prefix = _text(
        example="3f9c2a7b1d04",
        description="The start of the key (`tk_<prefix>_...`), in clear, to tell keys apart.",
    )
    scope = _text(
        validator=colander.OneOf([s.value for s in KeyScope]),
        description="admin (everything an organiser does), read (lists, exports and stats, "
        "drafts and hidden types; changes nothing) or checkin (check-in only).",
    )
    event_ids = KeyEventIds(
        nullable=True,
        description="The events a checkin key may check in at; null: every event.",
    )
    created_at = _time()
    last_used_at = _time(nullable=True, description="At most a minute behind the last use.")
    revoked_at = _time(nullable=True, description="Refused from then on (401 `key_revoked`).")
    secret = _text(
        missing=colander.drop,
        example="tk_3f9c2a7b1d04_...",
        description="The key itself, for `Authorization: Bearer <key>`: only in the answer "
        "that creates it; it cannot be shown again.",
    )


TICKET_STATUS = colander.OneOf([s.value for s in TicketStatus])
CODE_DESCRIPTION = (
    "The ticket's code, as on its PDF and in its QR code: 28 symbols of Crockford's base32 in "
    "groups of four. Scanners may send it in any case, with or without spaces and hyphens."
)


class TicketResource(StrictMappingSchema):
    component_name = "Ticket"

    id = _id()
    order_id = _id()
    event_id = _id()
    ticket_type_id = _id()
    ticket_type = _text(example="General admission", description="The ticket type's name.")
    attendee_name = _text(example="John Doe", description="The buyer's until changed.")
    attendee_email = _text(example="john@example.com")
    status = _text(
        validator=TICKET_STATUS,
        description="valid (admits its attendee once), void (its order was cancelled).",
    )
    code = _text(example="7K3Q-9XWD-M2TP-4H8C-RVB6-0ZNJ-5EGA", description=CODE_DESCRIPTION)
    checked_in_at = _time(nullable=True)
    created_at = _time()


class ScannerResource(StrictMappingSchema):
    key_id = _id(
        nullable=True, description="The API key's id; null for a key of `ticketing.api_keys`."
    )
    name = _text(example="Door scanners")


class CheckInResource(StrictMappingSchema):
    component_name = "CheckIn"

    id = _id()
    event_id = _id()
    ticket_id = _id()
    order_id = _id()
    ticket_type_id = _id()
    ticket_type = _text(example="General admission")
    attendee_name = _text(example="John Doe")
    attendee_email = _text(example="john@example.com")
    checked_in_at = _time()
    checked_in_by = ScannerResource()
    nonce = _text(nullable=True)
    undone_at = _time(nullable=True, description="When the scan was undone; null if it stands.")


class TypeCheckIns(StrictMappingSchema):
    ticket_type_id = _id()
    name = _text()
    sold = _count(0, description="Valid tickets of the type.")
    checked_in = _count(0)


class CheckInStatsResource(StrictMappingSchema):
    component_name = "CheckInStats"

    event_id = _id()
    sold = _count(0, description="Valid tickets (of confirmed orders).")
    checked_in = _count(0, description="Valid tickets checked in.")
    ticket_types = _list_of(TypeCheckIns())


class AttendeeResource(StrictMappingSchema):
    component_name = "Attendee"

    ticket_id = _id()
    order_id = _id()
    ticket_type_id = _id()
    ticket_type = _text()
    attendee_name = _text()
    attendee_email = _text()
    status = _text(validator=TICKET_STATUS)
    checked_in_at = _time(nullable=True)
    created_at = _time()


class DiscountResource(StrictMappingSchema):
    type = _text(validator=colander.OneOf([each.value for each in DiscountType]))
    value = _text(
        validator=AMOUNT,
        example="20",
        description="percent: of each ticket's price; amount: off each ticket, in `currency`.",
    )


class PromoCodeTypeIds(colander.SequenceSchema):
    schema_type = StrictSequence
    ticket_type_id = _id()


class PromoCodeResource(StrictMappingSchema):
    component_name = "PromoCode"

    id = _id()
    event_id = _id()
    code = _text(example="PARTNER20")
    discount = DiscountResource()
    currency = _text(validator=CURRENCY, example="USD")
    max_uses = _count(1, nullable=True, description="Orders it may discount; null: any number.")
    uses = _count(
        0, description="Orders holding a use now (held, being paid, awaiting 3-D Secure, paid)."
    )
    valid_from = _time(nullable=True)
    valid_until = _time(nullable=True)
    ticket_type_ids = PromoCodeTypeIds(description="The types it applies to; empty: every type.")
    unlocks_hidden = _node(colander.Boolean())
    disabled = _node(colander.Boolean())
    created_at = _time()
    updated_at = _time()


class WaitingListEntryResource(StrictMappingSchema):
    component_name = "WaitingListEntry"

    id = _id(description="The entry's id: its holder's proof, as an order's is.")
    event_id = _id()
    ticket_type_id = _id()
    email = _text(example="jane@example.com")
    name = _text(example="Jane Roe")
    quantity = _count(1)
    status = _text(
        validator=colander.OneOf([s.value for s in EntryStatus]),
        description="waiting (in line), offered (tickets held for it: pay `order_id` before "
        "`offer_expires_at`), purchased (the offer was paid), expired (the offer was not paid "
        "in time, or was given back), left.",
    )
    position = _count(
        1, nullable=True, description="Its place in its type's line (1: next); null once offered."
    )
    order_id = _id(nullable=True, description="The offer: a hold to pay with its order's `pay`.")
    offer_expires_at = _time(nullable=True, description="Until when the offer's hold lasts.")
    created_at = _time()
    offered_at = _time(nullable=True)
    ended_at = _time(nullable=True, description="When it was purchased, expired or left.")


#: the resources the OpenAPI document describes as components (and as pages of them)
RESOURCE_SCHEMAS = (
    EventResource(),
    OrderResource(),
    TicketTypeResource(),
    PromoCodeResource(),
    AvailabilityResource(),
    KeyResource(),
    TicketResource(),
    CheckInResource(),
    CheckInStatsResource(),
    AttendeeResource(),
    WaitingListEntryResource(),
)


def availability_json(event, rows, totals):
    return {
        "event_id": str(event.id),
        "event": {
            "capacity": event.total_tickets,
            "sold": event.tickets_sold - totals["held"] - totals["set_aside"],
            **totals,
            "available": event.available_tickets,
        },
        "ticket_types": [
            {
                "ticket_type_id": str(row["ticket_type"].id),
                "name": row["ticket_type"].name,
                **{name: row[name] for name in AVAILABILITY_FIGURES},
            }
            for row in rows
        ],
    }


def promo_code_json(code, event):
    if code.discount_type == DiscountType.PERCENT:
        value = str(Decimal(code.discount_value) / (WHOLE_PERCENT // 100))
    else:
        value = format_money(code.discount_value, event.currency)
    return {
        "id": str(code.id),
        "event_id": str(code.event_id),
        "code": code.code,
        "discount": {"type": str(code.discount_type), "value": value},
        "currency": event.currency,
        "max_uses": code.max_uses,
        "uses": code.uses,
        "valid_from": timestamp(code.valid_from),
        "valid_until": timestamp(code.valid_until),
        "ticket_type_ids": [str(each) for each in code.ticket_type_ids],
        "unlocks_hidden": code.unlocks_hidden,
        "disabled": code.disabled,
        "created_at": timestamp(code.created_at),
        "updated_at": timestamp(code.updated_at),
    }


#: a type's figures in its availability, in the order shown
AVAILABILITY_FIGURES = ("capacity", "sold", "held", "set_aside", "offered", "waiting", "available")


def waiting_list_entry_json(shown):
    entry, offer = shown.entry, shown.offer
    return {
        "id": str(entry.id),
        "event_id": str(entry.event_id),
        "ticket_type_id": str(entry.ticket_type_id),
        "email": entry.email,
        "name": entry.name,
        "quantity": entry.quantity,
        "status": str(entry.status),
        "position": shown.position,
        "order_id": None if entry.order_id is None else str(entry.order_id),
        "offer_expires_at": timestamp(offer.expires_at)
        if offer is not None and entry.status == EntryStatus.OFFERED
        else None,
        "created_at": timestamp(entry.created_at),
        "offered_at": timestamp(entry.offered_at),
        "ended_at": timestamp(entry.ended_at),
    }


def page_json(page, item_json):
    return {
        "data": [item_json(item) for item in page.items],
        "meta": {"next_cursor": page.next_cursor},
    }


def awaiting_json(order, payment):
    """An order awaiting the buyer's authentication, with what their browser needs for it."""
    return {
        "data": order_json(order),
        "payment": {
            "status": str(payment.status),
            "client_secret": payment.client_secret,
            "next_action": payment.next_action,
        },
    }


def key_json(key, secret=None):
    """An API key as organisers see it: never its hash, and its ``secret`` only when it was
    just made."""
    shown = {
        "id": str(key.id),
        "name": key.name,
        "prefix": key.prefix,
        "scope": str(key.scope),
        "event_ids": key.event_ids,
        "created_at": timestamp(key.created_at),
        "last_used_at": timestamp(key.last_used_at),
        "revoked_at": timestamp(key.revoked_at),
    }
    if secret is not None:
        shown["secret"] = secret
    return shown


def ticket_json(ticket, type_name, codes):
    return {
        "id": str(ticket.id),
        "order_id": str(ticket.order_id),
        "event_id": str(ticket.event_id),
        "ticket_type_id": str(ticket.ticket_type_id),
        "ticket_type": type_name,
        "attendee_name": ticket.attendee_name,
        "attendee_email": ticket.attendee_email,
        "status": str(ticket.status),
        "code": codes.code_of(ticket.id),
        "checked_in_at": timestamp(ticket.checked_in_at),
        "created_at": timestamp(ticket.created_at),
    }


def check_in_stats_json(stats):
    return {
        "event_id": str(stats["event_id"]),
        "sold": stats["sold"],
        "checked_in": stats["checked_in"],
        "ticket_types": [
            {**each, "ticket_type_id": str(each["ticket_type_id"])}
            for each in stats["ticket_types"]
        ],
    }


def attendee_json(ticket, type_name):
    """One row of an event's attendee list."""
    return {
        "ticket_id": str(ticket.id),
        "order_id": str(ticket.order_id),
        "ticket_type_id": str(ticket.ticket_type_id),
        "ticket_type": type_name,
        "attendee_name": ticket.attendee_name,
        "attendee_email": ticket.attendee_email,
        "status": str(ticket.status),
        "checked_in_at": timestamp(ticket.checked_in_at),
        "created_at": timestamp(ticket.created_at),
    }
