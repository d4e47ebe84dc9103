"""Helpers for the tests of holds and asynchronous payments: reserve, pay, finish a payment's
3-D Secure (mock gateway), post signed Stripe events, and check the books, which every one of
those tests does last."""

import collections
import datetime as dt
import time
import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ticketing.adapters import mock_webhooks
from ticketing.domain.ticket_types import availability
from ticketing.models import (
    HOLDING_STATUSES,
    EmailKind,
    Event,
    EventLogEntry,
    Order,
    OrderItem,
    OrderStatus,
    OutboxEmail,
    TicketType,
)

from .conftest import WEBHOOK_SECRET
from .factories import (
    assert_charges_kept,
    assert_promo_uses,
    assert_tickets_issued_once,
    assert_waiting_lists_balance,
    confirmed_charges,
    load_order,
)

THREE_D_SECURE = "pm_card_threeDSecureRequired"


def order_body(**fields):
    order = {"customer_email": "buyer@example.com", "customer_name": "Buyer", "quantity": 1}
    order.update(fields)
    return {"order": {name: value for name, value in order.items() if value is not None}}


def reserve(testapp, event, status=201, **fields):
    return testapp.post_json(f"/api/events/{event.id}/orders", order_body(**fields), status=status)


def pay(testapp, order_id, payment_method="pm_card_visa", status=200):
    return testapp.post_json(
        f"/api/orders/{order_id}/pay",
        {"payment": {"payment_method": payment_method}},
        status=status,
    )


def complete_payment_action(app, gateway, order_id, succeed=True):
    """The buyer finishes 3-D Secure for an order awaiting it (mock gateway); the webhook
    Stripe would send is delivered through the app's webhook view. Returns its response."""
    order = load_order(app.registry["dbengine"], uuid.UUID(str(order_id)))
    return mock_webhooks.complete_payment_action(
        app, gateway, order.payment_reference, succeed=succeed
    )


def stripe_event(event_type, intent, event_id=None):
    """A Stripe event of ``event_type`` carrying ``intent`` (a dict, as Stripe's API shows it)."""
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "created": int(time.time()),
        "type": event_type,
        "data": {"object": intent},
    }


def post_stripe_event(testapp, event, secret=WEBHOOK_SECRET, timestamp=None, status=200):
    body, signature = mock_webhooks.signed(event, secret, timestamp)
    return testapp.post(
        "/api/webhooks/stripe",
        body,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        status=status,
    )


def emails_of(engine, order_id, kind=None):
    with Session(engine) as session:
        statement = select(OutboxEmail.kind).where(OutboxEmail.order_id == order_id)
        kinds = [str(each) for each in session.scalars(statement)]
    return kinds if kind is None else [each for each in kinds if each == kind]


def later(minutes):
    return dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)


class FakeStripeLedger:
    """The fake Stripe server's books as the mock gateway's ledger shows its own: the
    PaymentIntents that hold money (succeeded, not refunded)."""

    def __init__(self, fake):
        self.fake = fake

    def kept_charges(self):
        kept = []
        for intent in self.fake.payment_intents.values():
            charge = self.fake.charges.get(intent.get("latest_charge") or "")
            if intent["status"] == "succeeded" and charge and not charge["refunded"]:
                kept.append(intent)
        kept_charge = collections.namedtuple("Kept", "id amount_cents")
        return [kept_charge(intent["id"], intent["amount"]) for intent in kept]


def assert_books(engine, ledger):
    """The books of holds and payments balance, counted from the orders themselves:

    - per event: available + set aside + held + sold = capacity (set aside: kept for the waiting
      lists; held: orders reserved, pending or awaiting the buyer, the lists' offers among
      them; sold: confirmed), and the availability the API shows says the same;
    - per ticket type: its taken count is its held + sold items and its set aside, within its
      capacity (so its own remaining + set aside + held + sold = capacity), and the API's held,
      sold and set aside are those;
    - the waiting lists balance (``factories.assert_waiting_lists_balance``);
    - the tickets: one valid per unit of a confirmed order, void for a cancelled one that had
      been confirmed, none for any other;
    - the gateway keeps exactly one charge per confirmed order that costs something (its
      payment_reference), of what the order's buyer pays, and none for any other order (one that
      costs nothing has no payment);
    - every promo code's uses are the orders holding one (reserved, pending, awaiting the buyer,
      confirmed), within its max_uses.
    """
    with Session(engine) as session:
        assert_tickets_issued_once(session)
        assert_waiting_lists_balance(session)
        for event in session.scalars(select(Event)):
            held = _quantity(session, event.id, HOLDING_STATUSES)
            sold = _quantity(session, event.id, (OrderStatus.CONFIRMED,))
            set_aside = session.scalar(
                select(func.coalesce(func.sum(TicketType.set_aside), 0)).where(
                    TicketType.event_id == event.id
                )
            )
            assert event.available_tickets >= 0, f"event {event.id} is oversold"
            assert event.available_tickets + set_aside + held + sold == event.total_tickets, (
                f"event {event.id}: {event.available_tickets} available + {set_aside} set aside "
                f"+ {held} held + {sold} sold != {event.total_tickets}"
            )
            _, rows, shown = availability(session, event.id, include_hidden=True)
            assert (shown["held"], shown["set_aside"]) == (held, set_aside), (
                f"event {event.id}: shows {shown}, not {held} held and {set_aside} set aside"
            )
            for row in rows:
                ticket_type = row["ticket_type"]
                type_held = _type_quantity(session, ticket_type.id, HOLDING_STATUSES)
                type_sold = _type_quantity(session, ticket_type.id, (OrderStatus.CONFIRMED,))
                aside = ticket_type.set_aside
                assert ticket_type.sold == type_held + type_sold + aside, (
                    f"type {ticket_type.id}: taken {ticket_type.sold} != {type_held} held + "
                    f"{type_sold} sold + {aside} set aside"
                )
                assert (row["held"], row["sold"], row["set_aside"]) == (
                    type_held, type_sold, aside,
                ), ticket_type.id  # fmt: skip
                if ticket_type.capacity is not None:
                    own_remaining = ticket_type.capacity - ticket_type.sold
                    assert own_remaining >= 0, f"type {ticket_type.id} is oversold"
                    assert own_remaining + aside + type_held + type_sold == ticket_type.capacity
                    assert row["available"] <= own_remaining
        assert_promo_uses(session)
        charged = confirmed_charges(session)
    assert_charges_kept(ledger.kept_charges(), charged)


def _quantity(session, event_id, statuses):
    return session.scalar(
        select(func.coalesce(func.sum(Order.quantity), 0)).where(
            Order.event_id == event_id, Order.status.in_(statuses)
        )
    )


def _type_quantity(session, type_id, statuses):
    return session.scalar(
        select(func.coalesce(func.sum(OrderItem.quantity), 0))
        .join(Order, Order.id == OrderItem.order_id)
        .where(OrderItem.ticket_type_id == type_id, Order.status.in_(statuses))
    )


def confirmation_emails(engine, order_id):
    return emails_of(engine, order_id, EmailKind.ORDER_CONFIRMATION)


def ticket_type_of(engine, event):
    with Session(engine) as session:
        return session.scalar(select(TicketType).where(TicketType.event_id == event.id))


def logged_events(engine, order_id):
    """The order's domain events in the event log, oldest first: (type, status)."""
    with Session(engine) as session:
        entries = session.scalars(select(EventLogEntry).order_by(EventLogEntry.created_at))
        return [
            (entry.type, entry.data["status"])
            for entry in entries
            if entry.data.get("id") == str(order_id)
        ]
