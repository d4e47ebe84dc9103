"""Resources as the API shows them, as plain JSON: the views answer with them, and the domain's
events carry them (``ticketing.events``), so a webhook's ``data`` is what ``GET`` returns. Nothing
here knows HTTP; ``ticketing.views.serialize`` holds their schemas for the OpenAPI document."""

import datetime as dt

from ticketing.models import HOLD_STATUSES
from ticketing.money import format_money


def timestamp(value):
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def event_json(event, *, now, include_hidden):
    """``event`` with its ticket types loaded; hidden types only ``include_hidden``."""
    shown = [t for t in event.ticket_types if include_hidden or not t.hidden]
    first = event.first_type_on_sale(now)
    return {
        "id": str(event.id),
        "name": event.name,
        "venue": event.venue,
        "date": timestamp(event.date),
        "ticket_price": format_money(first.price_cents, event.currency),
        "currency": event.currency,
        "total_tickets": event.total_tickets,
        "available_tickets": event.available_tickets,
        "ticket_types": [
            {
                "id": str(ticket_type.id),
                "name": ticket_type.name,
                "price": format_money(ticket_type.price_cents, event.currency),
                "available": ticket_type.available_within(event.available_tickets),
            }
            for ticket_type in shown
        ],
        "status": str(event.status),
        "created_at": timestamp(event.created_at),
        "updated_at": timestamp(event.updated_at),
    }


def ticket_type_json(ticket_type, event, *, now, unlocked=False):
    """``unlocked``: shown to a buyer whose promo code unlocks it, on sale though hidden."""
    return {
        "id": str(ticket_type.id),
        "event_id": str(ticket_type.event_id),
        "name": ticket_type.name,
        "description": ticket_type.description,
        "price": format_money(ticket_type.price_cents, event.currency),
        "currency": event.currency,
        "capacity": ticket_type.capacity,
        "available": ticket_type.available_within(event.available_tickets),
        "sales_start": timestamp(ticket_type.sales_start),
        "sales_end": timestamp(ticket_type.sales_end),
        "on_sale": ticket_type.on_sale_at(now, hidden_too=unlocked),
        "min_per_order": ticket_type.min_per_order,
        "max_per_order": ticket_type.max_per_order,
        "hidden": ticket_type.hidden,
        "position": ticket_type.position,
        "created_at": timestamp(ticket_type.created_at),
        "updated_at": timestamp(ticket_type.updated_at),
    }


def order_json(order):
    def money(minor_units):
        return None if minor_units is None else format_money(minor_units, order.currency)

    return {
        "id": str(order.id),
        "event_id": str(order.event_id),
        "customer_email": order.customer_email,
        "customer_name": order.customer_name,
        "quantity": order.quantity,
        "unit_price": money(order.unit_price_cents),
        "total_amount": money(order.total_amount_cents),
        "items": [
            {
                "ticket_type_id": str(item.ticket_type_id),
                "name": item.name,
                "quantity": item.quantity,
                "unit_price": money(item.unit_price_cents),
                "subtotal": money(item.subtotal_cents),
                "discount": money(item.discount_cents),
                "paid": money(item.subtotal_cents - item.discount_cents),
            }
            for item in order.items
        ],
        "discount_total": money(order.discount_cents),
        "promo_code": order.promo_code,
        "currency": order.currency,
        "status": str(order.status),
        "payment_reference": order.payment_reference,
        "refund_reference": order.refund_reference,
        "failure_code": order.failure_code,
        "expires_at": timestamp(order.expires_at) if order.status in HOLD_STATUSES else None,
        "created_at": timestamp(order.created_at),
        "confirmed_at": timestamp(order.confirmed_at),
        "cancelled_at": timestamp(order.cancelled_at),
        "refunded_at": timestamp(order.refunded_at),
    }


def check_in_json(admission):
    check_in, ticket = admission.check_in, admission.ticket
    return {
        "id": str(check_in.id),
        "event_id": str(check_in.event_id),
        "ticket_id": str(ticket.id),
        "order_id": str(ticket.order_id),
        "ticket_type_id": str(ticket.ticket_type_id),
        "ticket_type": admission.ticket_type_name,
        "attendee_name": ticket.attendee_name,
        "attendee_email": ticket.attendee_email,
        "checked_in_at": timestamp(check_in.checked_in_at),
        "checked_in_by": {
            "key_id": None if check_in.api_key_id is None else str(check_in.api_key_id),
            "name": check_in.key_name,
        },
        "nonce": check_in.nonce,
        "undone_at": timestamp(check_in.undone_at),
    }
