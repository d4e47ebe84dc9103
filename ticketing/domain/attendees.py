"""An event's attendee list: one row per ticket, in pages for the API and in batches for an
export of any size, both in keyset order (created_at, id), so neither ever holds more than a
page or a batch of rows."""

from sqlalchemy import select, tuple_

from ticketing.models import Event, Ticket, TicketType
from ticketing.pagination import paginate

from .errors import EventNotFound

#: rows per query of an export: large enough that the round trips do not matter, small enough
#: that a batch is a few hundred kilobytes
EXPORT_BATCH_SIZE = 1000


def require_event(dbsession, event_id):
    if dbsession.get(Event, event_id) is None:
        raise EventNotFound(f"No event has the id {event_id}.")


def attendee_page(dbsession, event_id, *, limit, cursor=None, status=None):
    """A page of the event's tickets, and the names of its ticket types by id."""
    require_event(dbsession, event_id)
    statement = select(Ticket).where(Ticket.event_id == event_id)
    if status is not None:
        statement = statement.where(Ticket.status == status)
    page = paginate(dbsession, statement, Ticket, limit, cursor)
    return page, type_names(dbsession, event_id)


def type_names(dbsession, event_id):
    return dict(
        dbsession.execute(
            select(TicketType.id, TicketType.name).where(TicketType.event_id == event_id)
        ).all()
    )


#: what an export row holds, in its order
EXPORT_COLUMNS = (
    Ticket.order_id,
    Ticket.id.label("ticket_id"),
    TicketType.name.label("ticket_type"),
    Ticket.attendee_name,
    Ticket.attendee_email,
    Ticket.status,
    Ticket.checked_in_at,
    Ticket.created_at,
)


def attendee_batches(session_factory, event_id, *, status=None, batch_size=EXPORT_BATCH_SIZE):
    """Every ticket of the event, as lists of at most ``batch_size`` rows (``EXPORT_COLUMNS``).

    Each batch is read in a short session of its own, so no connection is held while the caller
    hands the previous batch on (to a slow client, say), and no more than a batch is in memory.
    """
    after = None
    while True:
        statement = (
            select(*EXPORT_COLUMNS)
            .join(TicketType, TicketType.id == Ticket.ticket_type_id)
            .where(Ticket.event_id == event_id)
            .order_by(Ticket.created_at, Ticket.id)
            .limit(batch_size)
        )
        if status is not None:
            statement = statement.where(Ticket.status == status)
        if after is not None:
            statement = statement.where(tuple_(Ticket.created_at, Ticket.id) > tuple_(*after))
        with session_factory() as session:
            rows = session.execute(statement).all()
        if not rows:
            return
        yield rows
        if len(rows) < batch_size:
            return
        after = (rows[-1].created_at, rows[-1].ticket_id)
