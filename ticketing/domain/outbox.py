"""The email outbox: emails owed to customers, recorded in the transaction that makes them due.

Recording an email also asks for it to be dispatched once the transaction commits; who dispatches
(the job queue) is wired up outside the domain, through ``dbsession.info[DISPATCH_AFTER_COMMIT]``.
If that dispatch is lost (the queue was down, a worker died mid-task), :func:`overdue_emails`
finds the email again. Delivery is idempotent: an email marked sent is never sent again.
"""

import collections
import dataclasses
import datetime as dt
import functools
import types
import uuid

from sqlalchemy import bindparam, literal, select, update
from zope.sqlalchemy import mark_changed

from ticketing.models import EmailKind, EmailStatus, Event, Order, OrderItem, OutboxEmail
from ticketing.notifications import (
    order_cancellation_message,
    order_confirmation_message,
    payment_refunded_message,
    waiting_list_offer_message,
)
from ticketing.ticket_pdf import printed_tickets, tickets_pdf

from . import tickets
from .errors import EmailDeliveryError, EmailNotFound

#: session.info key: ids of outbox emails to dispatch after the session's transaction commits
DISPATCH_AFTER_COMMIT = "ticketing.outbox.dispatch_after_commit"

#: the first attempt and five retries
MAX_ATTEMPTS = 6

#: how long a pending email may sit past its due time before the sweep dispatches it again
SWEEP_GRACE = dt.timedelta(minutes=1)

MESSAGES = {
    EmailKind.ORDER_CONFIRMATION: order_confirmation_message,
    EmailKind.ORDER_CANCELLATION: order_cancellation_message,
    EmailKind.PAYMENT_REFUNDED: payment_refunded_message,
    EmailKind.WAITING_LIST_OFFER: waiting_list_offer_message,
}


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What one delivery attempt came to: ``sent``, ``skipped`` (sent already, given up, or
    being sent by someone else), ``retry`` (failed, try again) or ``failed`` (given up)."""

    outcome: str
    error: str | None = None
    email_id: uuid.UUID | None = None


def record_email(dbsession, order_id, kind, *, now):
    """Owe the order's customer an email; return its id."""
    email_id = uuid.uuid4()
    dbsession.execute(
        _owing_email_to(kind), {"p_order_id": order_id, "p_email_id": email_id, "p_now": now}
    )
    mark_changed(dbsession)
    dispatch_after_commit(dbsession, email_id)
    return email_id


@functools.cache
def _owing_email_to(kind):
    outbox = OutboxEmail.__table__
    return owing_email(bindparam("p_order_id", type_=outbox.c.order_id.type), kind)


def owing_email(order_id, kind):
    """``INSERT INTO email_outbox ... SELECT ...`` owing a ``kind`` email for ``order_id``, with
    parameters ``p_email_id`` and ``p_now``. ``order_id`` may be the column of a CTE such as
    ``WITH confirmed AS (UPDATE orders ... RETURNING id)``: changing an order and owing its email
    are then one statement, which owes nothing when the CTE yields no row. Callers that run it
    must :func:`dispatch_after_commit` the email id they passed."""
    outbox = OutboxEmail.__table__
    now = bindparam("p_now", type_=outbox.c.created_at.type)
    values = {
        "id": bindparam("p_email_id", type_=outbox.c.id.type),
        "order_id": order_id,
        "kind": literal(kind, outbox.c.kind.type),
        "status": literal(EmailStatus.PENDING, outbox.c.status.type),
        "attempts": literal(0),
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
    return (
        outbox.insert().from_select(list(values), select(*values.values())).returning(outbox.c.id)
    )


def dispatch_after_commit(dbsession, email_id):
    dbsession.info.setdefault(DISPATCH_AFTER_COMMIT, set()).add(email_id)


def deliver(
    dbsession,
    sender,
    email_id,
    *,
    now,
    from_address,
    retry_in,
    ticket_codes,
    attach_pdf=True,
    batch_size=1,
):
    """Send the outbox email ``email_id``, at most once, and with it up to ``batch_size - 1``
    other pending emails that are due; record each attempt on its row. Returns a
    :class:`Delivery` per email tried, ``email_id``'s first.

    The rows stay locked (``FOR UPDATE SKIP LOCKED``) while their messages are handed over, in
    one transaction and on one sender, so that a second job for one of them (its own, or the
    sweep's) skips it instead of sending it twice. A crash before the commit leaves the batch
    pending: the sweep sends it again (the stable Message-ID lets mail systems drop a copy).
    ``retry_in`` is how long until the job queue's next attempt at ``email_id``; the sweep
    leaves it alone until then. Only ``email_id``'s job counts its attempts and retries: when
    another email of the batch fails in a way worth retrying, it is left as it was, to its own
    job or the sweep, and so is the rest of the batch (the mail server is likely in trouble).
    ``ticket_codes`` shows the tickets' codes in the confirmation, which attaches them as a PDF
    unless ``attach_pdf`` is false.
    """
    own = dbsession.execute(
        _pending_emails().where(OutboxEmail.id == email_id).with_for_update(skip_locked=True)
    ).first()
    if own is None:
        return [Delivery("skipped", email_id=email_id)]
    batch = [own]
    if batch_size > 1:
        batch += dbsession.execute(
            _pending_emails()
            .where(OutboxEmail.id != email_id, OutboxEmail.next_attempt_at <= now)
            .order_by(OutboxEmail.next_attempt_at)
            .limit(batch_size - 1)
            .with_for_update(skip_locked=True)
        ).all()
    messages = _messages(dbsession, batch, from_address, ticket_codes, attach_pdf)
    deliveries = []
    for email in batch:
        try:
            sender.send(messages[email.id])
        except EmailDeliveryError as error:
            retryable = error.extra.get("retryable", True)
            if email.id != email_id and retryable:
                break
            deliveries.append(_failed(dbsession, email, error, retryable, now, retry_in))
            if retryable:
                break
        else:
            deliveries.append(Delivery("sent", email_id=email.id))
    sent = [delivery.email_id for delivery in deliveries if delivery.outcome == "sent"]
    if sent:
        dbsession.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id.in_(sent))
            .values(
                status=EmailStatus.SENT,
                attempts=OutboxEmail.attempts + 1,
                sent_at=now,
                updated_at=now,
                last_error=None,
            )
            .execution_options(synchronize_session=False)
        )
    return deliveries


def _pending_emails():
    return select(
        OutboxEmail.id, OutboxEmail.order_id, OutboxEmail.kind, OutboxEmail.attempts
    ).where(OutboxEmail.status == EmailStatus.PENDING)


def _failed(dbsession, email, error, retryable, now, retry_in):
    """Record a failed attempt: to be retried in ``retry_in``, or given up on."""
    attempts = email.attempts + 1
    give_up = attempts >= MAX_ATTEMPTS or not retryable
    values = {"attempts": attempts, "last_error": str(error), "updated_at": now}
    if give_up:
        values["status"] = EmailStatus.FAILED
    else:
        values["next_attempt_at"] = now + retry_in
    dbsession.execute(
        update(OutboxEmail)
        .where(OutboxEmail.id == email.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return Delivery("failed" if give_up else "retry", str(error), email.id)


def _messages(dbsession, batch, from_address, ticket_codes, attach_pdf):
    """The message of each email of ``batch``, from a query per kind of row they need. Rows,
    not ORM objects: the messages only read them, and making objects of them (orders, their
    items, events, tickets) cost the worker a fifth of each email."""
    order_ids = {email.order_id for email in batch}
    items_of = collections.defaultdict(list)
    for item in dbsession.execute(
        select(OrderItem.__table__)
        .where(OrderItem.order_id.in_(order_ids))
        .order_by(OrderItem.line)
    ):
        items_of[item.order_id].append(item)
    orders = {
        row.id: types.SimpleNamespace(**row._mapping, items=items_of[row.id])
        for row in dbsession.execute(select(Order.__table__).where(Order.id.in_(order_ids)))
    }
    events_by_id = {
        row.id: row
        for row in dbsession.execute(
            select(Event.__table__).where(
                Event.id.in_({order.event_id for order in orders.values()})
            )
        )
    }
    confirmed = [email.order_id for email in batch if email.kind == EmailKind.ORDER_CONFIRMATION]
    tickets_of = tickets.valid_tickets_of_orders(dbsession, confirmed) if confirmed else {}
    messages = {}
    for email in batch:
        order = orders[email.order_id]
        event = events_by_id[order.event_id]
        if email.kind == EmailKind.ORDER_CONFIRMATION:
            printed = printed_tickets(tickets_of[order.id], ticket_codes)
            pdf = tickets_pdf(event, printed) if printed and attach_pdf else None
            message = order_confirmation_message(order, event, from_address, printed, pdf)
        else:
            message = MESSAGES[email.kind](order, event, from_address)
        # A stable Message-ID lets mail systems drop a duplicate if a delivery is ever repeated.
        del message["Message-ID"]
        message["Message-ID"] = f"<{email.id}@{_domain_of(from_address)}>"
        messages[email.id] = message
    return messages


def overdue_emails(dbsession, *, now, limit=500):
    """Pending emails whose dispatch seems lost; marks them as dispatched now and returns their
    ids, so that the caller dispatches each (after commit) and the next sweep waits again."""
    overdue = list(
        dbsession.scalars(
            select(OutboxEmail.id)
            .where(
                OutboxEmail.status == EmailStatus.PENDING,
                OutboxEmail.next_attempt_at <= now - SWEEP_GRACE,
            )
            .order_by(OutboxEmail.next_attempt_at)
            .limit(limit)
        )
    )
    if overdue:
        dbsession.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id.in_(overdue))
            .values(next_attempt_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        for email_id in overdue:
            dispatch_after_commit(dbsession, email_id)
    return overdue


def failed_emails(dbsession, *, limit=100):
    """The emails given up on after their last attempt, newest first, for an organiser to see."""
    return list(
        dbsession.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.status == EmailStatus.FAILED)
            .order_by(OutboxEmail.updated_at.desc())
            .limit(limit)
        )
    )


def resend_email(dbsession, order_id, kind=EmailKind.ORDER_CONFIRMATION, *, now):
    """Send an order's email again from the start, e.g. one that failed after its last attempt."""
    email = dbsession.scalar(
        select(OutboxEmail)
        .where(OutboxEmail.order_id == order_id, OutboxEmail.kind == kind)
        .with_for_update()
    )
    if email is None:
        raise EmailNotFound(f"Order {order_id} owes no {kind} email.")
    email.status = EmailStatus.PENDING
    email.attempts = 0
    email.last_error = None
    email.next_attempt_at = now
    email.updated_at = now
    dbsession.flush()
    dispatch_after_commit(dbsession, email.id)
    return email


def _domain_of(address):
    return str(address).rpartition("@")[2].strip(" >") or "localhost"
