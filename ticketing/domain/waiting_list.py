"""The waiting list: people waiting for tickets of a sold-out type, served in the order they
joined when tickets come back.

Tickets come back when an order gives them back (a cancellation, an expired or released hold, a
failed payment: :func:`ticketing.domain.inventory.release_order`) or a capacity is raised. The
transaction that frees them also sets them aside for the type's list while anyone waits for it
(:func:`set_aside_for_waiters`): they stay counted in the type's ``sold`` and out of the event's
``available_tickets``, as ``set_aside``, so the purchase (which reads those two, and nothing
more) cannot take them, whatever the time until the matching job runs.

The matching job (:func:`match`, after the freeing transaction commits, and a sweep every
minute) turns what is set aside into offers: a hold (an order ``reserved`` until
``ticketing.waitlist_offer_hours``, 24 by default, from now) for each entry in line whose
quantity fits, with an email (the outbox's ``waiting_list_offer``) naming the order to pay.
An offer paid confirms the entry ``purchased``; an offer not paid in time expires like any hold,
and its tickets, given back, are set aside for the next entries at once.

Entries are served first come, first served, and an entry asking for more than is set aside is
skipped for one behind it that fits; it keeps its place, and the tickets that no entry fits stay
set aside (while anyone waits) until there are enough for it. So no ticket waits while someone
behind could use it (pretix's maintainers, declining several tickets per entry, gave the unused
seats as the reason: pretix/pretix#974), and a group is never pushed back by the ones it lets
pass. Tickets set aside beyond what the people in line want go back on public sale.

Lock order, as everywhere (``ticketing.domain.inventory``): the event's row, then its types' rows
in id order, then the entries, taken ``FOR UPDATE SKIP LOCKED`` (an entry locked is one being
left; the others are served without waiting for it).
"""

import dataclasses
import uuid

from sqlalchemy import exists, func, select, update
from zope.sqlalchemy import mark_changed

from ticketing.models import (
    ACTIVE_ENTRY_STATUSES,
    EmailKind,
    EntryStatus,
    Event,
    EventStatus,
    Order,
    OrderItem,
    OrderStatus,
    TicketType,
    WaitingListEntry,
)
from ticketing.pagination import paginate

from . import outbox
from .errors import (
    AboveMaxPerOrder,
    AlreadyOnWaitingList,
    BelowMinPerOrder,
    EventNotFound,
    EventNotOnSale,
    TicketsAvailable,
    TicketTypeNotFound,
    TicketTypeNotOnSale,
    TicketTypeRequired,
    WaitingListEntryNotFound,
    WaitingListEntryPurchased,
)

#: how long an offer's hold lasts (setting ``ticketing.waitlist_offer_hours``)
DEFAULT_OFFER_HOURS = 24

#: session.info key: ticket types whose set-aside tickets the matching job should offer, once
#: the session's transaction commits (the job queue reads it: ``ticketing.jobs.waiting_list``)
MATCH_AFTER_COMMIT = "ticketing.waiting_list.match_after_commit"

_WAITING = WaitingListEntry.status == EntryStatus.WAITING


@dataclasses.dataclass(frozen=True)
class ShownEntry:
    """An entry as the API shows it: its place in line (while it waits) and its offer's hold."""

    entry: WaitingListEntry
    position: int | None
    offer: Order | None


def match_after_commit(dbsession, ticket_type_id):
    dbsession.info.setdefault(MATCH_AFTER_COMMIT, set()).add(ticket_type_id)


def anyone_waits_for_event(event_id_column):
    """SQL: whether anyone waits for a type of the event ``event_id_column`` names (for
    :func:`~ticketing.domain.inventory.release_order` to ask in a statement it runs anyway)."""
    return exists().where(WaitingListEntry.event_id == event_id_column, _WAITING)


def join(dbsession, event_id, *, email, name, ticket_type_id, quantity, now):
    """Put ``email`` in line for ``quantity`` tickets of ``ticket_type_id`` (None: the event's
    only type on sale); return the :class:`ShownEntry`. Refused while the type sells that many
    (:class:`TicketsAvailable`: buy them instead), and for an email already in its line.

    Locks the event's row, as giving tickets back does: a cancellation either comes first, and
    the joiner is told to buy, or finds the joiner in line and sets its tickets aside."""
    event = dbsession.scalar(
        select(Event)
        .where(Event.id == event_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if event is None:
        raise EventNotFound(f"No event has the id {event_id}.")
    if event.status != EventStatus.PUBLISHED or event.date <= now:
        raise EventNotOnSale(f"Event {event_id} is {event.status} and dated {event.date:%Y-%m-%d}.")
    ticket_type = _type_to_wait_for(dbsession, event, ticket_type_id, now)
    if not ticket_type.on_sale_at(now):
        raise TicketTypeNotOnSale(
            f"{ticket_type.name} is not on sale now.", ticket_type_id=str(ticket_type.id)
        )
    named = {"ticket_type_id": str(ticket_type.id)}
    if quantity < ticket_type.min_per_order:
        raise BelowMinPerOrder(
            f"{ticket_type.name}: at least {ticket_type.min_per_order} per order.",
            field="min_per_order",
            min_per_order=ticket_type.min_per_order,
            **named,
        )
    if quantity > ticket_type.max_per_order:
        raise AboveMaxPerOrder(
            f"{ticket_type.name}: at most {ticket_type.max_per_order} per order.",
            field="max_per_order",
            max_per_order=ticket_type.max_per_order,
            **named,
        )
    left = ticket_type.available_within(event.available_tickets)
    if left >= quantity:
        raise TicketsAvailable(
            f"{left} {ticket_type.name} tickets are on sale; buy them instead.",
            available_tickets=left,
            **named,
        )
    already = dbsession.scalar(
        select(WaitingListEntry.id).where(
            WaitingListEntry.ticket_type_id == ticket_type.id,
            WaitingListEntry.email == email,
            WaitingListEntry.status.in_(ACTIVE_ENTRY_STATUSES),
        )
    )
    if already is not None:
        raise AlreadyOnWaitingList(
            f"{email} is already on the waiting list for {ticket_type.name}.", **named
        )
    entry = WaitingListEntry(
        id=uuid.uuid4(),
        event_id=event.id,
        ticket_type_id=ticket_type.id,
        email=email,
        name=name,
        quantity=quantity,
        status=EntryStatus.WAITING,
        created_at=now,
        updated_at=now,
    )
    dbsession.add(entry)
    # The event's lock makes joins of one type take turns: the check above cannot be raced.
    dbsession.flush()
    if ticket_type.set_aside:
        # Tickets kept for people ahead who want more: the newcomer may fit.
        match_after_commit(dbsession, ticket_type.id)
    return ShownEntry(entry, _position(dbsession, entry), None)


def _type_to_wait_for(dbsession, event, ticket_type_id, now):
    types = list(
        dbsession.scalars(
            select(TicketType)
            .where(TicketType.event_id == event.id, TicketType.hidden.is_(False))
            .order_by(TicketType.position, TicketType.created_at)
            .execution_options(populate_existing=True)
        )
    )
    if ticket_type_id is not None:
        found = next((each for each in types if each.id == ticket_type_id), None)
        if found is None:
            raise TicketTypeNotFound(
                f"Event {event.id} has no ticket type {ticket_type_id}.",
                ticket_type_id=str(ticket_type_id),
            )
        return found
    on_sale = [each for each in types if each.on_sale_at(now)]
    if len(on_sale) > 1:
        raise TicketTypeRequired(
            "The event sells several ticket types; name one in entry.ticket_type_id: "
            + ", ".join(f"{each.name} ({each.id})" for each in on_sale)
            + ".",
            ticket_types=[{"id": str(each.id), "name": each.name} for each in on_sale],
        )
    if not on_sale:
        raise TicketTypeNotOnSale("None of the event's ticket types is on sale now.")
    return on_sale[0]


def _position(dbsession, entry):
    """1 for the next entry of its type to be offered tickets; None once it no longer waits."""
    if entry.status != EntryStatus.WAITING:
        return None
    ahead = dbsession.scalar(
        select(func.count())
        .select_from(WaitingListEntry)
        .where(
            WaitingListEntry.ticket_type_id == entry.ticket_type_id,
            _WAITING,
            (WaitingListEntry.created_at < entry.created_at)
            | (
                (WaitingListEntry.created_at == entry.created_at) & (WaitingListEntry.id < entry.id)
            ),
        )
    )
    return ahead + 1


def get_entry(dbsession, entry_id):
    entry = dbsession.get(WaitingListEntry, entry_id, populate_existing=True)
    if entry is None:
        raise WaitingListEntryNotFound(f"No waiting list entry has the id {entry_id}.")
    offer = dbsession.get(Order, entry.order_id) if entry.order_id else None
    return ShownEntry(entry, _position(dbsession, entry), offer)


def leave(dbsession, gateway, entry_id, *, now):
    """Leave the list: a waiting entry at once; an offered one gives its offer's hold back
    first (its tickets go to the next in line). Leaving again changes nothing; an entry whose
    offer was paid cannot leave (:class:`WaitingListEntryPurchased`: cancel the order)."""
    entry = dbsession.scalar(
        select(WaitingListEntry)
        .where(WaitingListEntry.id == entry_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if entry is None:
        raise WaitingListEntryNotFound(f"No waiting list entry has the id {entry_id}.")
    if entry.status == EntryStatus.PURCHASED:
        raise WaitingListEntryPurchased(
            f"The offer of this entry was paid (order {entry.order_id}); cancel the order instead.",
            order_id=str(entry.order_id),
        )
    if entry.status not in (EntryStatus.WAITING, EntryStatus.OFFERED):
        return entry
    if entry.status == EntryStatus.OFFERED:
        from . import holds  # a hold's release gives its tickets back, through us

        holds.release_hold(dbsession, gateway, entry.order_id, now=now)
    entry.status = EntryStatus.LEFT
    entry.ended_at = now
    entry.updated_at = now
    dbsession.flush()
    # What was set aside for it may now be more than the people in line want.
    match_after_commit(dbsession, entry.ticket_type_id)
    return entry


def list_entries(dbsession, event_id, *, limit, cursor=None, status=None, ticket_type_id=None):
    """The event's entries in the order they joined (a page of :class:`ShownEntry`)."""
    if dbsession.get(Event, event_id) is None:
        raise EventNotFound(f"No event has the id {event_id}.")
    statement = select(WaitingListEntry).where(WaitingListEntry.event_id == event_id)
    if status is not None:
        statement = statement.where(WaitingListEntry.status == status)
    if ticket_type_id is not None:
        statement = statement.where(WaitingListEntry.ticket_type_id == ticket_type_id)
    page = paginate(dbsession, statement, WaitingListEntry, limit, cursor)
    positions = dict(
        dbsession.execute(
            select(
                WaitingListEntry.id,
                func.row_number().over(
                    partition_by=WaitingListEntry.ticket_type_id,
                    order_by=(WaitingListEntry.created_at, WaitingListEntry.id),
                ),
            ).where(WaitingListEntry.event_id == event_id, _WAITING)
        ).all()
    )
    order_ids = [entry.order_id for entry in page.items if entry.order_id]
    offers = {
        order.id: order for order in dbsession.scalars(select(Order).where(Order.id.in_(order_ids)))
    }
    page.items = [
        ShownEntry(entry, positions.get(entry.id), offers.get(entry.order_id))
        for entry in page.items
    ]
    return page


def set_aside_for_waiters(dbsession, event_id, *, now):
    """Keep for the people in line what public sale could take of what they wait for: for each
    type of the event that someone waits for (the type of the earliest entry first, when the
    event's room is shared), as much of its room as its line wants beyond what is set aside for
    it already. Call with the event's row locked (it is, by whoever just freed tickets); locks
    the types' rows in id order. Returns how many tickets were set aside (none for an event no
    longer on sale)."""
    event = dbsession.execute(
        select(Event.available_tickets, Event.status, Event.date).where(Event.id == event_id)
    ).one()
    if event.status != EventStatus.PUBLISHED or event.date <= now:
        return 0  # nobody can be offered tickets of an event no longer on sale
    available = event.available_tickets
    first_waiting = func.min(WaitingListEntry.created_at)
    wanted = (
        select(
            WaitingListEntry.ticket_type_id,
            func.sum(WaitingListEntry.quantity).label("wanted"),
            first_waiting.label("since"),
        )
        .where(WaitingListEntry.event_id == event_id, _WAITING)
        .group_by(WaitingListEntry.ticket_type_id)
    )
    wanted = {row.ticket_type_id: row for row in dbsession.execute(wanted)}
    if not wanted or not available:
        return 0
    types = dbsession.execute(
        select(TicketType.id, TicketType.capacity, TicketType.sold, TicketType.set_aside)
        .where(TicketType.id.in_(list(wanted)))
        .order_by(TicketType.id)
        .with_for_update()
    ).all()
    total = 0
    for ticket_type in sorted(types, key=lambda each: wanted[each.id].since):
        room = available - total
        if ticket_type.capacity is not None:
            room = min(room, ticket_type.capacity - ticket_type.sold)
        kept = min(room, wanted[ticket_type.id].wanted - ticket_type.set_aside)
        if kept <= 0:
            continue
        dbsession.execute(
            update(TicketType)
            .where(TicketType.id == ticket_type.id)
            .values(
                sold=TicketType.sold + kept,
                set_aside=TicketType.set_aside + kept,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        match_after_commit(dbsession, ticket_type.id)
        total += kept
    if total:
        dbsession.execute(
            update(Event)
            .where(Event.id == event_id)
            .values(available_tickets=Event.available_tickets - total, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        mark_changed(dbsession)
    return total


def set_aside_for_raised_capacity(dbsession, event, *, now):
    """An organiser raised the capacity of ``event`` (locked, its types loaded) or of one of its
    types: what the line can use of it is set aside for it, and the objects show what is left."""
    if set_aside_for_waiters(dbsession, event.id, now=now):
        dbsession.refresh(event, ["available_tickets", "updated_at"])
        for ticket_type in event.ticket_types:
            dbsession.refresh(ticket_type, ["sold", "set_aside", "updated_at"])


def end_offer(dbsession, order_id, *, now):
    """The offer whose hold is ``order_id`` gave its tickets back (expired, released, its
    payment failed): the entry's turn is over (``expired``)."""
    dbsession.execute(
        update(WaitingListEntry)
        .where(
            WaitingListEntry.order_id == order_id, WaitingListEntry.status == EntryStatus.OFFERED
        )
        .values(status=EntryStatus.EXPIRED, ended_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    mark_changed(dbsession)


def is_offer(order_id_column):
    """SQL: whether the order ``order_id_column`` names is an offer still out."""
    return exists().where(
        WaitingListEntry.order_id == order_id_column,
        WaitingListEntry.status == EntryStatus.OFFERED,
    )


def offer_paid(dbsession, order_id, *, now):
    """A hold was confirmed: if it is an offer (still out, or expired and paid after all),
    its entry has what it waited for."""
    dbsession.execute(
        update(WaitingListEntry)
        .where(
            WaitingListEntry.order_id == order_id,
            WaitingListEntry.status.in_((EntryStatus.OFFERED, EntryStatus.EXPIRED)),
        )
        .values(status=EntryStatus.PURCHASED, ended_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    mark_changed(dbsession)


@dataclasses.dataclass
class MatchReport:
    offered: list = dataclasses.field(default_factory=list)
    #: tickets set aside that nobody in line wanted any more, back on public sale
    released: int = 0


def match(dbsession, ticket_type_id, *, now, offer_for):
    """The matching job's work for one type: offer what is set aside to the entries in line, in
    order, each whose quantity fits (a hold lasting ``offer_for``, and its email); put back on
    sale what is set aside beyond what the entries still in line want. Returns a
    :class:`MatchReport`. The caller commits."""
    report = MatchReport()
    event_id = dbsession.scalar(select(TicketType.event_id).where(TicketType.id == ticket_type_id))
    if event_id is None:
        return report
    event = dbsession.execute(
        select(Event.id, Event.currency, Event.date, Event.status)
        .where(Event.id == event_id)
        .with_for_update()
    ).one()
    ticket_type = dbsession.execute(
        select(TicketType.id, TicketType.name, TicketType.price_cents, TicketType.set_aside)
        .where(TicketType.id == ticket_type_id)
        .with_for_update()
    ).one()
    left = ticket_type.set_aside
    if not left:
        return report
    if event.status == EventStatus.PUBLISHED and event.date > now:
        in_line = dbsession.scalars(
            select(WaitingListEntry)
            .where(WaitingListEntry.ticket_type_id == ticket_type_id, _WAITING)
            .order_by(WaitingListEntry.created_at, WaitingListEntry.id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        for entry in in_line:
            if entry.quantity <= left:
                _offer(dbsession, entry, event, ticket_type, now=now, offer_for=offer_for)
                report.offered.append(entry.id)
                left -= entry.quantity
                if not left:
                    break
        still_wanted = dbsession.scalar(
            select(func.coalesce(func.sum(WaitingListEntry.quantity), 0)).where(
                WaitingListEntry.ticket_type_id == ticket_type_id, _WAITING
            )
        )
    else:
        still_wanted = 0  # nobody can be offered tickets of an event no longer on sale
    report.released = max(0, left - still_wanted)
    dbsession.execute(
        update(TicketType)
        .where(TicketType.id == ticket_type_id)
        .values(
            set_aside=left - report.released,
            sold=TicketType.sold - report.released,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if report.released:
        dbsession.execute(
            update(Event)
            .where(Event.id == event_id)
            .values(available_tickets=Event.available_tickets + report.released, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        # Another type's line may use the event's room they leave.
        set_aside_for_waiters(dbsession, event_id, now=now)
    mark_changed(dbsession)
    return report


def _offer(dbsession, entry, event, ticket_type, *, now, offer_for):
    """A hold of the entry's tickets (they are set aside already: the type's ``sold`` counts
    them), for its email and name, and the email that tells them."""
    order = Order(
        id=uuid.uuid4(),
        event_id=event.id,
        customer_email=entry.email,
        customer_name=entry.name,
        quantity=entry.quantity,
        unit_price_cents=ticket_type.price_cents,
        total_amount_cents=ticket_type.price_cents * entry.quantity,
        currency=event.currency,
        status=OrderStatus.RESERVED,
        expires_at=now + offer_for,
        created_at=now,
        updated_at=now,
    )
    order.items = [
        OrderItem(
            ticket_type_id=ticket_type.id,
            line=1,
            name=ticket_type.name,
            quantity=entry.quantity,
            unit_price_cents=ticket_type.price_cents,
            subtotal_cents=ticket_type.price_cents * entry.quantity,
        )
    ]
    dbsession.add(order)
    entry.status = EntryStatus.OFFERED
    entry.order_id = order.id
    entry.offered_at = now
    entry.updated_at = now
    dbsession.flush()
    outbox.record_email(dbsession, order.id, EmailKind.WAITING_LIST_OFFER, now=now)


def types_to_match(dbsession, *, now, limit=500):
    """The sweep's question: which types have tickets set aside (their job may have been lost),
    or have people in line while public sale could take what they wait for (tickets that came
    back by a way that did not set them aside)? Sets the latter's aside (their matching is
    then owed after commit, :data:`MATCH_AFTER_COMMIT`); returns the former."""
    stranded = set(
        dbsession.scalars(select(TicketType.id).where(TicketType.set_aside > 0).limit(limit))
    )
    within_reach = dbsession.scalars(
        select(WaitingListEntry.event_id)
        .join(Event, Event.id == WaitingListEntry.event_id)
        .join(TicketType, TicketType.id == WaitingListEntry.ticket_type_id)
        .where(
            _WAITING,
            Event.status == EventStatus.PUBLISHED,
            Event.date > now,
            Event.available_tickets > 0,
            TicketType.capacity.is_(None) | (TicketType.capacity > TicketType.sold),
        )
        .distinct()
        # One event's row at a time, in id order: the locks of a transaction that takes several.
        .order_by(WaitingListEntry.event_id)
        .limit(limit)
    ).all()
    for event_id in within_reach:
        dbsession.execute(select(Event.id).where(Event.id == event_id).with_for_update())
        set_aside_for_waiters(dbsession, event_id, now=now)
    return sorted(stranded)


def summary(dbsession, event_id):
    """The event's waiting list in figures, for the event and each of its types: people
    waiting and the tickets they want, offers out and their tickets, offers paid, tickets set
    aside. ``{ticket_type_id: {...}}`` and the event's totals."""
    rows = dbsession.execute(
        select(
            WaitingListEntry.ticket_type_id,
            WaitingListEntry.status,
            func.count(),
            func.sum(WaitingListEntry.quantity),
        )
        .where(WaitingListEntry.event_id == event_id)
        .group_by(WaitingListEntry.ticket_type_id, WaitingListEntry.status)
    ).all()
    set_aside = dict(
        dbsession.execute(
            select(TicketType.id, TicketType.set_aside).where(TicketType.event_id == event_id)
        ).all()
    )
    by_type = {type_id: _figures(aside) for type_id, aside in set_aside.items()}
    for type_id, status, count, tickets in rows:
        figures = by_type.setdefault(type_id, _figures(0))
        if status == EntryStatus.WAITING:
            figures.update(waiting=count, tickets_wanted=int(tickets))
        elif status == EntryStatus.OFFERED:
            figures.update(offers_outstanding=count, tickets_offered=int(tickets))
        elif status == EntryStatus.PURCHASED:
            figures.update(offers_purchased=count)
        elif status == EntryStatus.EXPIRED:
            figures.update(offers_expired=count)
    event = _figures(0)
    for figures in by_type.values():
        for name, value in figures.items():
            event[name] += value
    return event, by_type


def _figures(set_aside):
    return {
        "waiting": 0,
        "tickets_wanted": 0,
        "offers_outstanding": 0,
        "tickets_offered": 0,
        "offers_purchased": 0,
        "offers_expired": 0,
        "set_aside": set_aside,
    }
