"""The events context: what an organiser can do with an event, and the inventory of its tickets.

Other contexts (ordering) change an event's inventory only through the functions here.
"""

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from zope.sqlalchemy import mark_changed

from ticketing.models import Event, EventStatus
from ticketing.pagination import paginate

from .errors import (
    EventDatePassed,
    EventHasOrders,
    EventNotDraft,
    EventNotFound,
    EventNotOnSale,
    EventReadOnly,
    InsufficientTickets,
    TotalBelowSold,
)


def create_event(dbsession, *, name, venue, date, ticket_price_cents, total_tickets):
    event = Event(
        name=name,
        venue=venue,
        date=date,
        ticket_price_cents=ticket_price_cents,
        total_tickets=total_tickets,
        available_tickets=total_tickets,
        status=EventStatus.DRAFT,
    )
    dbsession.add(event)
    dbsession.flush()
    return event


def get_event(dbsession, event_id, *, for_update=False):
    statement = select(Event).where(Event.id == event_id)
    if for_update:
        statement = statement.with_for_update()
    event = dbsession.scalar(statement)
    if event is None:
        raise EventNotFound(f"No event has the id {event_id}.")
    return event


def list_events(
    dbsession, *, limit, cursor=None, status=None, updated_since=None, include_drafts=True
):
    statement = select(Event)
    if not include_drafts:
        statement = statement.where(Event.status != EventStatus.DRAFT)
    if status is not None:
        statement = statement.where(Event.status == status)
    if updated_since is not None:
        statement = statement.where(Event.updated_at >= updated_since)
    return paginate(dbsession, statement, Event, limit, cursor)


def update_event(dbsession, event_id, changes, *, now):
    """Apply ``changes`` (any of name, venue, date, ticket_price_cents, total_tickets).

    Changing ``total_tickets`` moves ``available_tickets`` by the same amount, and may not go
    below what is already sold. The row is locked so that a concurrent purchase cannot slip
    between the check and the write.
    """
    event = get_event(dbsession, event_id, for_update=True)
    if event.status == EventStatus.COMPLETED:
        raise EventReadOnly(f"Event {event_id} is completed and can no longer be changed.")
    if "date" in changes and changes["date"] <= now:
        raise EventDatePassed("The new date must lie in the future.")
    if "total_tickets" in changes:
        new_total = changes["total_tickets"]
        if new_total < event.tickets_sold:
            raise TotalBelowSold(
                f"{event.tickets_sold} tickets are already sold; total_tickets cannot be "
                f"{new_total}."
            )
        event.available_tickets += new_total - event.total_tickets
    for field, value in changes.items():
        setattr(event, field, value)
    dbsession.flush()
    return event


def delete_event(dbsession, event_id):
    """Delete an event that has no orders; sales history is never destroyed."""
    event = get_event(dbsession, event_id, for_update=True)
    dbsession.delete(event)
    try:
        # The orders' foreign key refuses the delete when any order refers to the event; the
        # error response then aborts the whole transaction.
        dbsession.flush()
    except IntegrityError:
        raise EventHasOrders(
            f"Event {event_id} has orders; cancel them or keep the event."
        ) from None


def publish_event(dbsession, event_id, *, now):
    event = get_event(dbsession, event_id, for_update=True)
    if event.status != EventStatus.DRAFT:
        raise EventNotDraft(f"Event {event_id} is {event.status}; only drafts can be published.")
    if event.date <= now:
        raise EventDatePassed("An event whose date has passed cannot be published.")
    event.status = EventStatus.PUBLISHED
    dbsession.flush()
    return event


def reservation(event_id, quantity, *, now):
    """The statement that takes ``quantity`` tickets of an event on sale and returns its unit
    price and currency, or no row when it cannot.

    One conditional UPDATE: concurrent buyers cannot oversell, because the row is re-checked
    under its lock, and the CHECK constraint stands behind it. The lock lasts until the caller's
    transaction ends, so callers commit before any slow call. Callers may run it alone
    (:func:`reserve_tickets`) or, on PostgreSQL, as a CTE feeding their own INSERT.
    """
    events = Event.__table__
    return (
        events.update()
        .where(
            events.c.id == event_id,
            events.c.status == EventStatus.PUBLISHED,
            events.c.date > now,
            events.c.available_tickets >= quantity,
        )
        .values(available_tickets=events.c.available_tickets - quantity, updated_at=now)
        .returning(events.c.ticket_price_cents, events.c.currency)
    )


def reserve_tickets(dbsession, event_id, quantity, *, now):
    """Take ``quantity`` tickets of an event on sale, or raise; return (unit price, currency)."""
    reserved = dbsession.execute(reservation(event_id, quantity, now=now)).one_or_none()
    if reserved is None:
        refuse_reservation(dbsession, event_id, quantity, now=now)
    mark_changed(dbsession)
    return reserved.ticket_price_cents, reserved.currency


def refuse_reservation(dbsession, event_id, quantity, *, now):
    """Raise why a reservation took nothing; only a refusal pays for this second query."""
    event = get_event(dbsession, event_id)
    if event.status != EventStatus.PUBLISHED or event.date <= now:
        raise EventNotOnSale(f"Event {event_id} is {event.status} and dated {event.date:%Y-%m-%d}.")
    raise InsufficientTickets(
        f"{quantity} tickets asked, {event.available_tickets} left.",
        available_tickets=event.available_tickets,
    )


def release_tickets(dbsession, event_id, quantity, *, now):
    """Give back tickets of a failed or cancelled order."""
    dbsession.execute(
        update(Event)
        .where(Event.id == event_id)
        .values(available_tickets=Event.available_tickets + quantity, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def complete_past_events(dbsession, tm, *, now, batch_size=500):
    """Mark published events whose date has passed as completed, ``batch_size`` at a time, each
    batch in its own transaction on ``tm``; drafts are left alone. Running it again changes
    nothing. Returns how many events it completed."""
    completed = 0
    while True:
        batch = list(
            dbsession.scalars(
                select(Event.id)
                .where(Event.status == EventStatus.PUBLISHED, Event.date < now)
                .limit(batch_size)
            )
        )
        if not batch:
            return completed
        dbsession.execute(
            update(Event)
            .where(Event.id.in_(batch), Event.status == EventStatus.PUBLISHED)
            .values(status=EventStatus.COMPLETED, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        tm.commit()
        tm.begin()
        completed += len(batch)
