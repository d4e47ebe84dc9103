"""Ticket types: the kinds of ticket an event sells, each at its price and, if the organiser
wants, within a capacity of its own inside the event's.

Every change locks the event's row first, as purchases do (``ticketing.domain.inventory``), so
that a capacity is never checked against a count a purchase is changing.
"""

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError

from ticketing.models import HOLDING_STATUSES, EventStatus, Order, OrderItem, TicketType

from . import events, promo_codes, waiting_list
from .errors import (
    CapacityBelowSold,
    EventReadOnly,
    InvalidTicketType,
    LastTicketType,
    TicketTypeHasOrders,
    TicketTypeNotFound,
)

#: fields an organiser sets; ``price`` is a Decimal in the event's currency
FIELDS = (
    "name",
    "description",
    "price",
    "capacity",
    "sales_start",
    "sales_end",
    "min_per_order",
    "max_per_order",
    "hidden",
    "position",
)


def list_ticket_types(dbsession, event_id, *, include_hidden):
    """The event's types in display order (the event itself, for their currency and room)."""
    event = events.get_event(dbsession, event_id, with_types=True)
    return event, [t for t in event.ticket_types if include_hidden or not t.hidden]


def get_ticket_type(dbsession, event_id, ticket_type_id, *, include_hidden, for_update=False):
    statement = select(TicketType).where(
        TicketType.id == ticket_type_id, TicketType.event_id == event_id
    )
    if for_update:
        statement = statement.with_for_update()
    found = dbsession.scalar(statement)
    if found is None or (found.hidden and not include_hidden):
        raise TicketTypeNotFound(f"Event {event_id} has no ticket type {ticket_type_id}.")
    return found


def create_ticket_type(dbsession, event_id, fields, *, max_per_order_ceiling):
    """Add a type to an event; ``fields`` as in :data:`FIELDS` (name and price required)."""
    event = _changeable_event(dbsession, event_id)
    fields = dict(fields)
    price = fields.pop("price")
    if fields.get("position") is None:
        last = dbsession.scalar(
            select(func.max(TicketType.position)).where(TicketType.event_id == event_id)
        )
        fields["position"] = 0 if last is None else last + 1
    if fields.get("max_per_order") is None:
        fields["max_per_order"] = max_per_order_ceiling
    ticket_type = TicketType(
        event_id=event.id,
        price_cents=events.price_in(price, event.currency, "price"),
        sold=0,
        **{"min_per_order": 1, "hidden": False, **fields},
    )
    _check_rules(ticket_type)
    dbsession.add(ticket_type)
    dbsession.flush()
    return event, ticket_type


def update_ticket_type(dbsession, event_id, ticket_type_id, changes, *, now):
    """Change a type; its capacity may not drop below what orders took of it (and what is set
    aside for its waiting list). What a raised capacity frees goes to the line first."""
    event = _changeable_event(dbsession, event_id)
    ticket_type = get_ticket_type(
        dbsession, event_id, ticket_type_id, include_hidden=True, for_update=True
    )
    changes = dict(changes)
    if "price" in changes:
        ticket_type.price_cents = events.price_in(changes.pop("price"), event.currency, "price")
    capacity = changes.get("capacity", ticket_type.capacity)
    if capacity is not None and capacity < ticket_type.sold:
        raise CapacityBelowSold(
            f"{ticket_type.sold} {ticket_type.name} tickets are taken; its capacity cannot be "
            f"{capacity}.",
            sold=ticket_type.sold,
        )
    for field, value in changes.items():
        setattr(ticket_type, field, value)
    _check_rules(ticket_type)
    dbsession.flush()
    waiting_list.set_aside_for_raised_capacity(dbsession, event, now=now)
    return event, ticket_type


def delete_ticket_type(dbsession, event_id, ticket_type_id):
    """Delete a type that was never sold; an event keeps at least one."""
    event = _changeable_event(dbsession, event_id)
    ticket_type = get_ticket_type(
        dbsession, event_id, ticket_type_id, include_hidden=True, for_update=True
    )
    if dbsession.scalar(select(exists().where(OrderItem.ticket_type_id == ticket_type.id))):
        raise TicketTypeHasOrders(
            f"{ticket_type.name} was sold; hide it (hidden: true) or stop its sales instead."
        )
    if len(event.ticket_types) == 1:
        raise LastTicketType(f"{ticket_type.name} is the only ticket type of event {event_id}.")
    promo_codes.forget_ticket_type(dbsession, ticket_type.id)
    dbsession.delete(ticket_type)
    try:
        dbsession.flush()
    except IntegrityError:
        # An order item refers to it after all (SQLite, where the check above is not locked).
        raise TicketTypeHasOrders(f"{ticket_type.name} was sold.") from None


def availability(dbsession, event_id, *, include_hidden):
    """Capacity, sold, held, set aside and available, per type, with the waiting list's offers
    and people in line, and the event's totals of held, set aside, offered and waiting:
    (event, rows, totals). Held tickets are those of orders taken but not paid (holds, the
    waiting list's offers among them, payments under way or awaiting the buyer); a type's
    ``sold`` column counts them and its ``set_aside`` too, so ``sold`` here is what is paid
    for."""
    event, types = list_ticket_types(dbsession, event_id, include_hidden=include_hidden)
    held = dict(
        dbsession.execute(
            select(OrderItem.ticket_type_id, func.sum(OrderItem.quantity))
            .join(Order, Order.id == OrderItem.order_id)
            .where(Order.event_id == event_id, Order.status.in_(HOLDING_STATUSES))
            .group_by(OrderItem.ticket_type_id)
        ).all()
    )
    waiting_totals, waiting = waiting_list.summary(dbsession, event_id)
    rows = []
    for ticket_type in types:
        figures = waiting.get(ticket_type.id, {})
        rows.append(
            {
                "ticket_type": ticket_type,
                "capacity": ticket_type.capacity,
                "sold": ticket_type.sold - held.get(ticket_type.id, 0) - ticket_type.set_aside,
                "held": held.get(ticket_type.id, 0),
                "set_aside": ticket_type.set_aside,
                "offered": figures.get("tickets_offered", 0),
                "waiting": figures.get("waiting", 0),
                "available": ticket_type.available_within(event.available_tickets),
            }
        )
    totals = {
        "held": sum(held.values()),
        "set_aside": waiting_totals["set_aside"],
        "offered": waiting_totals["tickets_offered"],
        "waiting": waiting_totals["waiting"],
    }
    return event, rows, totals


def _changeable_event(dbsession, event_id):
    event = events.get_event(dbsession, event_id, for_update=True, with_types=True)
    if event.status == EventStatus.COMPLETED:
        raise EventReadOnly(f"Event {event_id} is completed; its ticket types cannot change.")
    return event


def _check_rules(ticket_type):
    if ticket_type.max_per_order < ticket_type.min_per_order:
        raise InvalidTicketType(
            f"max_per_order ({ticket_type.max_per_order}) is below min_per_order "
            f"({ticket_type.min_per_order}).",
            field="max_per_order",
        )
    start, end = ticket_type.sales_start, ticket_type.sales_end
    if start is not None and end is not None and end <= start:
        raise InvalidTicketType("sales_end must come after sales_start.", field="sales_end")
