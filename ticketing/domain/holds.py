"""Holds: tickets reserved for a buyer who has not paid yet.

A hold is an order ``reserved`` until its ``expires_at``: its tickets are taken (availability
shows them as ``held``) and no money has moved. It ends by being paid
(:func:`ticketing.domain.payments_async.pay_hold`), given back early (:func:`release_hold`), or
expiring (:func:`expire_holds`, a job every minute), which gives its tickets back. An order
``awaiting_action`` (its buyer authenticating a payment) is held the same way and expires the
same way; its payment is cancelled at the gateway so that it can no longer take money, and if it
took some all the same, that money is settled like any that arrives late (re-take or refund).

Each transition is one function here, changing the order with a conditional UPDATE under the
order's row lock, then the inventory (event row, then type rows: the lock order of
``ticketing.domain.inventory``).
"""

import dataclasses
import logging

from sqlalchemy import select, update

from ticketing.events import OrderCancelled, OrderExpired
from ticketing.interfaces import PaymentStatus
from ticketing.models import HOLD_STATUSES, Order, OrderStatus
from ticketing.representations import order_json

from . import event_log, inventory, orders
from .errors import OrderNotReleasable, PaymentError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ExpiryReport:
    expired: int = 0
    #: holds whose payment had taken money by the time it was cancelled, settled at once
    paid_meanwhile: int = 0


def reserve(dbsession, tm, purchase, *, now, hold_for):
    """Take the tickets of ``purchase`` (a :class:`~ticketing.domain.orders.PurchaseRequest`
    with ``hold=True``) and keep them for ``hold_for``; return a
    :class:`~ticketing.domain.orders.PurchaseResult` with the ``reserved`` order, or the
    earlier order of the same idempotency key (``replayed``). Commits on ``tm``."""
    return orders.take_or_replay(dbsession, tm, purchase, now=now, expires_at=now + hold_for)


def release_hold(dbsession, gateway, order_id, *, now):
    """Give a hold's tickets back before it expires; return the order, ``cancelled``.

    A hold awaiting the buyer's authentication first has its payment cancelled at the gateway;
    if that payment took the money meanwhile, the hold is paid and is not released.
    """
    order = orders.get_order(dbsession, order_id, for_update=True)
    if order.status not in HOLD_STATUSES:
        raise OrderNotReleasable(f"The order is {order.status}; only holds not paid can be.")
    if order.status == OrderStatus.AWAITING_ACTION:
        payment = gateway.cancel_payment(order.payment_reference)
        if payment.status == PaymentStatus.SUCCEEDED:
            raise OrderNotReleasable("The order's payment went through meanwhile.")
    released = dbsession.scalar(
        update(Order)
        .where(Order.id == order.id, Order.status.in_(HOLD_STATUSES))
        .values(status=OrderStatus.CANCELLED, cancelled_at=now, expires_at=None, updated_at=now)
        .returning(Order),
        execution_options={"populate_existing": True},
    )
    inventory.release_order(dbsession, order.event_id, order.id, order.quantity, now=now)
    event_log.publish(dbsession, OrderCancelled(order_json(released), created_at=now))
    return released


@dataclasses.dataclass(frozen=True)
class ExpiredHold:
    """What a hold was when it expired."""

    id: object
    status: OrderStatus
    payment_reference: str | None

    @classmethod
    def of(cls, order):
        return cls(order.id, order.status, order.payment_reference)


def expire_hold(dbsession, order_id, *, now):
    """Expire one hold past its time, giving its tickets back; return the order as it was (its
    status before), or None if it is not a hold past its time (paid, released, or being dealt
    with by someone else, whose row lock we do not wait for)."""
    order = dbsession.scalar(
        select(Order)
        .where(Order.id == order_id, Order.status.in_(HOLD_STATUSES), Order.expires_at <= now)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if order is None:
        return None
    was = ExpiredHold.of(order)
    expired = dbsession.scalar(
        update(Order)
        .where(Order.id == order.id)
        .values(status=OrderStatus.EXPIRED, failure_code="hold_expired", updated_at=now)
        .returning(Order),
        execution_options={"populate_existing": True},
    )
    inventory.release_order(dbsession, order.event_id, order.id, order.quantity, now=now)
    event_log.publish(dbsession, OrderExpired(order_json(expired), created_at=now))
    return was


def expire_holds(dbsession, tm, gateway, *, now, hold_for, ticket_codes, limit=500):
    """The job: expire every hold past its time, each in its own transaction on ``tm``. A hold
    that was awaiting its buyer's authentication has its payment cancelled afterwards (no lock
    held); a payment that took the money first is settled at once, as its webhook would be."""
    from . import payments_async  # the settling of late money lives there, and imports us

    due = list(
        dbsession.scalars(
            select(Order.id)
            .where(Order.status.in_(HOLD_STATUSES), Order.expires_at <= now)
            .order_by(Order.expires_at)
            .limit(limit)
        )
    )
    orders._commit(tm)
    report = ExpiryReport()
    for order_id in due:
        was = expire_hold(dbsession, order_id, now=now)
        orders._commit(tm)
        if was is None:
            continue
        report.expired += 1
        if was.status != OrderStatus.AWAITING_ACTION or not was.payment_reference:
            continue
        try:
            payment = gateway.cancel_payment(was.payment_reference)
            if payment.kept:
                payments_async.settle_payment(
                    dbsession,
                    tm,
                    gateway,
                    payment,
                    now=now,
                    hold_for=hold_for,
                    ticket_codes=ticket_codes,
                )
                report.paid_meanwhile += 1
        except PaymentError:
            # Its webhook, or the next cancel, will tell: money is never kept without tickets.
            orders._abort(tm)
            log.warning("order %s: could not cancel its payment after expiry", order_id)
    return report


def retake_expired(dbsession, order, *, now, hold_for):
    """An expired hold whose buyer comes back to pay: take its tickets again and hold them
    anew; False, changing nothing, when they are gone. Call with the order's row locked."""
    if not inventory.retake_order(dbsession, order.event_id, order.id, order.quantity, now=now):
        return False
    dbsession.execute(
        update(Order)
        .where(Order.id == order.id, Order.status == OrderStatus.EXPIRED)
        .values(status=OrderStatus.RESERVED, expires_at=now + hold_for, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return True
