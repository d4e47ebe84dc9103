"""Plain-JSON shapes of domain objects."""

import datetime as dt

from ticketing.money import format_cents


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
