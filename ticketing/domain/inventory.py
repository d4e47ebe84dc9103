"""The inventory of an event's tickets: its capacity, shared by its ticket types, and each type's
own capacity inside it.

Taking tickets for an order is all or nothing: every item needs room in its type and all of them
together need room in the event. Giving them back (a failed or cancelled order) returns each
item's tickets to its type and to the event.

Lock order, everywhere: the event's row first, then its types' rows in id order. Every writer of
a type's ``sold`` holds its event's row, so purchases, releases and an organiser's changes queue
on the event and can never deadlock on the types.
"""

import dataclasses
import functools
import uuid

from sqlalchemy import bindparam, select, update
from zope.sqlalchemy import mark_changed

from ticketing.models import Event, EventStatus, OrderItem, TicketType

from . import promo_codes, waiting_list
from .errors import (
    AboveMaxPerOrder,
    BelowMinPerOrder,
    EventNotFound,
    EventNotOnSale,
    InsufficientTickets,
    TicketTypeNotFound,
    TicketTypeNotOnSale,
    TicketTypeRequired,
    TicketTypeWrongEvent,
)


@dataclasses.dataclass(frozen=True)
class Item:
    """``quantity`` tickets of one type; ``ticket_type_id`` None: the event's only type on
    sale (the seed's purchase, which names no type)."""

    ticket_type_id: uuid.UUID | None
    quantity: int


@dataclasses.dataclass(frozen=True)
class TakenItem:
    ticket_type_id: uuid.UUID
    line: int
    name: str
    quantity: int
    unit_price_cents: int
    #: a promo code's discount of each of the item's tickets
    unit_discount_cents: int = 0


def total_quantity(items):
    return sum(item.quantity for item in items)


#: The CTEs that take an order's tickets on PostgreSQL, to open a statement of the caller's that
#: inserts the order from them. Parameters: ``p_event_id``, ``p_now``, ``p_quantity`` (all items
#: together), ``p_item_count``, ``p_published``, and either ``p_type_ids`` / ``p_quantities``
#: (arrays, one entry per item) or, for :data:`_ONLY_TYPE_ON_SALE`, nothing more.
#:
#: ``event`` locks the event's row, re-checked under its lock (READ COMMITTED re-reads a row it
#: waited for). For several items ``taken`` then locks the types' rows in id order, each
#: re-checked likewise, ``verdict`` has a row only if the event and every item have room, and
#: the two UPDATEs take the tickets only then. For one item (:data:`_TAKEN_AT_ONCE`) ``taken``
#: is the type's own conditional UPDATE, re-checked as it waits, and the event's follows from
#: it: one item cannot be half taken, and the type's row is written once rather than locked and
#: then written (with the tickets' key to their order, 308 -> 331 orders/s on ``make bench``'s
#: hot event).
#: ``verdict`` (event_id, currency, unit_price_cents, total_amount_cents) and ``taken`` (one row
#: per item) are for the caller's INSERTs, which must read ``verdict`` so that they insert
#: nothing when it is empty. One statement, so on its own it is all or nothing.
#:
#: With a promo code (:func:`take_tickets_ctes` ``with_code``) the types it unlocks may be
#: taken though hidden, ``taken`` has each item's discount, the code's use is taken after the
#: rows above are locked (``code_taken``, ``ticketing.domain.promo_codes``), ``verdict`` has a
#: row only if it was, and its total is after the discount (``discount_cents`` beside it); the
#: types are then always locked first, since the code's use may still fail after them.
_TAKE_TICKETS = """
wanted AS ({wanted}),
event AS MATERIALIZED (
    SELECT events.id, events.currency FROM events
    WHERE events.id = :p_event_id AND events.status = :p_published AND events.date > :p_now
      AND events.available_tickets >= :p_quantity
    FOR UPDATE
),
{taken},{code_taken}
verdict AS (
    SELECT event.id AS event_id, event.currency,
           CASE WHEN min(taken.unit_price_cents) = max(taken.unit_price_cents)
                THEN min(taken.unit_price_cents) END AS unit_price_cents,
           {totals}
    FROM event CROSS JOIN taken{code_join}
    GROUP BY event.id, event.currency
    HAVING count(*) = :p_item_count
),
event_taken AS (
    UPDATE events SET available_tickets = events.available_tickets - :p_quantity,
                      updated_at = :p_now
    FROM verdict WHERE events.id = verdict.event_id
){types_taken}"""

#: the wanted item fits in its type (``types``), of the locked event, on sale
_ITEM_FITS = """types.event_id = (SELECT event.id FROM event) AND {taken_on_sale}
      AND wanted.quantity BETWEEN types.min_per_order AND types.max_per_order
      AND (types.capacity IS NULL OR types.capacity - types.sold >= wanted.quantity)"""

#: ``taken`` for several items: each type's row locked and checked; ``_TYPES_TAKEN`` updates them
_TAKEN_LOCKED = """taken AS MATERIALIZED (
    SELECT types.id AS ticket_type_id, CAST(wanted.line AS integer) AS line, types.name,
           wanted.quantity, types.price_cents AS unit_price_cents{taken_columns}
    FROM ticket_types AS types JOIN wanted ON wanted.ticket_type_id = types.id
    WHERE {fits}
    ORDER BY types.id
    FOR UPDATE OF types
)"""

_TYPES_TAKEN = """,
types_taken AS (
    UPDATE ticket_types SET sold = ticket_types.sold + taken.quantity, updated_at = :p_now
    FROM taken CROSS JOIN verdict WHERE ticket_types.id = taken.ticket_type_id
)"""

#: ``taken`` for one item: the type's conditional UPDATE, after the event's row is locked
_TAKEN_AT_ONCE = """taken AS (
    UPDATE ticket_types AS types SET sold = types.sold + wanted.quantity, updated_at = :p_now
    FROM wanted
    WHERE types.id = wanted.ticket_type_id AND {fits}
    RETURNING types.id AS ticket_type_id, CAST(wanted.line AS integer) AS line, types.name,
              wanted.quantity, types.price_cents AS unit_price_cents
)"""

_NAMED_TYPES = """
    SELECT * FROM unnest(CAST(:p_type_ids AS uuid[]), CAST(:p_quantities AS integer[]))
        WITH ORDINALITY AS wanted(ticket_type_id, quantity, line)"""

_ONLY_TYPE_ON_SALE = """
    SELECT on_sale.id AS ticket_type_id, CAST(:p_quantity AS integer) AS quantity, 1 AS line
    FROM (
        SELECT types.id, count(*) OVER () AS how_many FROM ticket_types AS types
        WHERE types.event_id = :p_event_id AND {on_sale}
    ) AS on_sale
    WHERE on_sale.how_many = 1"""


#: a type (``types``) buyers may take at ``:p_now``: :meth:`TicketType.on_sale_at` in SQL
_ON_SALE = """NOT types.hidden
      AND (types.sales_start IS NULL OR types.sales_start <= :p_now)
      AND (types.sales_end IS NULL OR :p_now < types.sales_end)"""


#: the discounted total, and the discount, of ``verdict`` with a promo code
_DISCOUNTED_TOTALS = """sum((taken.unit_price_cents - taken.unit_discount_cents) * taken.quantity)
               AS total_amount_cents,
           sum(taken.unit_discount_cents * taken.quantity) AS discount_cents"""


def take_tickets_ctes(only_type, with_code=False, single_item=False):
    """The SQL of :data:`_TAKE_TICKETS` (without the leading ``WITH``) for items that name their
    types, or, with ``only_type``, for one item of the event's only type on sale;
    ``single_item``: the items are one (``only_type`` implies it); ``with_code``: applying a
    promo code and taking its use (the parameters of
    :meth:`~ticketing.domain.promo_codes.AppliedCode.taking_parameters` too)."""
    wanted = (_ONLY_TYPE_ON_SALE if only_type else _NAMED_TYPES).format(on_sale=_ON_SALE)
    if not with_code:
        at_once = only_type or single_item
        return _TAKE_TICKETS.format(
            wanted=wanted,
            taken=(_TAKEN_AT_ONCE if at_once else _TAKEN_LOCKED).format(
                taken_columns="", fits=_ITEM_FITS.format(taken_on_sale=_ON_SALE)
            ),
            code_taken="",
            totals="sum(taken.unit_price_cents * taken.quantity) AS total_amount_cents",
            code_join="",
            types_taken="" if at_once else _TYPES_TAKEN,
        )
    return _TAKE_TICKETS.format(
        wanted=wanted,
        taken=_TAKEN_LOCKED.format(
            taken_columns=promo_codes.TAKEN_COLUMNS_SQL,
            fits=_ITEM_FITS.format(
                taken_on_sale=_ON_SALE.replace(
                    "NOT types.hidden", f"(NOT types.hidden OR {promo_codes.UNLOCKED_SQL})"
                )
            ),
        ),
        code_taken=promo_codes.TAKE_USE_CTE,
        totals=_DISCOUNTED_TOTALS,
        code_join=" CROSS JOIN code_taken",
        types_taken=_TYPES_TAKEN,
    )


def take_tickets_parameters(event_id, items, now):
    parameters = {
        "p_event_id": event_id,
        "p_now": now,
        "p_quantity": total_quantity(items),
        "p_item_count": len(items),
        "p_published": EventStatus.PUBLISHED.value,
    }
    if items[0].ticket_type_id is not None:
        parameters["p_type_ids"] = [item.ticket_type_id for item in items]
        parameters["p_quantities"] = [item.quantity for item in items]
    return parameters


def take_tickets_in_turn(dbsession, event_id, items, *, now, unlocked=None):
    """Take the tickets statement by statement, for databases that cannot put an UPDATE in a
    CTE (SQLite); return (currency, [TakenItem]), or None when they cannot all be taken. Call it
    in a transaction and abort that after a None: a refusal half-way leaves writes that only the
    abort undoes (then :func:`refuse` says why). ``unlocked(ticket_type_id)``: whether a hidden
    type may be taken (a promo code unlocks it)."""
    if items[0].ticket_type_id is None:
        only = _only_type_on_sale(dbsession, event_id, now)
        if only is None:
            return None
        items = [Item(only, items[0].quantity)]
    events = Event.__table__
    currency = dbsession.scalar(
        events.update()
        .where(
            events.c.id == event_id,
            events.c.status == EventStatus.PUBLISHED,
            events.c.date > now,
            events.c.available_tickets >= total_quantity(items),
        )
        .values(
            available_tickets=events.c.available_tickets - total_quantity(items), updated_at=now
        )
        .returning(events.c.currency)
    )
    if currency is None:
        return None
    taken = []
    for line, item in sorted(enumerate(items, start=1), key=lambda pair: pair[1].ticket_type_id):
        row = dbsession.execute(
            _take_of_type(hidden_too=bool(unlocked and unlocked(item.ticket_type_id))),
            {
                "p_id": item.ticket_type_id,
                "p_event_id": event_id,
                "p_quantity": item.quantity,
                "p_now": now,
            },
        ).one_or_none()
        if row is None:
            return None
        taken.append(TakenItem(item.ticket_type_id, line, row.name, item.quantity, row.price_cents))
    mark_changed(dbsession)
    return currency, sorted(taken, key=lambda each: each.line)


@functools.cache
def _take_of_type(hidden_too=False):
    types = TicketType.__table__
    now = bindparam("p_now", type_=types.c.updated_at.type)
    quantity = bindparam("p_quantity", type_=types.c.sold.type)
    return (
        types.update()
        .where(
            types.c.id == bindparam("p_id", type_=types.c.id.type),
            types.c.event_id == bindparam("p_event_id", type_=types.c.event_id.type),
            *(_in_sales_window(types, now) if hidden_too else _on_sale(types, now)),
            types.c.min_per_order <= quantity,
            types.c.max_per_order >= quantity,
            (types.c.capacity.is_(None)) | (types.c.capacity - types.c.sold >= quantity),
        )
        .values(sold=types.c.sold + quantity, updated_at=now)
        .returning(types.c.name, types.c.price_cents)
    )


def _on_sale(types, now):
    return (types.c.hidden.is_(False), *_in_sales_window(types, now))


def _in_sales_window(types, now):
    return (
        types.c.sales_start.is_(None) | (types.c.sales_start <= now),
        types.c.sales_end.is_(None) | (types.c.sales_end > now),
    )


def _only_type_on_sale(dbsession, event_id, now):
    types = TicketType.__table__
    on_sale = list(
        dbsession.scalars(
            select(types.c.id).where(types.c.event_id == event_id, *_on_sale(types, now)).limit(2)
        )
    )
    return on_sale[0] if len(on_sale) == 1 else None


def refuse(dbsession, event_id, items, *, now, unlocked=None):
    """Raise why ``items`` could not be taken; only a refusal pays for these queries.
    ``unlocked`` as for :func:`take_tickets_in_turn`."""
    event = dbsession.get(Event, event_id, populate_existing=True)
    if event is None:
        raise EventNotFound(f"No event has the id {event_id}.")
    if event.status != EventStatus.PUBLISHED or event.date <= now:
        raise EventNotOnSale(f"Event {event_id} is {event.status} and dated {event.date:%Y-%m-%d}.")
    types = {
        each.id: each
        for each in dbsession.scalars(
            select(TicketType)
            .where(TicketType.event_id == event_id)
            .order_by(TicketType.position, TicketType.created_at)
            .execution_options(populate_existing=True)
        )
    }
    if items[0].ticket_type_id is None:
        on_sale = [each for each in types.values() if each.on_sale_at(now)]
        if len(on_sale) > 1:
            raise TicketTypeRequired(
                "The event sells several ticket types; name one in order.ticket_type_id or "
                "list them in order.items: "
                + ", ".join(f"{each.name} ({each.id})" for each in on_sale)
                + ".",
                ticket_types=[{"id": str(each.id), "name": each.name} for each in on_sale],
            )
        if not on_sale:
            raise TicketTypeNotOnSale("None of the event's ticket types is on sale now.")
        items = [Item(on_sale[0].id, items[0].quantity)]
    for item in items:
        _refuse_item(dbsession, event, types.get(item.ticket_type_id), item, now, unlocked)
    wanted = total_quantity(items)
    if event.available_tickets < wanted:
        raise InsufficientTickets(
            f"{wanted} tickets asked, {event.available_tickets} left for the event.",
            available_tickets=event.available_tickets,
        )
    # Everything fits now: another order took and gave back tickets in between.
    raise InsufficientTickets("The tickets were taken meanwhile; try again.")


def _refuse_item(dbsession, event, ticket_type, item, now, unlocked):
    unlocked = bool(ticket_type and unlocked and unlocked(ticket_type.id))
    if ticket_type is None or (ticket_type.hidden and not unlocked):
        other_event = dbsession.scalar(
            select(TicketType.event_id).where(
                TicketType.id == item.ticket_type_id, TicketType.hidden.is_(False)
            )
        )
        if other_event is not None:
            raise TicketTypeWrongEvent(
                f"Ticket type {item.ticket_type_id} is not one of event {event.id}'s.",
                ticket_type_id=str(item.ticket_type_id),
            )
        raise TicketTypeNotFound(
            f"Event {event.id} has no ticket type {item.ticket_type_id}.",
            ticket_type_id=str(item.ticket_type_id),
        )
    named = {"ticket_type_id": str(ticket_type.id)}
    if not ticket_type.on_sale_at(now, hidden_too=unlocked):
        raise TicketTypeNotOnSale(
            f"{ticket_type.name} is on sale from {_when(ticket_type.sales_start)} until "
            f"{_when(ticket_type.sales_end)}.",
            **named,
        )
    if item.quantity < ticket_type.min_per_order:
        raise BelowMinPerOrder(
            f"{ticket_type.name}: at least {ticket_type.min_per_order} per order.",
            field="min_per_order",
            min_per_order=ticket_type.min_per_order,
            **named,
        )
    if item.quantity > ticket_type.max_per_order:
        raise AboveMaxPerOrder(
            f"{ticket_type.name}: at most {ticket_type.max_per_order} per order.",
            field="max_per_order",
            max_per_order=ticket_type.max_per_order,
            **named,
        )
    left = ticket_type.available_within(event.available_tickets)
    if item.quantity > left:
        raise InsufficientTickets(
            f"{item.quantity} {ticket_type.name} tickets asked, {left} left.",
            available_tickets=left,
            **named,
        )


def _when(moment):
    return "the start" if moment is None else moment.isoformat().replace("+00:00", "Z")


def release_order(dbsession, event_id, order_id, quantity, *, now):
    """Give back the tickets of a failed or cancelled order: each item's to its type, all of
    them to the event (whose row is locked first, as everywhere), and its promo code's use;
    then, while anyone waits for a type of the event, set aside for them what they wait for
    (:func:`~ticketing.domain.waiting_list.set_aside_for_waiters`), and end the offer if the
    order was one. The type's UPDATE asks all three, so that an order without a code, or
    nobody waiting, costs no statement."""
    dbsession.execute(
        update(Event)
        .where(Event.id == event_id)
        .values(available_tickets=Event.available_tickets + quantity, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    of_order = select(OrderItem.quantity).where(
        OrderItem.order_id == order_id, OrderItem.ticket_type_id == TicketType.id
    )
    # Asked under the event's lock, which every writer of the list and the types holds: the
    # statement's snapshot has all of theirs.
    given_back = dbsession.execute(
        update(TicketType)
        .where(
            TicketType.id.in_(
                select(OrderItem.ticket_type_id).where(OrderItem.order_id == order_id)
            )
        )
        .values(sold=TicketType.sold - of_order.scalar_subquery(), updated_at=now)
        .returning(
            waiting_list.anyone_waits_for_event(TicketType.event_id).label("anyone_waits"),
            waiting_list.is_offer(order_id).label("offer"),
            promo_codes.holds_use(order_id).label("holds_use"),
        )
        .execution_options(synchronize_session=False)
    ).all()
    if any(row.holds_use for row in given_back):
        promo_codes.give_back_use(dbsession, order_id)
    if any(row.offer for row in given_back):
        waiting_list.end_offer(dbsession, order_id, now=now)
    if any(row.anyone_waits for row in given_back):
        waiting_list.set_aside_for_waiters(dbsession, event_id, now=now)


def retake_order(dbsession, event_id, order_id, quantity, *, now):
    """Take again the tickets an order gave back (a hold that expired, whose buyer or money
    came back after all): every item's in its type and all of them in the event, and its promo
    code's use, or nothing; False when they are no longer all there (the code used up), or the
    event has taken place. Locks the event's row, then its types' in id order, then the code's,
    as everywhere."""
    event = dbsession.execute(
        select(Event.available_tickets, Event.date).where(Event.id == event_id).with_for_update()
    ).one()
    if event.date <= now or event.available_tickets < quantity:
        return False
    items = dbsession.execute(
        select(OrderItem.ticket_type_id, OrderItem.quantity).where(OrderItem.order_id == order_id)
    ).all()
    types = {
        row.id: row
        for row in dbsession.execute(
            select(TicketType.id, TicketType.capacity, TicketType.sold)
            .where(TicketType.id.in_([item.ticket_type_id for item in items]))
            .order_by(TicketType.id)
            .with_for_update()
        )
    }
    for item in items:
        ticket_type = types[item.ticket_type_id]
        if (
            ticket_type.capacity is not None
            and ticket_type.capacity - ticket_type.sold < item.quantity
        ):
            return False
    if not promo_codes.retake_use(dbsession, order_id, now=now):
        return False
    dbsession.execute(
        update(Event)
        .where(Event.id == event_id)
        .values(available_tickets=Event.available_tickets - quantity, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    of_order = select(OrderItem.quantity).where(
        OrderItem.order_id == order_id, OrderItem.ticket_type_id == TicketType.id
    )
    dbsession.execute(
        update(TicketType)
        .where(TicketType.id.in_(list(types)))
        .values(sold=TicketType.sold + of_order.scalar_subquery(), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    mark_changed(dbsession)
    return True
