"""Plain factory functions: rows written and committed straight through an engine."""

import datetime as dt
import uuid

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ticketing.models import Event, EventStatus, Order, OrderStatus


def future(days=30):
    return dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)


def create_event(engine, **fields):
    values = {
        "name": "Concert",
        "venue": "Stadium",
        "date": future(),
        "ticket_price_cents": 5000,
        "total_tickets": 100,
        "status": EventStatus.PUBLISHED,
    }
    values.update(fields)
    values.setdefault("available_tickets", values["total_tickets"])
    with Session(engine, expire_on_commit=False) as session, session.begin():
        event = Event(**values)
        session.add(event)
    return event


def create_order(engine, event, **fields):
    """An order row as the purchase would leave it (confirmed unless told otherwise)."""
    values = {
        "event_id": event.id,
        "customer_email": "a@example.com",
        "customer_name": "A",
        "quantity": 2,
        "unit_price_cents": event.ticket_price_cents,
        "currency": "USD",
        "status": OrderStatus.CONFIRMED,
    }
    values.update(fields)
    values.setdefault("total_amount_cents", values["unit_price_cents"] * values["quantity"])
    with Session(engine, expire_on_commit=False) as session, session.begin():
        order = Order(**values)
        session.add(order)
    return order


def set_event(engine, event_id, **values):
    with Session(engine) as session, session.begin():
        session.execute(update(Event).where(Event.id == event_id).values(**values))


def load_event(engine, event_id):
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Event, event_id)


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
    """Tickets and money balance: no order is left pending; for every event, available +
    confirmed quantities = total and nothing is below zero; the gateway keeps exactly one charge
    per confirmed order and none for anything else."""
    with Session(engine) as session:
        pending = session.scalar(
            select(func.count()).select_from(Order).where(Order.status == OrderStatus.PENDING)
        )
        assert pending == 0, f"{pending} orders left pending"
        confirmed = (
            select(Order.event_id, func.sum(Order.quantity).label("sold"))
            .where(Order.status == OrderStatus.CONFIRMED)
            .group_by(Order.event_id)
            .subquery()
        )
        rows = session.execute(
            select(
                Event.id, Event.total_tickets, Event.available_tickets, confirmed.c.sold
            ).outerjoin(confirmed, confirmed.c.event_id == Event.id)
        ).all()
        for event_id, total, available, sold in rows:
            assert available >= 0, f"event {event_id} is oversold"
            assert available + (sold or 0) == total, (
                f"event {event_id}: {available} available + {sold or 0} sold != {total}"
            )
        references = list(
            session.scalars(
                select(Order.payment_reference).where(Order.status == OrderStatus.CONFIRMED)
            )
        )
    kept = sorted(charge.id for charge in gateway.kept_charges())
    assert kept == sorted(references), f"kept charges {kept} != confirmed orders {references}"
