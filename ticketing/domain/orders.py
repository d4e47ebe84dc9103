"""The ordering context: purchases, cancellations, and settling purchases that a crash left pending.

A purchase never holds the event's inventory lock while it waits on the payment gateway. It runs
as three short transactions on the caller's transaction manager:

1. reserve: take the tickets of every item, in their types and in the event, all or nothing
   (``ticketing.domain.inventory``), and insert a ``pending`` order with its items; commit;
2. charge the order's total with an idempotency key derived from the order, outside any
   transaction;
3. settle: mark the order ``confirmed``, issuing its tickets (``ticketing.domain.tickets``) and
   logging ``order.confirmed`` (``ticketing.events``), or mark it ``failed`` and give the
   tickets back; commit.
   When the gateway needs the buyer to authenticate first (3-D Secure), the order waits in
   ``awaiting_action`` instead, held until ``expires_at``, and the gateway's webhook settles it
   (``ticketing.domain.payments_async``).

A hold (``ticketing.domain.holds``) is the first phase alone: the order is ``reserved`` until it
is paid (``ticketing.domain.payments_async.pay_hold``) or expires.

A purchase or a hold may name a promo code (``ticketing.domain.promo_codes``): it is looked up
first, and its use is taken in the reserving phase, with the tickets; each item records its
discount, and the order's total is what is charged. An order that costs nothing is confirmed
without any payment (:data:`NO_PAYMENT`).

On PostgreSQL, reserving and confirming are one statement each, which the server commits as it
completes (:func:`_single_statement_phase`).

Every way this can break leaves the books balanced: a charge whose order cannot be confirmed is
refunded, tickets of an order that will not be paid are released, and an order that a crash left
``pending`` is settled later by :func:`settle_stale_pending_orders`, which asks the gateway what
became of its charge.
"""

import datetime as dt
import functools
import hashlib
import json
import logging
import types
import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from zope.sqlalchemy import mark_changed

from ticketing.events import (
    OrderCancelled,
    OrderConfirmed,
    OrderExpired,
    OrderFailed,
    OrderReserved,
)
from ticketing.interfaces import PaymentStatus
from ticketing.models import EmailKind, Order, OrderItem, OrderStatus
from ticketing.models.order import GatewayKeys
from ticketing.money import format_money
from ticketing.pagination import paginate
from ticketing.representations import order_json

from . import event_log, events, inventory, outbox, promo_codes, tickets, waiting_list
from .errors import (
    ChangeRefused,
    IdempotencyKeyReused,
    OrderCheckedIn,
    OrderNotCancellable,
    OrderNotFound,
    PaymentDeclined,
    PaymentError,
    PaymentUnavailable,
    RefundFailed,
    RequestInProgress,
)
from .inventory import Item

log = logging.getLogger(__name__)

#: how long a pending order may wait for its payment before it is settled from the gateway's books
STALE_AFTER = dt.timedelta(minutes=5)

#: seconds a client should wait before retrying a request whose twin is still in progress
RETRY_AFTER_SECONDS = 1

#: how long a hold keeps its tickets (setting ``ticketing.hold_minutes``)
DEFAULT_HOLD = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class PurchaseRequest:
    """What a buyer asks for, named as the API's body names it: ``quantity`` tickets of
    ``ticket_type_id`` (None: of the event's only type on sale), or ``items``, each an
    :class:`~ticketing.domain.inventory.Item` of its own type. Either way ``items`` and
    ``quantity`` (of all items together) are set once it is built."""

    event_id: uuid.UUID
    customer_email: str
    customer_name: str
    quantity: int | None = None
    ticket_type_id: uuid.UUID | None = None
    items: tuple = ()
    idempotency_key: str | None = None
    payment_method: str | None = None
    #: a hold (reserve without paying), not a purchase
    hold: bool = False
    #: the promo code the buyer typed, as typed
    promo_code: str | None = None

    def __post_init__(self):
        if not self.items:
            object.__setattr__(self, "items", (Item(self.ticket_type_id, self.quantity),))
        object.__setattr__(self, "quantity", inventory.total_quantity(self.items))

    def fingerprint(self):
        """A hash of the fields that make two requests the same purchase."""
        meaningful = [
            str(self.event_id),
            self.customer_email,
            self.customer_name,
            self.quantity,
            self.payment_method,
        ]
        if self.items != (Item(None, self.quantity),):
            # Purchases that name no type hash as they did before types existed, so that their
            # retries still replay across the upgrade.
            meaningful.append([[str(i.ticket_type_id), i.quantity] for i in self.items])
        if self.hold:
            meaningful.append("hold")
        if self.promo_code is not None:
            meaningful.append(["promo_code", promo_codes.code_key(self.promo_code)])
        return hashlib.sha256(json.dumps(meaningful).encode()).hexdigest()


@dataclass(frozen=True)
class PurchaseResult:
    order: Order
    replayed: bool
    #: the gateway's payment while the order is ``awaiting_action`` (its client secret), else None
    payment: object = None
    #: the order as the API shows it, when the purchase made that already (its confirmation's
    #: event carries it), else None
    shown: dict | None = None


@dataclass
class SettlementReport:
    confirmed: int = 0
    failed: int = 0
    unresolved: int = 0


def purchase_tickets(dbsession, tm, gateway, purchase, *, now, ticket_codes, hold_for=DEFAULT_HOLD):
    """Buy tickets; return the confirmed order, with its tickets issued (or, when the buyer
    must authenticate the payment, the order ``awaiting_action``, held for ``hold_for``), or
    raise why not. ``ticket_codes`` (:class:`~ticketing.domain.tickets.TicketCodes`) signs the
    tickets.

    ``tm`` is the transaction manager ``dbsession`` is joined to, with a transaction begun; the
    phases commit on it, and a fresh transaction is open again when this returns or raises.

    The same idempotency key with the same request returns the first request's order
    (``replayed=True``) and never charges or reserves twice, even when both arrive at once.
    """
    taken = take_or_replay(dbsession, tm, purchase, now=now)
    if taken.replayed:
        if taken.order.status == OrderStatus.AWAITING_ACTION:
            return awaiting_answer(gateway, taken.order)
        return taken
    return _pay(dbsession, tm, gateway, ticket_codes, taken.order, purchase, now, hold_for)


def take_or_replay(dbsession, tm, purchase, *, now, expires_at=None):
    """The first phase: take the tickets and insert the order (pending, or reserved until
    ``expires_at`` for a hold), committed; or the earlier order of the same idempotency key
    (``replayed``). Raises why the tickets (or the promo code) cannot be taken.

    The key is not looked up first: nearly every purchase is a first attempt, and the orders'
    unique key refuses the insert of a second one, reservation and all (one statement, atomic).
    Only then, or when the tickets cannot be taken, is the earlier order read: a round trip
    fewer for every purchase, on a server whose threads wait for the GIL after each one. A
    purchase with a promo code reads it first, as the code's look-up may refuse a retry whose
    first attempt took the code's last use.
    """
    _single_statement_phase(dbsession, OrderReserved)
    code = None
    if purchase.promo_code is not None:
        earlier = _earlier_order(dbsession, purchase)
        if earlier is not None:
            return _replay(earlier, purchase)
        code = promo_codes.look_up(
            dbsession, purchase.event_id, purchase.promo_code, now=now, items=purchase.items
        )
    try:
        order = _reserve(dbsession, purchase, now, expires_at, code)
        if order is None and code is not None:
            order, code = _reserve_with_code_as_it_is(
                dbsession, tm, purchase, now, expires_at, code
            )
        if order is None:
            _abort(tm)
            earlier = _earlier_order(dbsession, purchase)
            if earlier is not None:
                return _replay(earlier, purchase)
            inventory.refuse(
                dbsession,
                purchase.event_id,
                purchase.items,
                now=now,
                unlocked=code and code.unlocks,
            )
        _commit(tm)
    except ChangeRefused:
        _abort(tm)
        raise
    except IntegrityError:
        # The key's order exists (a retry), or a twin request inserted it first: ours rolled
        # back whole, reservation included, and answers as a replay of that order.
        _abort(tm)
        earlier = _earlier_order(dbsession, purchase)
        if earlier is None:
            raise
        return _replay(earlier, purchase)
    return PurchaseResult(order, replayed=False)


def _earlier_order(dbsession, purchase):
    if not purchase.idempotency_key:
        return None
    return _order_with_key(dbsession, purchase.idempotency_key)


def _reserve_with_code_as_it_is(dbsession, tm, purchase, now, expires_at, code):
    """The reservation applying ``code`` took nothing: raise the code's reason if it has one
    now; if its organiser changed it since it was looked up (its revision), reserve again with
    the code as it is now, up to ``promo_codes.ATTEMPTS`` times in all. Returns the order (None:
    the tickets are the reason) and the code last applied."""
    for _ in range(promo_codes.ATTEMPTS - 1):
        _abort(tm)
        current = promo_codes.refuse(
            dbsession, purchase.event_id, purchase.promo_code, purchase.items, now=now
        )
        if current.revision == code.revision:
            break
        code = current
        order = _reserve(dbsession, purchase, now, expires_at, code)
        if order is not None:
            return order, code
    return None, code


def _order_with_key(dbsession, idempotency_key):
    """The order an idempotency key made, with its items (plain objects), or None: one Core
    statement built once rather than ORM queries, as every retry asks it."""
    rows = dbsession.execute(_order_by_key(), {"p_key": idempotency_key}).all()
    if not rows:
        return None
    first = rows[0]._mapping
    items = [
        types.SimpleNamespace(
            order_id=first["id"],
            **{name: row._mapping[f"item_{name}"] for name in _ITEM_FIELDS},
        )
        for row in rows
    ]
    return OrderRecord(**{name: first[name] for name in _ORDER_COLUMNS}, items=items)


class OrderRecord(GatewayKeys):
    """An order as a purchase's phases know it: every column of :class:`Order` (None where the
    phase set none) and its ``items``, in a plain object. The phases change the row with
    conditional UPDATEs, never through an object, so they need none of the ORM's bookkeeping
    (about 0.1 ms of CPU for an order and its item)."""

    def __init__(self, items=(), **columns):
        self.__dict__.update(_NO_COLUMNS, **columns)
        self.items = list(items)


_ORDER_COLUMNS = tuple(Order.__table__.c.keys())
_NO_COLUMNS = dict.fromkeys(_ORDER_COLUMNS)


_ITEM_FIELDS = (
    "ticket_type_id",
    "line",
    "name",
    "quantity",
    "unit_price_cents",
    "subtotal_cents",
    "discount_cents",
)


@functools.cache
def _order_by_key():
    orders = Order.__table__
    items = OrderItem.__table__
    return (
        select(orders, *(items.c[name].label(f"item_{name}") for name in _ITEM_FIELDS))
        .join(items, items.c.order_id == orders.c.id)
        .where(orders.c.idempotency_key == bindparam("p_key"))
        .order_by(items.c.line)
    )


def _replay(order, purchase):
    if order.request_fingerprint != purchase.fingerprint():
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different purchase; use a new key."
        )
    if purchase.hold:
        return PurchaseResult(order, replayed=True)
    if order.status == OrderStatus.PENDING:
        raise RequestInProgress(
            "A purchase with this Idempotency-Key is still in progress; retry shortly.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if order.status == OrderStatus.FAILED:
        # Only a decline keeps its key: the answer to this request stays a decline.
        raise PaymentDeclined(
            "The payment for this purchase was declined.",
            order_id=str(order.id),
            headers={"Idempotent-Replayed": "true"},
        )
    return PurchaseResult(order, replayed=True)


def _reserve(dbsession, purchase, now, expires_at=None, code=None):
    """Take the tickets (and a use of ``code``, an
    :class:`~ticketing.domain.promo_codes.AppliedCode`, discounting the items it applies to)
    and insert the pending order with its items; return it (a plain object,
    not attached to the session: later phases change the row with conditional UPDATEs, never by
    flushing), or None when the tickets cannot all be taken, after which the caller aborts the
    transaction and asks :func:`~ticketing.domain.inventory.refuse` why.

    On PostgreSQL it all is one statement (:func:`_reserve_and_insert_order`): one round trip
    while the event's row is locked, and the tickets are taken before the order is inserted, as
    they must be (an order INSERT takes a share lock on the event for its foreign key). SQLite
    cannot put an UPDATE in a CTE, so there it is a few statements in turn. Core statements,
    not the ORM's: on a hot event the server's CPU, not the row lock, is the limit.
    """
    values = {
        "id": uuid.uuid4(),
        "event_id": purchase.event_id,
        "customer_email": purchase.customer_email,
        "customer_name": purchase.customer_name,
        "quantity": purchase.quantity,
        "status": OrderStatus.RESERVED if purchase.hold else OrderStatus.PENDING,
        "expires_at": expires_at,
        "idempotency_key": purchase.idempotency_key,
        "request_fingerprint": purchase.fingerprint() if purchase.idempotency_key else None,
        "created_at": now,
        "updated_at": now,
        "promo_code_id": code and code.id,
        "promo_code": code and code.code,
    }
    if _can_chain_writes(dbsession):
        parameters = {
            **inventory.take_tickets_parameters(purchase.event_id, purchase.items, now),
            **{f"p_{name}": values[name] for name in _ORDER_FIELDS},
        }
        if code is not None:
            parameters.update(code.taking_parameters(), p_promo_code=code.code)
        rows = dbsession.execute(
            _reserve_and_insert_order(
                purchase.items[0].ticket_type_id is None,
                code is not None,
                single_item=len(purchase.items) == 1,
            ),
            parameters,
        ).all()
        if not rows:
            return None
        # Each row is a TakenItem's fields (with a code, its discount too), then the currency.
        taken = [inventory.TakenItem(*row[:-1]) for row in rows]
        currency = rows[0].currency
    else:
        reserved = inventory.take_tickets_in_turn(
            dbsession, purchase.event_id, purchase.items, now=now, unlocked=code and code.unlocks
        )
        if reserved is None:
            return None
        currency, taken = reserved
        if code is not None:
            taken = promo_codes.discounted(code, taken)
            if taken is None or not promo_codes.take_use_in_turn(dbsession, code, now=now):
                return None
    prices = {item.unit_price_cents for item in taken}
    discount = sum(item.unit_discount_cents * item.quantity for item in taken)
    values.update(
        unit_price_cents=prices.pop() if len(prices) == 1 else None,
        total_amount_cents=sum(item.unit_price_cents * item.quantity for item in taken) - discount,
        discount_cents=discount,
        currency=currency,
    )
    items = [
        {
            "order_id": values["id"],
            "ticket_type_id": item.ticket_type_id,
            "line": item.line,
            "name": item.name,
            "quantity": item.quantity,
            "unit_price_cents": item.unit_price_cents,
            "subtotal_cents": item.unit_price_cents * item.quantity,
            "discount_cents": item.unit_discount_cents * item.quantity,
        }
        for item in taken
    ]
    if not _can_chain_writes(dbsession):
        dbsession.execute(Order.__table__.insert().values(values))
        dbsession.execute(OrderItem.__table__.insert(), items)
    mark_changed(dbsession)
    order = OrderRecord(**values, items=[types.SimpleNamespace(**item) for item in items])
    # Made only if a subscriber reads it, before the order changes again (it is announced at
    # once, and heard after commit as this phase commits).
    event_log.announce(dbsession, OrderReserved(lambda: order_json(order), created_at=now))
    return order


#: what a purchase itself supplies of a new order; the tickets taken supply prices and currency
_ORDER_FIELDS = (
    "id",
    "customer_email",
    "customer_name",
    "status",
    "idempotency_key",
    "request_fingerprint",
    "expires_at",
)


@functools.cache
def _reserve_and_insert_order(only_type, with_code=False, single_item=False):
    """The reservation's one statement on PostgreSQL: the inventory's CTEs take the tickets
    (:func:`ticketing.domain.inventory.take_tickets_ctes`), then the order and its items are
    inserted from what they took, and the items come back, one row each. Built once for each
    of the two ways of naming the items, for one item (``single_item``) or more, without and
    ``with_code`` (a promo code's use taken too, and its discounts recorded: the parameters
    ``p_promo_code``, the code's text, and
    :meth:`~ticketing.domain.promo_codes.AppliedCode.taking_parameters`)."""
    code = _CODE_COLUMNS if with_code else dict.fromkeys(_CODE_COLUMNS, "")
    return text(
        "WITH"
        + inventory.take_tickets_ctes(only_type, with_code, single_item)
        + """,
new_order AS (
    INSERT INTO orders (id, event_id, customer_email, customer_name, quantity, unit_price_cents,
                        total_amount_cents, currency, status, idempotency_key,
                        request_fingerprint, expires_at, created_at, updated_at{order_columns})
    SELECT :p_id, verdict.event_id, :p_customer_email, :p_customer_name, :p_quantity,
           verdict.unit_price_cents, verdict.total_amount_cents, verdict.currency, :p_status,
           :p_idempotency_key, :p_request_fingerprint, CAST(:p_expires_at AS timestamptz),
           :p_now, :p_now{order_values}
    FROM verdict
    RETURNING id
),
new_items AS (
    INSERT INTO order_items (order_id, ticket_type_id, line, name, quantity, unit_price_cents,
                             subtotal_cents{item_columns})
    SELECT new_order.id, taken.ticket_type_id, taken.line, taken.name, taken.quantity,
           taken.unit_price_cents, taken.unit_price_cents * taken.quantity{item_values}
    FROM new_order CROSS JOIN taken
)
SELECT taken.ticket_type_id, taken.line, taken.name, taken.quantity, taken.unit_price_cents,
       {taken_discount}verdict.currency
FROM verdict CROSS JOIN taken
ORDER BY taken.line""".format(**code)
    )


#: what the reserving statement inserts and returns of a promo code, with one
_CODE_COLUMNS = {
    "order_columns": ",\n                        discount_cents, promo_code_id, promo_code",
    "order_values": ",\n           verdict.discount_cents, :p_code_id, :p_promo_code",
    "item_columns": ", discount_cents",
    "item_values": ",\n           taken.unit_discount_cents * taken.quantity",
    "taken_discount": "taken.unit_discount_cents, ",
}


def charge_order(gateway, order, payment_method):
    """Charge ``order``'s total under its charge idempotency key. The metadata names the order:
    the gateway's webhooks are matched back to it by ``order_id``."""
    return gateway.charge(
        order.total_amount_cents,
        order.currency,
        order.charge_idempotency_key,
        description=f"{order.quantity} ticket(s), order {order.id}",
        metadata={"order_id": str(order.id), "event_id": str(order.event_id)},
        payment_method=payment_method,
    )


#: the payment of an order that costs nothing (a 100% promo code): none is made, and the
#: confirmed order has no payment reference
NO_PAYMENT = types.SimpleNamespace(id=None)


def needs_payment(order):
    return order.total_amount_cents > 0


def _pay(dbsession, tm, gateway, ticket_codes, order, purchase, now, hold_for):
    try:
        charge = (
            charge_order(gateway, order, purchase.payment_method)
            if needs_payment(order)
            else NO_PAYMENT
        )
    except PaymentDeclined as declined:
        _fail_and_commit(dbsession, tm, order, "payment_declined", now, keep_key=True)
        declined.extra.setdefault("order_id", str(order.id))
        raise
    except PaymentUnavailable:
        # The charge may or may not have gone through: ask before deciding.
        charge = _charge_made_for(gateway, order)
        if charge is None:
            _fail_and_commit(dbsession, tm, order, "payment_unavailable", now, keep_key=False)
            raise
    if charge is not NO_PAYMENT and charge.status == PaymentStatus.REQUIRES_ACTION:
        return _await_action(dbsession, tm, gateway, order, charge, now, hold_for)

    try:
        _single_statement_phase(dbsession, OrderConfirmed)
        confirmed = _confirm(dbsession, ticket_codes, order, charge, now)
        _commit(tm)
    except (OperationalError, InterfaceError):
        # The database went away under the confirmation, which it may have committed before the
        # connection broke: a refund now could leave a confirmed order unpaid (a PostgreSQL crash
        # mid-sale did). The order keeps its charge; the stale-order sweep confirms it, if the
        # database has not already, from the gateway's books.
        log.warning("order %s: database lost while confirming; left for the sweep", order.id)
        _abort(tm)
        raise
    except Exception:
        _abort(tm)
        _refund_unconfirmed(dbsession, tm, gateway, order, charge, now)
        raise
    if not confirmed:
        # Settled as failed by the stale-order sweep while we were charging: give the money back.
        _refund_unconfirmed(dbsession, tm, gateway, order, charge, now)
        raise PaymentUnavailable("The purchase took too long and was abandoned; nothing was kept.")
    order.status = OrderStatus.CONFIRMED
    order.payment_reference = charge.id
    order.confirmed_at = now
    return PurchaseResult(order, replayed=False, shown=confirmed.data)


def awaiting_answer(gateway, order):
    """The answer for an order awaiting its buyer's authentication: its payment as the gateway
    has it now, for the buyer's browser; once the gateway has decided, the order is about to be
    settled (by the webhook, or a pay), and the client should ask again shortly."""
    payment = gateway.retrieve_payment(order.payment_reference)
    if payment.status != PaymentStatus.REQUIRES_ACTION:
        raise RequestInProgress(
            "The payment of this order is being settled; retry shortly.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return PurchaseResult(order, replayed=True, payment=payment)


def _await_action(dbsession, tm, gateway, order, payment, now, hold_for):
    """The gateway needs the buyer to authenticate ``payment``: the pending order waits for it,
    held until its hold's end (a one-step purchase's: ``hold_for`` from now); the gateway's
    webhook settles it."""
    waiting = dbsession.scalar(
        update(Order)
        .where(Order.id == order.id, Order.status == OrderStatus.PENDING)
        .values(
            status=OrderStatus.AWAITING_ACTION,
            payment_reference=payment.id,
            expires_at=func.coalesce(Order.expires_at, now + hold_for),
            updated_at=now,
        )
        .returning(Order.expires_at)
    )
    _commit(tm)
    if waiting is None:
        # Settled as failed by the stale-order sweep while we were charging: this payment must
        # never complete.
        gateway.cancel_payment(payment.id)
        raise PaymentUnavailable("The purchase took too long and was abandoned; nothing was kept.")
    order.status = OrderStatus.AWAITING_ACTION
    order.payment_reference = payment.id
    order.expires_at = waiting
    return PurchaseResult(order, replayed=False, payment=payment)


def _charge_made_for(gateway, order):
    """The kept charge of ``order``, ``None`` if there is none; raise if the gateway can't say."""
    try:
        charge = gateway.find_charge(order.charge_idempotency_key)
    except PaymentUnavailable:
        raise PaymentUnavailable(
            "The payment service did not answer; the purchase will be settled automatically.",
            order_id=str(order.id),
        ) from None
    if charge is None or charge.refunded:
        return None
    return charge


def _confirm(dbsession, ticket_codes, order, charge, now, from_statuses=(OrderStatus.PENDING,)):
    """Confirm an order (pending, or in one of ``from_statuses``), issue its tickets, owe its
    buyer the confirmation email and log ``order.confirmed``, in one transaction (on PostgreSQL
    in one statement), and return that :class:`~ticketing.events.OrderConfirmed`; None if the
    order was no longer in one of them, and then nothing is issued: an order's tickets are
    issued once, by its one confirmation."""
    parameters = {"p_order_id": order.id, "p_reference": charge.id, "p_now": now}
    confirmed = OrderConfirmed(
        _snapshot(
            order,
            status=OrderStatus.CONFIRMED,
            payment_reference=charge.id,
            confirmed_at=now,
            updated_at=now,
        ),
        created_at=now,
    )
    if _can_chain_writes(dbsession):
        email_id = uuid.uuid4()
        owed = dbsession.execute(
            _confirm_and_owe_email(from_statuses),
            {
                **parameters,
                **tickets.issuing_parameters(ticket_codes, order),
                **event_log.log_parameters(confirmed),
                "p_email_id": email_id,
            },
        ).first()
        if owed is None:
            return None
        mark_changed(dbsession)
        outbox.dispatch_after_commit(dbsession, email_id)
        event_log.announce(dbsession, confirmed)
        _offer_paid_if_hold(dbsession, order, from_statuses, now)
        return confirmed
    if dbsession.execute(_confirmation(from_statuses), parameters).first() is None:
        return None
    mark_changed(dbsession)
    tickets.issue_tickets(dbsession, ticket_codes, order, now=now)
    outbox.record_email(dbsession, order.id, EmailKind.ORDER_CONFIRMATION, now=now)
    event_log.publish(dbsession, confirmed)
    _offer_paid_if_hold(dbsession, order, from_statuses, now)
    return confirmed


def _offer_paid_if_hold(dbsession, order, from_statuses, now):
    """A hold confirmed may be a waiting list's offer; a one-step purchase (pending, never
    held) cannot be, and costs no statement."""
    if from_statuses != (OrderStatus.PENDING,) or order.expires_at is not None:
        waiting_list.offer_paid(dbsession, order.id, now=now)


def _snapshot(order, **changes):
    """The order as the API shows it once ``changes`` are made: its row is changed by
    conditional UPDATEs, not through the object, which stays as it was."""
    fields = {name: getattr(order, name) for name in _ORDER_COLUMNS}
    fields.update(changes)
    return order_json(types.SimpleNamespace(**fields, items=order.items))


@functools.cache
def _confirmation(from_statuses):
    """The conditional UPDATE that confirms an order in one of ``from_statuses`` (parameters
    ``p_order_id``, ``p_reference``, ``p_now``), returning what its tickets are issued from;
    built once for each."""
    orders = Order.__table__
    now = bindparam("p_now", type_=orders.c.confirmed_at.type)
    # The purchase's own confirmation (of a pending order only) stays the statement it was;
    # confirming a hold also ends its hold and forgets its last failed attempt.
    purchase = from_statuses == (OrderStatus.PENDING,)
    return (
        orders.update()
        .where(
            orders.c.id == bindparam("p_order_id", type_=orders.c.id.type),
            orders.c.status == OrderStatus.PENDING
            if purchase
            else orders.c.status.in_(from_statuses),
        )
        .values(
            **({} if purchase else {"expires_at": None, "failure_code": None}),
            status=OrderStatus.CONFIRMED,
            payment_reference=bindparam("p_reference", type_=orders.c.payment_reference.type),
            confirmed_at=now,
            updated_at=now,
        )
        .returning(orders.c.id, orders.c.event_id, orders.c.customer_name, orders.c.customer_email)
    )


@functools.cache
def _confirm_and_owe_email(from_statuses):
    """``WITH confirmed AS (UPDATE orders ... RETURNING ...), issued AS (INSERT INTO tickets
    ...), logged AS (INSERT INTO event_log ...) INSERT INTO email_outbox ...``: the
    confirmation, its tickets, its event and its email as one statement, built once for each
    ``from_statuses`` (the event's JSON is made in Python, a bind parameter)."""
    confirmed = _confirmation(from_statuses).cte("confirmed")
    return outbox.owing_email(confirmed.c.id, EmailKind.ORDER_CONFIRMATION).add_cte(
        tickets.issuing_cte(confirmed), event_log.logging_from(confirmed)
    )


def _single_statement_phase(dbsession, announcing):
    """Let the server commit the coming phase's one statement as the statement completes.

    On PostgreSQL the reservation and the confirmation are one statement each, atomic on its
    own. Inside a transaction, the reservation's lock on the event row would be held until this
    thread sends COMMIT, which under load means until it gets the GIL back from the worker's
    other threads; in autocommit the server commits before it answers, and the hot row is held
    for the statement and its WAL flush only (``make bench``, hot event: 365 -> 410 orders/s).
    pyramid_tm still ends the phase, and the session's after-commit hooks run then, after the
    server's commit. Only on a session with no transaction yet: a statement joined to a
    transaction already open belongs to it. Nor when a plugin listens to the event the phase
    ``announcing`` inside the transaction: it may refuse it, and the phase must then roll back.
    """
    if (
        _can_chain_writes(dbsession)
        and not dbsession.in_transaction()
        and not event_log.listened_to(dbsession, announcing)
    ):
        dbsession.connection(execution_options=_AUTOCOMMIT)


_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


def _can_chain_writes(dbsession):
    """Whether the database runs an UPDATE inside a CTE (PostgreSQL does, SQLite does not)."""
    return dbsession.get_bind().dialect.name == "postgresql"


def _fail(dbsession, order, failure_code, now, *, keep_key):
    """Mark a pending order failed and release its tickets; False if it was no longer pending."""
    failed = dbsession.scalar(
        update(Order)
        .where(Order.id == order.id, Order.status == OrderStatus.PENDING)
        .values(
            status=OrderStatus.FAILED,
            failure_code=failure_code,
            # A key whose purchase may succeed on a retry is freed for that retry.
            idempotency_key=order.idempotency_key if keep_key else None,
            updated_at=now,
        )
        .returning(Order.id)
    )
    if failed is None:
        return False
    inventory.release_order(dbsession, order.event_id, order.id, order.quantity, now=now)
    kind = OrderExpired if failure_code == "abandoned" else OrderFailed
    snapshot = _snapshot(
        order, status=OrderStatus.FAILED, failure_code=failure_code, updated_at=now
    )
    event_log.publish(dbsession, kind(snapshot, created_at=now))
    return True


def _fail_and_commit(dbsession, tm, order, failure_code, now, *, keep_key):
    _fail(dbsession, order, failure_code, now, keep_key=keep_key)
    _commit(tm)


def _refund_unconfirmed(dbsession, tm, gateway, order, charge, now):
    """Give back the money of an order that could not be confirmed, then its tickets.

    If the refund fails, the order stays pending with its charge kept: the stale-order sweep
    will confirm it, which balances too. If releasing fails, the sweep finds the charge refunded
    and releases the tickets then. An order that needed no payment has nothing to give back.
    """
    try:
        if charge is not NO_PAYMENT:
            gateway.refund(charge.id, order.refund_idempotency_key)
    except PaymentError:
        log.exception("order %s: refund after a failed confirmation failed", order.id)
        return
    try:
        _fail_and_commit(dbsession, tm, order, "confirmation_failed", now, keep_key=False)
    except Exception:
        _abort(tm)
        log.exception("order %s: refunded, tickets left for the stale-order sweep", order.id)


def _commit(tm):
    tm.commit()
    tm.begin()


def _abort(tm):
    tm.abort()
    tm.begin()


def get_order(dbsession, order_id, *, for_update=False):
    statement = select(Order).where(Order.id == order_id)
    if for_update:
        # Read again under the lock, whatever the session holds of it.
        statement = statement.with_for_update().execution_options(populate_existing=True)
    order = dbsession.scalar(statement)
    if order is None:
        raise OrderNotFound(f"No order has the id {order_id}.")
    return order


def list_orders(dbsession, *, limit, cursor=None, event_id=None, customer_email=None, status=None):
    statement = select(Order)
    if event_id is not None:
        statement = statement.where(Order.event_id == event_id)
    if customer_email is not None:
        statement = statement.where(Order.customer_email == customer_email)
    if status is not None:
        statement = statement.where(Order.status == status)
    return paginate(dbsession, statement, Order, limit, cursor)


def cancel_order(dbsession, gateway, order_id, *, now):
    """Refund a confirmed order in full (what its buyer paid; nothing for an order that needed
    no payment) and give its tickets (and its promo code's use) back to the event.

    The order row stays locked from the check to the end of the transaction, so concurrent
    cancels queue up and only the first refunds. This lock is on the order, not on the event's
    inventory, which is touched only at the end. If the refund fails nothing changes.
    """
    order = get_order(dbsession, order_id, for_update=True)
    if order.status != OrderStatus.CONFIRMED:
        raise OrderNotCancellable(f"The order is {order.status}; only confirmed orders can be.")
    if tickets.lock_order_tickets(dbsession, order.id):
        raise OrderCheckedIn(
            "A ticket of this order was checked in; it can no longer be cancelled."
        )
    event = events.get_event(dbsession, order.event_id)
    if event.date <= now:
        raise OrderNotCancellable("The event has taken place; its orders can no longer be.")
    refund_reference = None
    if order.payment_reference is not None:
        try:
            refund_reference = gateway.refund(order.payment_reference, order.refund_idempotency_key)
        except PaymentError as error:
            raise RefundFailed(f"The refund could not be made ({error.detail}).") from error
    cancelled = dbsession.scalar(
        update(Order)
        .where(Order.id == order.id, Order.status == OrderStatus.CONFIRMED)
        .values(
            status=OrderStatus.CANCELLED,
            refund_reference=refund_reference,
            cancelled_at=now,
            refunded_at=None if refund_reference is None else now,
            updated_at=now,
        )
        .returning(Order),
        execution_options={"populate_existing": True},
    )
    if cancelled is None:
        # Only where row locks are not real (SQLite): a twin cancel got here first.
        raise OrderNotCancellable("The order was cancelled by another request.")
    inventory.release_order(dbsession, order.event_id, order.id, order.quantity, now=now)
    tickets.void_order_tickets(dbsession, order.id, now=now)
    outbox.record_email(dbsession, cancelled.id, EmailKind.ORDER_CANCELLATION, now=now)
    event_log.publish(dbsession, OrderCancelled(order_json(cancelled), created_at=now))
    return cancelled


def settle_stale_pending_orders(
    dbsession, tm, gateway, *, now, ticket_codes, older_than=STALE_AFTER, limit=100
):
    """Settle orders left ``pending`` longer than ``older_than`` (a crash between reserving and
    confirming): confirm those whose charge the gateway kept, fail and release the others.

    Each order is settled in its own transaction on ``tm``; one the gateway cannot answer for is
    left for the next run. A hold's payment counts from when it started, not from the hold.
    Returns a :class:`SettlementReport`.
    """
    cutoff = now - older_than
    stale_ids = list(
        dbsession.scalars(
            select(Order.id)
            .where(
                Order.status == OrderStatus.PENDING,
                Order.created_at < cutoff,
                or_(Order.expires_at.is_(None), Order.updated_at < cutoff),
            )
            .order_by(Order.created_at)
            .limit(limit)
        )
    )
    _commit(tm)
    report = SettlementReport()
    for order_id in stale_ids:
        try:
            outcome = _settle_pending_order(dbsession, gateway, ticket_codes, order_id, now)
            _commit(tm)
        except PaymentUnavailable:
            _abort(tm)
            outcome = "unresolved"
        except ChangeRefused as refused:
            # A plugin refuses the confirmation of a charge made minutes ago: left pending, for
            # an organiser to look at, rather than refunded behind the buyer's back.
            _abort(tm)
            log.warning("order %s: a plugin refused its confirmation: %s", order_id, refused)
            outcome = "unresolved"
        if outcome:
            setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def _settle_pending_order(dbsession, gateway, ticket_codes, order_id, now):
    order = dbsession.scalar(
        select(Order)
        .where(Order.id == order_id, Order.status == OrderStatus.PENDING)
        .with_for_update(skip_locked=True)
    )
    if order is None:
        return None  # settled meanwhile, or being settled by another sweep
    charge = _charge_made_for(gateway, order) if needs_payment(order) else NO_PAYMENT
    if charge is not None:
        _confirm(dbsession, ticket_codes, order, charge, now)
        return "confirmed"
    _fail(dbsession, order, "abandoned", now, keep_key=False)
    return "failed"


def sales_summary(dbsession, event_id):
    """An event's inventory and money: tickets sold, orders by status, revenue kept and
    refunded (what buyers paid), the discounts of promo codes, for the event, for each of its
    ticket types and for each code (confirmed orders), and its waiting list (people in line,
    offers out, paid and expired, tickets set aside), for the event and for each of its types."""
    event = events.get_event(dbsession, event_id, with_types=True)
    rows = dbsession.execute(
        select(
            Order.status,
            func.count(),
            func.coalesce(func.sum(Order.quantity), 0),
            func.coalesce(func.sum(Order.total_amount_cents), 0),
            func.coalesce(func.sum(Order.discount_cents), 0),
        )
        .where(Order.event_id == event_id)
        .group_by(Order.status)
    ).all()
    by_status = {str(status): tuple(figures) for status, *figures in rows}
    confirmed = by_status.get(OrderStatus.CONFIRMED, (0, 0, 0, 0))
    cancelled = by_status.get(OrderStatus.CANCELLED, (0, 0, 0, 0))
    item_rows = dbsession.execute(
        select(
            OrderItem.ticket_type_id,
            Order.status,
            func.sum(OrderItem.quantity),
            func.sum(OrderItem.subtotal_cents - OrderItem.discount_cents),
            func.sum(OrderItem.discount_cents),
        )
        .join(Order, Order.id == OrderItem.order_id)
        .where(Order.event_id == event_id)
        .group_by(OrderItem.ticket_type_id, Order.status)
    ).all()
    by_type = {}
    for type_id, status, sold, cents, discount in item_rows:
        by_type.setdefault(type_id, {})[str(status)] = (sold, cents, discount)
    money = functools.partial(format_money, currency=event.currency)
    waiting_totals, waiting = waiting_list.summary(dbsession, event_id)
    return {
        "event": event.name,
        "status": str(event.status),
        "total_tickets": event.total_tickets,
        "available_tickets": event.available_tickets,
        "tickets_sold": confirmed[1],
        "orders": {status: figures[0] for status, figures in by_status.items()},
        "revenue": money(confirmed[2]),
        "refunded": money(cancelled[2]),
        "discounts": money(confirmed[3]),
        "currency": event.currency,
        "waiting_list": waiting_totals,
        "ticket_types": [
            {
                **_type_summary(ticket_type, event, by_type.get(ticket_type.id, {}), money),
                "waiting_list": waiting[ticket_type.id],
            }
            for ticket_type in event.ticket_types
        ],
        "promo_codes": [
            {"code": code, "orders": count, "tickets_sold": sold, "discounts": money(cents)}
            for code, count, sold, cents in promo_codes.sales_by_code(dbsession, event_id)
        ],
    }


def _type_summary(ticket_type, event, by_status, money):
    confirmed = by_status.get(OrderStatus.CONFIRMED, (0, 0, 0))
    cancelled = by_status.get(OrderStatus.CANCELLED, (0, 0, 0))
    return {
        "name": ticket_type.name,
        "price": money(ticket_type.price_cents),
        "capacity": ticket_type.capacity,
        "tickets_sold": confirmed[0],
        "available": ticket_type.available_within(event.available_tickets),
        "revenue": money(confirmed[1]),
        "refunded": money(cancelled[1]),
        "discounts": money(confirmed[2]),
    }
