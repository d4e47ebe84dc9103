"""The events context: what an organiser can do with an event.

The inventory of its tickets is in ``ticketing.domain.inventory``, its ticket types in
``ticketing.domain.ticket_types``.
"""

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from ticketing.events import EventChanged, EventCompleted, EventPublished
from ticketing.models import Event, EventStatus, Order, TicketType
from ticketing.money import AmountNotInCurrency, from_minor_units, to_minor_units
from ticketing.pagination import paginate
from ticketing.representations import event_json

from . import event_log, waiting_list
from .errors import (
    CurrencyLocked,
    EventDatePassed,
    EventHasOrders,
    EventNotDraft,
    EventNotFound,
    EventReadOnly,
    PriceNotInCurrency,
    TicketTypeRequired,
    TotalBelowSold,
)

GENERAL_ADMISSION = "General admission"


def create_event(
    dbsession, *, name, venue, date, currency, ticket_price, total_tickets, max_per_order
):
    """A draft event selling one type, "General admission", at ``ticket_price`` (a Decimal in
    ``currency``) within the event's own capacity."""
    event = Event(
        name=name,
        venue=venue,
        date=date,
        currency=currency,
        total_tickets=total_tickets,
        available_tickets=total_tickets,
        status=EventStatus.DRAFT,
    )
    event.ticket_types = [
        TicketType(
            name=GENERAL_ADMISSION,
            price_cents=price_in(ticket_price, currency, "ticket_price"),
            capacity=None,
            sold=0,
            min_per_order=1,
            max_per_order=max_per_order,
            hidden=False,
            position=0,
        )
    ]
    dbsession.add(event)
    dbsession.flush()
    return event


def price_in(amount, currency, field):
    """``amount`` (a Decimal) in minor units of ``currency``, or PriceNotInCurrency."""
    try:
        return to_minor_units(amount, currency)
    except AmountNotInCurrency as error:
        raise PriceNotInCurrency(str(error), field=field) from None


def get_event(dbsession, event_id, *, for_update=False, with_types=False):
    statement = select(Event).where(Event.id == event_id)
    if for_update:
        statement = statement.with_for_update()
    if with_types:
        statement = statement.options(selectinload(Event.ticket_types))
    event = dbsession.scalar(statement)
    if event is None:
        raise EventNotFound(f"No event has the id {event_id}.")
    return event


def list_events(
    dbsession, *, limit, cursor=None, status=None, updated_since=None, include_drafts=True
):
    statement = select(Event).options(selectinload(Event.ticket_types))
    if not include_drafts:
        statement = statement.where(Event.status != EventStatus.DRAFT)
    if status is not None:
        statement = statement.where(Event.status == status)
    if updated_since is not None:
        statement = statement.where(Event.updated_at >= updated_since)
    return paginate(dbsession, statement, Event, limit, cursor)


def update_event(dbsession, event_id, changes, *, now):
    """Apply ``changes`` (any of name, venue, date, total_tickets, currency, ticket_price).

    Changing ``total_tickets`` moves ``available_tickets`` by the same amount, and may not go
    below what is already sold. ``ticket_price`` is the price of the event's only ticket type
    (with several, each has its own). ``currency`` changes only while nothing was sold, and
    every price must exist in the new one. The row is locked so that a concurrent purchase
    cannot slip between the check and the write.
    """
    event = get_event(dbsession, event_id, for_update=True, with_types=True)
    if event.status == EventStatus.COMPLETED:
        raise EventReadOnly(f"Event {event_id} is completed and can no longer be changed.")
    changes = dict(changes)
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
    currency = changes.pop("currency", event.currency)
    if currency != event.currency:
        _change_currency(dbsession, event, currency)
    if "ticket_price" in changes:
        _only_type(event).price_cents = price_in(
            changes.pop("ticket_price"), currency, "ticket_price"
        )
    for field, value in changes.items():
        setattr(event, field, value)
    dbsession.flush()
    waiting_list.set_aside_for_raised_capacity(dbsession, event, now=now)
    _publish(dbsession, EventChanged, event, now)
    return event


def _publish(dbsession, kind, event, now):
    """Log and announce ``kind`` of ``event``, shown as organisers see it (hidden types too)."""
    snapshot = event_json(event, now=now, include_hidden=True)
    event_log.publish(dbsession, kind(snapshot, created_at=now))


def _change_currency(dbsession, event, currency):
    if dbsession.scalar(select(exists().where(Order.event_id == event.id))):
        raise CurrencyLocked(f"Event {event.id} has orders in {event.currency}.")
    for ticket_type in event.ticket_types:
        amount = from_minor_units(ticket_type.price_cents, event.currency)
        try:
            # normalize(): 50.00 USD is 50 JPY; only decimals that are not zero cannot move.
            ticket_type.price_cents = to_minor_units(amount.normalize(), currency)
        except AmountNotInCurrency:
            raise PriceNotInCurrency(
                f"{ticket_type.name} costs {amount} {event.currency}, which {currency} cannot "
                "express; change its price first.",
                field="currency",
            ) from None
    event.currency = currency


def _only_type(event):
    if len(event.ticket_types) != 1:
        raise TicketTypeRequired(
            "The event sells several ticket types; change each one's price with "
            "PUT /api/events/{id}/ticket-types/{ticket_type_id}.",
            ticket_types=[{"id": str(t.id), "name": t.name} for t in event.ticket_types],
        )
    return event.ticket_types[0]


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
    event = get_event(dbsession, event_id, for_update=True, with_types=True)
    if event.status != EventStatus.DRAFT:
        raise EventNotDraft(f"Event {event_id} is {event.status}; only drafts can be published.")
    if event.date <= now:
        raise EventDatePassed("An event whose date has passed cannot be published.")
    event.status = EventStatus.PUBLISHED
    dbsession.flush()
    _publish(dbsession, EventPublished, event, now)
    return event


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
        for event in dbsession.scalars(
            select(Event)
            .where(Event.id.in_(batch))
            .options(selectinload(Event.ticket_types))
            .execution_options(populate_existing=True)
        ):
            _publish(dbsession, EventCompleted, event, now)
        tm.commit()
        tm.begin()
        completed += len(batch)
