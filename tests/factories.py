"""Plain factory functions: rows written and committed straight through an engine."""

import datetime as dt
import uuid

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ticketing.domain import api_keys, tickets
from ticketing.domain.tickets import TicketCodes
from ticketing.models import (
    HOLDING_STATUSES,
    EntryStatus,
    Event,
    EventStatus,
    Order,
    OrderItem,
    OrderStatus,
    Ticket,
    TicketStatus,
    TicketType,
    WaitingListEntry,
)

from .conftest import TEST_TICKET_SECRET

#: the codes of the tests' apps (app_settings' ticket secret)
CODES = TicketCodes(TEST_TICKET_SECRET)


def future(days=30):
    return dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)


def create_event(engine, ticket_price_cents=5000, **fields):
    """A published event selling one type, "General admission", at ``ticket_price_cents``; the
    tickets it has sold (total - available) are that type's."""
    values = {
        "name": "Concert",
        "venue": "Stadium",
        "date": future(),
        "total_tickets": 100,
        "status": EventStatus.PUBLISHED,
    }
    values.update(fields)
    values.setdefault("available_tickets", values["total_tickets"])
    with Session(engine, expire_on_commit=False) as session, session.begin():
        event = Event(**values)
        event.ticket_types = [
            TicketType(
                name="General admission",
                price_cents=ticket_price_cents,
                sold=values["total_tickets"] - values["available_tickets"],
                max_per_order=10,
                position=0,
            )
        ]
        session.add(event)
    return event


def create_ticket_type(engine, event, **fields):
    values = {
        "event_id": event.id,
        "name": "VIP",
        "price_cents": 12000,
        "capacity": None,
        "sold": 0,
        "max_per_order": 10,
        "position": len(event.ticket_types),
    }
    values.update(fields)
    with Session(engine, expire_on_commit=False) as session, session.begin():
        ticket_type = TicketType(**values)
        session.add(ticket_type)
    event.ticket_types.append(ticket_type)
    return ticket_type


def create_order(engine, event, ticket_type=None, **fields):
    """An order row as the purchase would leave it (confirmed unless told otherwise), with one
    item of ``ticket_type`` (the event's first by default) and, confirmed or cancelled, its
    tickets (valid or void). It takes no tickets from the inventory: the event's counts are the
    caller's to set."""
    ticket_type = ticket_type or event.ticket_types[0]
    values = {
        "event_id": event.id,
        "customer_email": "a@example.com",
        "customer_name": "A",
        "quantity": 2,
        "unit_price_cents": ticket_type.price_cents,
        "currency": "USD",
        "status": OrderStatus.CONFIRMED,
    }
    values.update(fields)
    values.setdefault("total_amount_cents", values["unit_price_cents"] * values["quantity"])
    with Session(engine, expire_on_commit=False) as session, session.begin():
        order = Order(**values)
        order.items = [
            OrderItem(
                ticket_type_id=ticket_type.id,
                line=1,
                name=ticket_type.name,
                quantity=values["quantity"],
                unit_price_cents=values["unit_price_cents"],
                subtotal_cents=values["total_amount_cents"],
            )
        ]
        session.add(order)
        session.flush()
        if order.status in (OrderStatus.CONFIRMED, OrderStatus.CANCELLED):
            status = (
                TicketStatus.VALID if order.status == OrderStatus.CONFIRMED else TicketStatus.VOID
            )
            session.add_all(
                Ticket(
                    id=planned.id,
                    order_id=order.id,
                    ticket_type_id=planned.ticket_type_id,
                    event_id=order.event_id,
                    attendee_name=order.customer_name,
                    attendee_email=order.customer_email,
                    status=status,
                    code_hash=planned.code_hash,
                )
                for planned in tickets.plan_tickets(CODES, order)
            )
    return order


def order_tickets(engine, order_id):
    with Session(engine, expire_on_commit=False) as session:
        return list(
            session.scalars(
                select(Ticket)
                .where(Ticket.order_id == uuid.UUID(str(order_id)))
                .order_by(Ticket.id)
            )
        )


def set_event(engine, event_id, **values):
    with Session(engine) as session, session.begin():
        session.execute(update(Event).where(Event.id == event_id).values(**values))


def load_event(engine, event_id):
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Event, uuid.UUID(str(event_id)))


def load_order(engine, order_id):
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Order, uuid.UUID(str(order_id)))


def orders_of(engine, event_id=None):
    with Session(engine, expire_on_commit=False) as session:
        statement = select(Order)
        if event_id is not None:
            statement = statement.where(Order.event_id == event_id)
        return list(session.scalars(statement))


def assert_books_balance(engine, gateway):
    """Tickets and money balance: no order is left pending; every confirmed order holds one
    valid ticket per unit of each item, a cancelled one as many void, any other none; for
    every event, available +
    confirmed quantities = total and nothing is below zero; for every ticket type, its sold
    count is its confirmed items' quantities and within its capacity, and the event's types
    together sold what the event did; every order's items add up to its quantity and total; the
    gateway keeps exactly one charge per confirmed order and none for anything else. Tickets
    set aside for a waiting list count as taken (in the type's sold, out of the event's
    available), and the waiting lists balance (:func:`assert_waiting_lists_balance`)."""
    with Session(engine) as session:
        pending = session.scalar(
            select(func.count()).select_from(Order).where(Order.status == OrderStatus.PENDING)
        )
        assert pending == 0, f"{pending} orders left pending"
        _assert_types_balance(session)
        assert_tickets_issued_once(session)
        assert_waiting_lists_balance(session)
        confirmed = (
            select(Order.event_id, func.sum(Order.quantity).label("sold"))
            .where(Order.status == OrderStatus.CONFIRMED)
            .group_by(Order.event_id)
            .subquery()
        )
        set_aside = (
            select(TicketType.event_id, func.sum(TicketType.set_aside).label("set_aside"))
            .group_by(TicketType.event_id)
            .subquery()
        )
        rows = session.execute(
            select(
                Event.id,
                Event.total_tickets,
                Event.available_tickets,
                confirmed.c.sold,
                set_aside.c.set_aside,
            )
            .outerjoin(confirmed, confirmed.c.event_id == Event.id)
            .outerjoin(set_aside, set_aside.c.event_id == Event.id)
        ).all()
        for event_id, total, available, sold, aside in rows:
            assert available >= 0, f"event {event_id} is oversold"
            assert available + (sold or 0) + (aside or 0) == total, (
                f"event {event_id}: {available} available + {sold or 0} sold + {aside or 0} "
                f"set aside != {total}"
            )
        references = list(
            session.scalars(
                select(Order.payment_reference).where(Order.status == OrderStatus.CONFIRMED)
            )
        )
    kept = sorted(charge.id for charge in gateway.kept_charges())
    assert kept == sorted(references), f"kept charges {kept} != confirmed orders {references}"


def _assert_types_balance(session):
    confirmed_items = (
        select(OrderItem.ticket_type_id, func.sum(OrderItem.quantity).label("sold"))
        .join(Order, Order.id == OrderItem.order_id)
        .where(Order.status == OrderStatus.CONFIRMED)
        .group_by(OrderItem.ticket_type_id)
        .subquery()
    )
    types = session.execute(
        select(
            TicketType.id,
            TicketType.capacity,
            TicketType.sold,
            TicketType.set_aside,
            confirmed_items.c.sold,
        ).outerjoin(confirmed_items, confirmed_items.c.ticket_type_id == TicketType.id)
    ).all()
    for type_id, capacity, sold, set_aside, confirmed in types:
        assert sold == (confirmed or 0) + set_aside, (
            f"type {type_id}: sold {sold} != confirmed {confirmed} + set aside {set_aside}"
        )
        assert capacity is None or sold <= capacity, f"type {type_id} is oversold"
    by_event = session.execute(
        select(Event.id, Event.total_tickets - Event.available_tickets, func.sum(TicketType.sold))
        .join(TicketType, TicketType.event_id == Event.id)
        .group_by(Event.id, Event.total_tickets, Event.available_tickets)
    ).all()
    for event_id, taken, types_sold in by_event:
        assert taken == types_sold, f"event {event_id}: {taken} taken, its types sold {types_sold}"
    orders = session.execute(
        select(
            Order.id,
            Order.quantity,
            Order.total_amount_cents,
            func.sum(OrderItem.quantity),
            func.sum(OrderItem.subtotal_cents),
        )
        .join(OrderItem, OrderItem.order_id == Order.id)
        .group_by(Order.id, Order.quantity, Order.total_amount_cents)
    ).all()
    for order_id, quantity, total, items_quantity, items_total in orders:
        assert (quantity, total) == (items_quantity, items_total), f"order {order_id}'s items"


#: the orders an entry's offer may be, by the entry's status
OFFER_ORDER_STATUSES = {
    EntryStatus.OFFERED: set(HOLDING_STATUSES),
    EntryStatus.PURCHASED: {OrderStatus.CONFIRMED, OrderStatus.CANCELLED},
    # Given back; or paid for after all, late, its tickets still there (held again until the
    # payment settles it: confirmed, the entry is purchased).
    EntryStatus.EXPIRED: {
        OrderStatus.EXPIRED,
        OrderStatus.CANCELLED,
        OrderStatus.FAILED,
        *HOLDING_STATUSES,
    },
}


def assert_waiting_lists_balance(session):
    """Every offer is a hold of its entry's quantity of its type, for its email and name, in the
    state its entry says (offered: held; purchased: paid; expired: given back), one order per
    offer; waiting and left entries have none; one entry in line per email and type; no type
    keeps set aside more than its line wants, nor anything with nobody in line."""
    wanted = dict(
        session.execute(
            select(WaitingListEntry.ticket_type_id, func.sum(WaitingListEntry.quantity))
            .where(WaitingListEntry.status == EntryStatus.WAITING)
            .group_by(WaitingListEntry.ticket_type_id)
        ).all()
    )
    for type_id, set_aside in session.execute(select(TicketType.id, TicketType.set_aside)):
        assert set_aside <= wanted.get(type_id, 0), (
            f"type {type_id}: {set_aside} set aside, its line wants {wanted.get(type_id, 0)}"
        )
    in_line = set()
    for entry in session.scalars(select(WaitingListEntry)):
        if entry.status in (EntryStatus.WAITING, EntryStatus.OFFERED):
            key = (entry.ticket_type_id, entry.email)
            assert key not in in_line, f"{entry.email} twice in line for {entry.ticket_type_id}"
            in_line.add(key)
        if entry.status in (EntryStatus.WAITING, EntryStatus.LEFT) and entry.offered_at is None:
            assert entry.order_id is None, f"entry {entry.id} has an order, never offered"
            continue
        order = session.get(Order, entry.order_id)
        assert order is not None, f"entry {entry.id} ({entry.status}) has no offer"
        if entry.status != EntryStatus.LEFT:
            assert order.status in OFFER_ORDER_STATUSES[entry.status], (
                f"entry {entry.id} is {entry.status}, its offer {order.status}"
            )
        [item] = order.items
        assert (order.customer_email, order.customer_name, order.quantity) == (
            entry.email, entry.name, entry.quantity,
        )  # fmt: skip
        assert item.ticket_type_id == entry.ticket_type_id


def assert_tickets_issued_once(session):
    """One valid ticket per unit of every confirmed order, as many void for every cancelled one
    that had been confirmed (a hold given back never had any), none for any other."""
    issued = {
        (order_id, type_id, status): count
        for order_id, type_id, status, count in session.execute(
            select(Ticket.order_id, Ticket.ticket_type_id, Ticket.status, func.count()).group_by(
                Ticket.order_id, Ticket.ticket_type_id, Ticket.status
            )
        )
    }
    owed = {}
    for order_id, status, confirmed_at, type_id, quantity in session.execute(
        select(
            Order.id, Order.status, Order.confirmed_at, OrderItem.ticket_type_id, OrderItem.quantity
        ).join(OrderItem, OrderItem.order_id == Order.id)
    ):
        ticket_status = {
            OrderStatus.CONFIRMED: TicketStatus.VALID,
            OrderStatus.CANCELLED: TicketStatus.VOID if confirmed_at else None,
        }.get(status)
        if ticket_status is not None:
            owed[(order_id, type_id, ticket_status)] = quantity
    assert issued == owed, "tickets issued != one per unit of confirmed and cancelled orders"


def create_key(engine, scope="admin", name="Test key", event_ids=None, revoked=False):
    """An API key of ``scope`` in the database, and the key itself (for a Bearer header)."""
    now = dt.datetime.now(dt.UTC)
    with Session(engine, expire_on_commit=False) as session, session.begin():
        key, secret = api_keys.create_key(
            session, name=name, scope=scope, event_ids=event_ids, now=now
        )
        if revoked:
            key.revoked_at = now
    return key, secret
