"""Plain-JSON shapes of domain objects, and their colander schemas for the OpenAPI document
(schemathesis checks every response of the API against them, so they cannot drift apart)."""

import datetime as dt

import colander

from ticketing.models import EventStatus, OrderStatus
from ticketing.money import format_cents

from .schemas import StrictMappingSchema

AMOUNT = colander.Regex(r"^[0-9]+\.[0-9]{2}$")
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


class EventResource(StrictMappingSchema):
    component_name = "Event"

    id = _id()
    name = _text(example="Concert")
    venue = _text(example="Stadium")
    date = _time(description="When the event takes place (UTC).")
    ticket_price = _text(validator=AMOUNT, example="50.00")
    currency = _text(validator=CURRENCY, example="USD")
    total_tickets = _count(1)
    available_tickets = _count(0)
    status = _text(
        validator=colander.OneOf([s.value for s in EventStatus]),
        description="draft (seen by organisers only), published (on sale until its date), "
        "completed (its date has passed).",
    )
    created_at = _time()
    updated_at = _time()


class OrderResource(StrictMappingSchema):
    component_name = "Order"

    id = _id()
    event_id = _id()
    customer_email = _text(example="john@example.com")
    customer_name = _text(example="John Doe")
    quantity = _count(1)
    unit_price = _text(validator=AMOUNT, example="50.00")
    total_amount = _text(validator=AMOUNT, example="100.00")
    currency = _text(validator=CURRENCY, example="USD")
    status = _text(
        validator=colander.OneOf([s.value for s in OrderStatus]),
        description="pending (payment under way), confirmed (paid), failed (payment refused), "
        "cancelled (refunded in full).",
    )
    payment_reference = _text(nullable=True)
    refund_reference = _text(nullable=True)
    failure_code = _text(nullable=True)
    created_at = _time()
    confirmed_at = _time(nullable=True)
    cancelled_at = _time(nullable=True)
    refunded_at = _time(nullable=True)


#: the resources the OpenAPI document describes as components (and as pages of them)
RESOURCE_SCHEMAS = (EventResource(), OrderResource())


def timestamp(value):
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def event_json(event):
    return {
        "id": str(event.id),
        "name": event.name,
        "venue": event.venue,
        "date": timestamp(event.date),
        "ticket_price": format_cents(event.ticket_price_cents),
        "currency": event.currency,
        "total_tickets": event.total_tickets,
        "available_tickets": event.available_tickets,
        "status": str(event.status),
        "created_at": timestamp(event.created_at),
        "updated_at": timestamp(event.updated_at),
    }


def page_json(page, item_json):
    return {
        "data": [item_json(item) for item in page.items],
        "meta": {"next_cursor": page.next_cursor},
    }


def order_json(order):
    return {
        "id": str(order.id),
        "event_id": str(order.event_id),
        "customer_email": order.customer_email,
        "customer_name": order.customer_name,
        "quantity": order.quantity,
        "unit_price": format_cents(order.unit_price_cents),
        "total_amount": format_cents(order.total_amount_cents),
        "currency": order.currency,
        "status": str(order.status),
        "payment_reference": order.payment_reference,
        "refund_reference": order.refund_reference,
        "failure_code": order.failure_code,
        "created_at": timestamp(order.created_at),
        "confirmed_at": timestamp(order.confirmed_at),
        "cancelled_at": timestamp(order.cancelled_at),
        "refunded_at": timestamp(order.refunded_at),
    }
