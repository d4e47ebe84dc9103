"""Payments whose outcome arrives later: paying a hold, 3-D Secure, and the gateway's webhooks.

Paying a hold (:func:`pay_hold`) runs like a purchase's payment (``ticketing.domain.orders``):
the order goes ``pending`` in a short transaction, the card is charged outside any transaction,
and the outcome is settled. A card that needs the buyer to authenticate leaves the order
``awaiting_action``, still held; a declined card puts it back to ``reserved`` (the buyer may try
another card until the hold expires). Each attempt has its own charge idempotency key
(``Order.payment_attempt``), so a retry of one attempt never charges twice and a new card is a
new payment.

What the gateway later says of a payment (:func:`settle_payment`, from its webhook or from our
own look-ups) is always read from the gateway itself, never from a webhook's payload, and acted
on under the order's row lock with conditional UPDATEs, so duplicates, reordered and late
deliveries cannot walk an order backwards:

- money taken for an order still held: confirm it and owe the confirmation email (once);
- money taken after its hold expired: take the tickets again and confirm, or, if they are gone,
  refund it and fail the order (``hold_expired_refunded``) with an email to the buyer;
- money taken that the order does not need (another attempt paid, or it was released): refund;
- authentication failed: back to ``reserved``; payment cancelled: fail and release;
- a confirmed order's payment refunded at the gateway (its dashboard): cancel the order, give
  the tickets back, email the buyer.

No gateway call is made while the order's or the inventory's rows are locked.
"""

import logging
import uuid

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError
from zope.sqlalchemy import mark_changed

from ticketing.events import OrderCancelled, OrderFailed
from ticketing.interfaces import PaymentStatus
from ticketing.models import HOLDING_STATUSES, EmailKind, Order, OrderStatus, StripeEvent
from ticketing.representations import order_json

from . import event_log, holds, inventory, orders, outbox, promo_codes, tickets
from .errors import (
    HoldExpired,
    OrderNotPayable,
    PaymentDeclined,
    PaymentUnavailable,
    RequestInProgress,
)
from .orders import PurchaseResult, _abort, _charge_made_for, _commit, _confirm

log = logging.getLogger(__name__)

#: states whose money, arriving, finds the tickets given back
_GAVE_TICKETS_BACK = (OrderStatus.EXPIRED, OrderStatus.FAILED)

#: how attempts that the buyer's card refused end (a hold's ``failure_code``): the same pay,
#: retried with its key, is answered with the same decline
_DECLINES = ("payment_declined", "payment_failed")


def pay_hold(
    dbsession,
    tm,
    gateway,
    order_id,
    payment_method,
    *,
    now,
    hold_for,
    ticket_codes,
    idempotency_key=None,
    promo_code=None,
):
    """Pay a hold; return a :class:`~ticketing.domain.orders.PurchaseResult`: the order
    ``confirmed`` (its tickets issued, signed by ``ticket_codes``), or ``awaiting_action`` with
    the gateway's ``payment`` (its client secret) for the buyer to authenticate. Paying again is
    safe: a paid order answers as it is (``replayed``), one awaiting authentication answers with
    its payment again. With the ``idempotency_key`` of the pay that started the last attempt, a
    declined or failed attempt answers its decline again; another key (or none) after a decline
    is a new attempt, with another card.

    An expired hold first takes its tickets again; if they are gone, :class:`HoldExpired` and
    nothing is charged. A ``promo_code`` is applied to a hold that has none yet, its use taken
    before the charge (:func:`~ticketing.domain.promo_codes.apply_to_hold`); a hold that costs
    nothing then is confirmed without any payment.
    """
    order = orders.get_order(dbsession, order_id)
    if (
        idempotency_key is not None
        and order.payment_idempotency_key == idempotency_key
        and order.status == OrderStatus.RESERVED
        and order.failure_code in _DECLINES
    ):
        raise PaymentDeclined(
            "The payment with this Idempotency-Key was declined; pay with a new key to try "
            "another card.",
            order_id=str(order.id),
            headers={"Idempotent-Replayed": "true"},
        )
    if order.status == OrderStatus.AWAITING_ACTION:
        order = _replay_awaiting(
            dbsession, tm, gateway, order, now=now, hold_for=hold_for, ticket_codes=ticket_codes
        )
        if order.status != OrderStatus.RESERVED:
            return _answer(gateway, order)
    if order.status == OrderStatus.CONFIRMED:
        return PurchaseResult(order, replayed=True)
    if order.status == OrderStatus.PENDING:
        raise RequestInProgress(
            "A payment of this order is in progress; retry shortly.",
            headers={"Retry-After": str(orders.RETRY_AFTER_SECONDS)},
        )
    if order.status not in (OrderStatus.RESERVED, OrderStatus.EXPIRED):
        raise OrderNotPayable(f"The order is {order.status}; only holds can be paid.")
    _commit(tm)
    _hold_again_if_expired(dbsession, tm, order_id, now=now, hold_for=hold_for)
    if promo_code is not None:
        _apply_promo_code(dbsession, tm, order_id, promo_code, now=now)
    order = _start_attempt(dbsession, tm, order_id, idempotency_key, now=now)
    return _charge(
        dbsession,
        tm,
        gateway,
        order,
        payment_method,
        now=now,
        hold_for=hold_for,
        ticket_codes=ticket_codes,
    )


def _replay_awaiting(dbsession, tm, gateway, order, *, now, hold_for, ticket_codes):
    """A pay of an order awaiting authentication: its payment as the gateway has it now,
    settled first if it was decided meanwhile (its webhook may not have arrived yet)."""
    _commit(tm)
    payment = gateway.retrieve_payment(order.payment_reference)
    if payment.status != PaymentStatus.REQUIRES_ACTION:
        settle_payment(
            dbsession, tm, gateway, payment, now=now, hold_for=hold_for, ticket_codes=ticket_codes
        )
    return orders.get_order(dbsession, order.id)


def _answer(gateway, order):
    if order.status == OrderStatus.AWAITING_ACTION:
        return orders.awaiting_answer(gateway, order)
    if order.status == OrderStatus.CONFIRMED:
        return PurchaseResult(order, replayed=True)
    raise OrderNotPayable(f"The order is {order.status}; only holds can be paid.")


def _hold_again_if_expired(dbsession, tm, order_id, *, now, hold_for):
    """A hold past its time, expired by the job or not yet: take its tickets again, or raise
    :class:`HoldExpired` (nothing is charged)."""
    if holds.expire_hold(dbsession, order_id, now=now) is not None:
        _commit(tm)
    order = orders.get_order(dbsession, order_id, for_update=True)
    if order.status != OrderStatus.EXPIRED:
        return
    if not holds.retake_expired(dbsession, order, now=now, hold_for=hold_for):
        _abort(tm)
        raise HoldExpired(
            "The hold expired and its tickets were taken by others; nothing was charged.",
            order_id=str(order_id),
        )
    _commit(tm)


def _apply_promo_code(dbsession, tm, order_id, promo_code, *, now):
    try:
        promo_codes.apply_to_hold(dbsession, order_id, promo_code, now=now)
    except Exception:
        _abort(tm)
        raise
    _commit(tm)


def _start_attempt(dbsession, tm, order_id, idempotency_key=None, *, now):
    """``reserved`` -> ``pending``: a new payment attempt (a new charge key) when the last one
    ended without money, so another card is another payment; ``idempotency_key`` is the pay's."""
    started = dbsession.scalar(
        update(Order)
        .where(Order.id == order_id, Order.status == OrderStatus.RESERVED)
        .values(
            status=OrderStatus.PENDING,
            payment_attempt=Order.payment_attempt
            + case((Order.failure_code.is_(None), 0), else_=1),
            failure_code=None,
            payment_idempotency_key=idempotency_key,
            updated_at=now,
        )
        .returning(Order),
        execution_options={"populate_existing": True},
    )
    if started is None:
        _abort(tm)
        raise RequestInProgress(
            "Another payment of this order started meanwhile; retry shortly.",
            headers={"Retry-After": str(orders.RETRY_AFTER_SECONDS)},
        )
    _commit(tm)
    return started


def _charge(dbsession, tm, gateway, order, payment_method, *, now, hold_for, ticket_codes):
    if not orders.needs_payment(order):
        _confirm(
            dbsession, ticket_codes, order, orders.NO_PAYMENT, now, from_statuses=HOLDING_STATUSES
        )
        _commit(tm)
        return PurchaseResult(orders.get_order(dbsession, order.id), replayed=False)
    try:
        payment = orders.charge_order(gateway, order, payment_method)
    except PaymentDeclined as declined:
        back_to_hold(dbsession, order.id, "payment_declined", now=now)
        _commit(tm)
        declined.extra.setdefault("order_id", str(order.id))
        raise
    except PaymentUnavailable:
        payment = _charge_made_for(gateway, order)
        if payment is None:
            back_to_hold(dbsession, order.id, "payment_unavailable", now=now)
            _commit(tm)
            raise
    if payment.status == PaymentStatus.REQUIRES_ACTION:
        return orders._await_action(dbsession, tm, gateway, order, payment, now, hold_for)
    settle_payment(
        dbsession, tm, gateway, payment, now=now, hold_for=hold_for, ticket_codes=ticket_codes
    )
    settled = orders.get_order(dbsession, order.id)
    if settled.status == OrderStatus.CONFIRMED:
        return PurchaseResult(settled, replayed=False)
    return _answer(gateway, settled)


def back_to_hold(dbsession, order_id, failure_code, *, now):
    """A payment attempt ended without money: the order is a hold again (until it expires),
    for the buyer to try another card."""
    dbsession.execute(
        update(Order)
        .where(
            Order.id == order_id,
            Order.status.in_((OrderStatus.PENDING, OrderStatus.AWAITING_ACTION)),
        )
        .values(status=OrderStatus.RESERVED, failure_code=failure_code, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    mark_changed(dbsession)


def settle_payment(dbsession, tm, gateway, payment, *, now, hold_for, ticket_codes):
    """Act on what the gateway says of ``payment`` (fetched from it, never a webhook's payload);
    return what was done, for the logs. Commits on ``tm``; ``ticket_codes`` signs the tickets
    of an order it confirms."""
    order_id = _order_id_of(payment)
    if order_id is None:
        return "ignored"
    order = dbsession.scalar(
        select(Order)
        .where(Order.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if order is None:
        _abort(tm)
        return "ignored"
    its_own = payment.id == order.payment_reference or (
        payment.idempotency_key is not None
        and payment.idempotency_key == order.charge_idempotency_key
    )
    if payment.status == PaymentStatus.SUCCEEDED and payment.refunded:
        outcome = "ignored"
        if order.status == OrderStatus.CONFIRMED and order.payment_reference == payment.id:
            cancel_refunded_at_gateway(dbsession, order, payment, now=now)
            outcome = "cancelled"
        _commit(tm)
        return outcome
    if payment.status == PaymentStatus.SUCCEEDED:
        return _settle_money(dbsession, tm, gateway, ticket_codes, order, payment, its_own, now=now)
    outcome = "ignored"
    if its_own and payment.status == PaymentStatus.REQUIRES_PAYMENT_METHOD:
        if order.status == OrderStatus.AWAITING_ACTION:
            back_to_hold(dbsession, order.id, "payment_failed", now=now)
            outcome = "back_to_hold"
    elif its_own and payment.status == PaymentStatus.CANCELED:
        if order.status in HOLDING_STATUSES:
            fail_and_release(dbsession, order, "payment_canceled", now=now)
            outcome = "failed"
    _commit(tm)
    return outcome


def _order_id_of(payment):
    """The order a payment is for, from the metadata ``orders.charge_order`` gave it; None for
    one not ours."""
    try:
        return uuid.UUID((payment.metadata or {}).get("order_id") or "")
    except ValueError:
        return None


def _settle_money(dbsession, tm, gateway, ticket_codes, order, payment, its_own, *, now):
    if order.status == OrderStatus.CONFIRMED and order.payment_reference == payment.id:
        _commit(tm)
        return "duplicate"
    if its_own and order.status in HOLDING_STATUSES:
        _confirm(dbsession, ticket_codes, order, payment, now, from_statuses=HOLDING_STATUSES)
        _commit(tm)
        return "confirmed"
    if its_own and order.status in _GAVE_TICKETS_BACK:
        if inventory.retake_order(dbsession, order.event_id, order.id, order.quantity, now=now):
            _confirm(dbsession, ticket_codes, order, payment, now, from_statuses=_GAVE_TICKETS_BACK)
            _commit(tm)
            return "confirmed"
        # Gone: let go of every lock before the refund.
        _abort(tm)
        refund_id = gateway.refund(payment.id, _refund_key(order, payment))
        refunded = fail_refunded(dbsession, order.id, payment, refund_id, now=now)
        _commit(tm)
        return "refunded" if refunded else "ignored"
    # Money the order does not need: another attempt paid it, or it was given back.
    _abort(tm)
    gateway.refund(payment.id, _refund_key(order, payment))
    log.warning("order %s: refunded payment %s it did not need", order.id, payment.id)
    return "refunded"


def _refund_key(order, payment):
    return f"order-{order.id}-refund-{payment.id}"


def fail_refunded(dbsession, order_id, payment, refund_id, *, now):
    """Money that came after the hold expired, for tickets since gone, was refunded: the order
    fails with ``hold_expired_refunded`` and its buyer is told. False if it changed meanwhile."""
    failed = dbsession.scalar(
        update(Order)
        .where(Order.id == order_id, Order.status.in_(_GAVE_TICKETS_BACK))
        .values(
            status=OrderStatus.FAILED,
            failure_code="hold_expired_refunded",
            payment_reference=payment.id,
            refund_reference=refund_id,
            refunded_at=now,
            updated_at=now,
        )
        .returning(Order),
        execution_options={"populate_existing": True},
    )
    if failed is None:
        return False
    outbox.record_email(dbsession, order_id, EmailKind.PAYMENT_REFUNDED, now=now)
    event_log.publish(dbsession, OrderFailed(order_json(failed), created_at=now))
    return True


def fail_and_release(dbsession, order, failure_code, *, now):
    """A held order whose payment can never complete (cancelled at the gateway): it fails and
    its tickets go back."""
    failed = dbsession.scalar(
        update(Order)
        .where(Order.id == order.id, Order.status.in_(HOLDING_STATUSES))
        .values(
            status=OrderStatus.FAILED, failure_code=failure_code, expires_at=None, updated_at=now
        )
        .returning(Order),
        execution_options={"populate_existing": True},
    )
    if failed is not None:
        inventory.release_order(dbsession, order.event_id, order.id, order.quantity, now=now)
        event_log.publish(dbsession, OrderFailed(order_json(failed), created_at=now))


def cancel_refunded_at_gateway(dbsession, order, payment, *, now):
    """A confirmed order's payment was refunded at the gateway (its dashboard): the order is
    cancelled and refunded, its tickets go back, and its buyer gets the cancellation email."""
    cancelled = dbsession.scalar(
        update(Order)
        .where(Order.id == order.id, Order.status == OrderStatus.CONFIRMED)
        .values(
            status=OrderStatus.CANCELLED,
            refund_reference=payment.refund_id,
            cancelled_at=now,
            refunded_at=now,
            updated_at=now,
        )
        .returning(Order),
        execution_options={"populate_existing": True},
    )
    if cancelled is None:
        return
    inventory.release_order(dbsession, order.event_id, order.id, order.quantity, now=now)
    # The money is gone already: its tickets are void, checked in or not.
    tickets.void_order_tickets(dbsession, order.id, now=now)
    outbox.record_email(dbsession, order.id, EmailKind.ORDER_CANCELLATION, now=now)
    event_log.publish(dbsession, OrderCancelled(order_json(cancelled), created_at=now))


def process_gateway_event(
    dbsession, tm, gateway, event_id, event_type, payment_id, *, now, hold_for, ticket_codes
):
    """One event of the gateway's webhook (already verified) about ``payment_id``: once per
    event id. The payment is fetched from the gateway and settled (:func:`settle_payment`);
    the event id is recorded afterwards, so an event whose settling failed (the gateway or the
    database away) is processed again when the gateway redelivers it. Two copies at once both
    settle, which the order's row lock and conditional UPDATEs make one outcome; only one
    records the id. Returns what was done."""
    seen = dbsession.scalar(select(StripeEvent.id).where(StripeEvent.id == event_id))
    _commit(tm)
    if seen is not None:
        return "duplicate"
    outcome = "ignored"
    if payment_id:
        payment = gateway.retrieve_payment(payment_id)
        outcome = settle_payment(
            dbsession, tm, gateway, payment, now=now, hold_for=hold_for, ticket_codes=ticket_codes
        )
    try:
        dbsession.add(StripeEvent(id=event_id, type=event_type[:100], received_at=now))
        dbsession.flush()
        _commit(tm)
    except IntegrityError:
        _abort(tm)  # its twin recorded it first
    return outcome
