"""Tickets: one per unit of a confirmed order, each with a code that admits its attendee once.

A ticket's code is HMAC-SHA256 of its id under the server's ticket secret, its first 140 bits
written in Crockford's base32 (digits and upper-case letters without I, L, O and U, so it
survives being read aloud or typed from paper), in seven groups of four. It is derived, never
stored: it can be shown again at any time, and only its SHA-256 is kept, to find the ticket a
scanner read; a leaked database alone admits nobody.

State changes of tickets live here (:func:`issue_tickets`, :func:`void_order_tickets`,
:func:`set_attendee`); checking in and undoing are in ``ticketing.domain.checkins``.
"""

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, func, literal, select, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from zope.sqlalchemy import mark_changed

from ticketing.models import Order, OrderItem, OrderStatus, Ticket, TicketStatus, TicketType

from . import events
from .errors import OrderHasNoTickets, OrderNotFound, TicketNotFound, TicketVoid

#: bits of the HMAC a code shows: more than the 128 an unguessable code needs
CODE_BITS = 140
CODE_GROUP = 4
_CODE_LENGTH = CODE_BITS // 5
#: RFC 4648's base32 alphabet, and Crockford's letter for each of its symbols
_RFC4648_TO_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)
#: what a person may read or type for a symbol (Crockford's decoding rules), and what is noise
_AS_READ = str.maketrans({"O": "0", "I": "1", "L": "1", " ": None, "-": None, "\t": None})


class TicketCodes:
    """The codes of tickets under one server secret (``ticketing.ticket_secret``)."""

    def __init__(self, secret):
        if not secret:
            raise ValueError("a ticket secret is required")
        self._key = secret.encode()

    def code_of(self, ticket_id):
        """The code shown to the buyer, e.g. ``7K3Q-9XWD-...`` (seven groups of four)."""
        symbols = self._symbols(ticket_id).decode()
        return "-".join(
            symbols[start : start + CODE_GROUP] for start in range(0, _CODE_LENGTH, CODE_GROUP)
        )

    def hash_of_ticket(self, ticket_id):
        """:func:`hash_of_code` of the ticket's code, from its symbols: they are the code as
        :func:`normalize_code` spells it (Crockford's alphabet has no O, I or L), and a
        confirmation hashes one for every ticket it issues."""
        return hashlib.sha256(self._symbols(ticket_id)).hexdigest()

    def _symbols(self, ticket_id):
        ticket_id = ticket_id if isinstance(ticket_id, uuid.UUID) else uuid.UUID(str(ticket_id))
        digest = hmac.digest(self._key, ticket_id.bytes, "sha256")
        # 18 bytes give 29 base32 symbols; the first 28 carry 140 bits of the digest.
        return base64.b32encode(digest[:18])[:_CODE_LENGTH].translate(_RFC4648_TO_CROCKFORD)


def normalize_code(code):
    """A code as typed or scanned, in the one spelling its hash is of: upper case, without
    spaces or hyphens, with O read as zero and I or L as one."""
    return code.upper().translate(_AS_READ)


def hash_of_code(code):
    return hashlib.sha256(normalize_code(code).encode()).hexdigest()


@dataclass(frozen=True)
class PlannedTicket:
    id: uuid.UUID
    ticket_type_id: uuid.UUID
    code_hash: str


def plan_tickets(codes, order):
    """The tickets a confirmed ``order`` (with its items) is owed: one per unit of each item,
    in the order of its items."""
    planned = []
    for item in sorted(order.items, key=lambda each: each.line):
        for _ in range(item.quantity):
            ticket_id = uuid.uuid4()
            planned.append(
                PlannedTicket(ticket_id, item.ticket_type_id, codes.hash_of_ticket(ticket_id))
            )
    return planned


def issuing_parameters(codes, order):
    """The parameters of :func:`issuing_cte` for ``order``'s tickets."""
    planned = plan_tickets(codes, order)
    return {
        "p_ticket_ids": [each.id for each in planned],
        "p_ticket_type_ids": [each.ticket_type_id for each in planned],
        "p_code_hashes": [each.code_hash for each in planned],
    }


def issuing_cte(confirmed):
    """PostgreSQL only: ``issued AS (INSERT INTO tickets ... SELECT ... FROM confirmed, unnest(
    :p_ticket_ids, :p_ticket_type_ids, :p_code_hashes))``, to join the statement that confirms
    the order (``confirmed``: a CTE returning its ``id``, ``event_id``, ``customer_name``,
    ``customer_email``), so that an order is confirmed and its tickets issued at once, or
    neither; it issues nothing when ``confirmed`` yields no row. Parameters from
    :func:`issuing_parameters`, and ``p_now``."""
    tickets = Ticket.__table__
    planned = (
        func.unnest(
            bindparam("p_ticket_ids", type_=ARRAY(tickets.c.id.type)),
            bindparam("p_ticket_type_ids", type_=ARRAY(tickets.c.ticket_type_id.type)),
            bindparam("p_code_hashes", type_=ARRAY(tickets.c.code_hash.type)),
        )
        .table_valued("id", "ticket_type_id", "code_hash")
        .render_derived()
    )
    now = bindparam("p_now", type_=tickets.c.created_at.type)
    values = {
        "id": planned.c.id,
        "order_id": confirmed.c.id,
        "ticket_type_id": planned.c.ticket_type_id,
        "event_id": confirmed.c.event_id,
        "attendee_name": confirmed.c.customer_name,
        "attendee_email": confirmed.c.customer_email,
        "status": literal(TicketStatus.VALID, tickets.c.status.type),
        "code_hash": planned.c.code_hash,
        "created_at": now,
        "updated_at": now,
    }
    rows = select(*values.values()).select_from(confirmed).join(planned, true())
    return tickets.insert().from_select(list(values), rows).cte("issued")


def issue_tickets(dbsession, codes, order, *, now):
    """Issue the tickets of ``order``, just confirmed in this transaction (where the confirming
    statement could not issue them itself, as on SQLite)."""
    rows = [
        {
            "id": each.id,
            "order_id": order.id,
            "ticket_type_id": each.ticket_type_id,
            "event_id": order.event_id,
            "attendee_name": order.customer_name,
            "attendee_email": order.customer_email,
            "status": TicketStatus.VALID,
            "code_hash": each.code_hash,
            "created_at": now,
            "updated_at": now,
        }
        for each in plan_tickets(codes, order)
    ]
    dbsession.execute(Ticket.__table__.insert(), rows)
    mark_changed(dbsession)


def void_order_tickets(dbsession, order_id, *, now):
    """Void the tickets of a cancelled order; return how many."""
    voided = dbsession.execute(
        update(Ticket)
        .where(Ticket.order_id == order_id, Ticket.status == TicketStatus.VALID)
        .values(status=TicketStatus.VOID, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return voided.rowcount


def lock_order_tickets(dbsession, order_id):
    """Lock the order's tickets until the transaction ends, and say whether any is checked in.

    A cancellation asks before it refunds: a scan of one of them waits for it, then finds the
    ticket void; a scan that came first is seen here (the lock waits for it to commit).
    """
    checked_in = dbsession.scalars(
        select(Ticket.checked_in_at).where(Ticket.order_id == order_id).with_for_update()
    )
    return any(when is not None for when in checked_in)


def order_tickets(dbsession, order_id):
    """The order's tickets with their types' names, in the order of the order's items; raise if
    there is no such order."""
    if dbsession.get(Order, order_id) is None:
        raise OrderNotFound(f"No order has the id {order_id}.")
    return dbsession.execute(_tickets_with_type_names().where(Ticket.order_id == order_id)).all()


def valid_tickets_of_orders(dbsession, order_ids):
    """Each of ``order_ids`` -> its valid tickets with their types' names, in the order of the
    order's items (as :func:`order_tickets`), in one query for them all. The tickets are rows
    of what a printed ticket shows (id, order_id, attendee_name, attendee_email), not ORM
    objects: the job worker only reads them, and making objects cost it more than the query."""
    found = {order_id: [] for order_id in order_ids}
    rows = dbsession.execute(
        _tickets_with_type_names(
            Ticket.id, Ticket.order_id, Ticket.attendee_name, Ticket.attendee_email
        ).where(Ticket.order_id.in_(order_ids), Ticket.status == TicketStatus.VALID)
    )
    for row in rows:
        found[row.order_id].append((row, row.type_name))
    return found


def _tickets_with_type_names(*ticket_columns):
    return (
        select(*(ticket_columns or (Ticket,)), TicketType.name.label("type_name"))
        .join(TicketType, TicketType.id == Ticket.ticket_type_id)
        .join(
            OrderItem,
            (OrderItem.order_id == Ticket.order_id)
            & (OrderItem.ticket_type_id == Ticket.ticket_type_id),
        )
        .order_by(OrderItem.line, Ticket.id)
    )


def set_attendee(dbsession, ticket_id, order_id, *, name, email, now):
    """Name who will use a ticket. ``order_id`` is the buyer's proof, as everywhere a buyer
    acts without a key: a ticket of another order is as unknown as a missing one, so that
    neither ticket ids nor order ids can be probed. Returns the ticket and its type's name."""
    ticket = dbsession.scalar(
        select(Ticket).where(Ticket.id == ticket_id, Ticket.order_id == order_id).with_for_update()
    )
    if ticket is None:
        raise TicketNotFound(f"Order {order_id} has no ticket {ticket_id}.")
    if ticket.status == TicketStatus.VOID:
        raise TicketVoid("The ticket is void: its order was cancelled.")
    ticket.attendee_name = name
    ticket.attendee_email = email
    ticket.updated_at = now
    dbsession.flush()
    return ticket, dbsession.get(TicketType, ticket.ticket_type_id).name


def printable_tickets(dbsession, order_id):
    """The order's event and its valid tickets (with their types' names), to print; raise if
    it has none (not confirmed, or cancelled)."""
    rows = [
        row for row in order_tickets(dbsession, order_id) if row[0].status == TicketStatus.VALID
    ]
    order = dbsession.get(Order, order_id)
    if not rows:
        raise OrderHasNoTickets(f"The order is {order.status}: it has no valid tickets to print.")
    return events.get_event(dbsession, order.event_id), rows


def issue_missing_tickets(dbsession, codes, *, now):
    """Issue the tickets of confirmed orders that have none: those confirmed before tickets
    existed (migration 0006 cannot, as it does not hold the ticket secret). Return how many
    orders got theirs; run again, it finds none (an order with tickets is left alone)."""
    has_tickets = select(Ticket.id).where(Ticket.order_id == Order.id).exists()
    owed = list(
        dbsession.scalars(
            select(Order)
            .where(Order.status == OrderStatus.CONFIRMED, ~has_tickets)
            .order_by(Order.created_at, Order.id)
            .with_for_update(of=Order)
        )
    )
    for order in owed:
        issue_tickets(dbsession, codes, order, now=now)
    return len(owed)
