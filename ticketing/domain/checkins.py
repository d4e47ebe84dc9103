"""Check-in at the door: a scanned code admits its ticket once.

A scan is one conditional UPDATE of the ticket (valid, of this event, not checked in yet): of
any number of simultaneous scans of one code exactly one changes the row, and the others, which
waited for its lock, find it checked in and are told when and by which key. Only a refused scan
pays for the queries that say why.

A scanner may send a ``nonce`` with each scan (its own id of that scan); the same nonce again,
for the same code, replays the first answer, so a scanner that lost its connection retries
safely. State changes: :func:`check_in`, :func:`undo_check_in`.
"""

import uuid
from dataclasses import dataclass

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError

from ticketing.events import CheckInCreated, CheckInUndone
from ticketing.models import CheckIn, Event, Ticket, TicketStatus, TicketType
from ticketing.representations import check_in_json

from . import event_log
from .errors import (
    AlreadyCheckedIn,
    CheckInNotFound,
    EventNotFound,
    NonceReused,
    TicketNotFound,
    TicketVoid,
    WrongEvent,
)
from .tickets import hash_of_code


@dataclass(frozen=True)
class Admission:
    """A check-in with what the door needs to see: the ticket, its type's name; ``replayed``
    when it answers a retried scan (same nonce) rather than a new one."""

    check_in: CheckIn
    ticket: Ticket
    ticket_type_name: str
    replayed: bool = False


@dataclass(frozen=True)
class Scanner:
    """Who scans: the database key (``key_id``; None for a key of the settings) and its name."""

    key_id: uuid.UUID | None
    name: str


def check_in(dbsession, event_id, code, *, nonce=None, scanner, now):
    """Admit the ticket whose code was scanned at ``event_id``; return the :class:`Admission`,
    or raise why not (``ticket_not_found``, ``wrong_event``, ``ticket_void``,
    ``already_checked_in``, ``nonce_reused``)."""
    code_hash = hash_of_code(code)
    if nonce is not None:
        earlier = _scan_with_nonce(dbsession, event_id, nonce, code_hash)
        if earlier is not None:
            return earlier
    for _ in range(_ATTEMPTS):
        admission = _admit(dbsession, event_id, code_hash, nonce, scanner, now)
        if admission is not None:
            return admission
    raise AlreadyCheckedIn("The ticket's check-in is being changed; scan it again.")


#: a scan that found the ticket checked in, then its check-in undone before it could say by
#: whom, tries again; twice more is plenty for a race between a scan and an undo
_ATTEMPTS = 3


def _admit(dbsession, event_id, code_hash, nonce, scanner, now):
    """The admission of this scan (or its twin's), None when an undo raced it, or raise why
    the ticket is refused."""
    ticket_id = dbsession.scalar(
        update(Ticket)
        .where(
            Ticket.code_hash == code_hash,
            Ticket.event_id == event_id,
            Ticket.status == TicketStatus.VALID,
            Ticket.checked_in_at.is_(None),
        )
        .values(checked_in_at=now, updated_at=now)
        .returning(Ticket.id)
        .execution_options(synchronize_session=False)
    )
    if ticket_id is None:
        return _twin_or_refusal(dbsession, event_id, code_hash, nonce)
    admitted = CheckIn(
        id=uuid.uuid4(),
        ticket_id=ticket_id,
        event_id=event_id,
        nonce=nonce,
        api_key_id=scanner.key_id,
        key_name=scanner.name,
        checked_in_at=now,
    )
    dbsession.add(admitted)
    try:
        dbsession.flush()
    except IntegrityError:
        # A scan of another code with this nonce committed between our look-up and now.
        raise NonceReused(_NONCE_REUSED) from None
    ticket, type_name = _ticket_with_type(dbsession, ticket_id)
    admission = Admission(admitted, ticket, type_name)
    event_log.publish(dbsession, CheckInCreated(check_in_json(admission), created_at=now))
    return admission


_NONCE_REUSED = "This nonce was sent with a scan of another code; send a new nonce per scan."


def _scan_with_nonce(dbsession, event_id, nonce, code_hash):
    """The admission that a scan with ``nonce`` made at the event (a replay), None if none did;
    raise if that scan was of another code."""
    earlier = dbsession.scalar(
        select(CheckIn).where(CheckIn.event_id == event_id, CheckIn.nonce == nonce)
    )
    if earlier is None:
        return None
    ticket, type_name = _ticket_with_type(dbsession, earlier.ticket_id)
    if ticket.code_hash != code_hash:
        raise NonceReused(_NONCE_REUSED)
    return Admission(earlier, ticket, type_name, replayed=True)


def _ticket_with_type(dbsession, ticket_id):
    return dbsession.execute(
        select(Ticket, TicketType.name)
        .join(TicketType, TicketType.id == Ticket.ticket_type_id)
        .where(Ticket.id == ticket_id)
        .execution_options(populate_existing=True)
    ).one()


def _twin_or_refusal(dbsession, event_id, code_hash, nonce):
    """Why a scan admitted nothing; or, when a twin of this scan (same nonce) admitted the
    ticket while this one waited for its lock, the twin's answer; None when the check-in that
    stood in its way was undone meanwhile."""
    ticket = dbsession.scalar(
        select(Ticket)
        .where(Ticket.code_hash == code_hash)
        .execution_options(populate_existing=True)
    )
    if dbsession.get(Event, event_id) is None:
        raise EventNotFound(f"No event has the id {event_id}.")
    if ticket is None:
        raise TicketNotFound("No ticket has this code.")
    if ticket.event_id != event_id:
        raise WrongEvent("This ticket is for another event.", event_id=str(ticket.event_id))
    if ticket.status == TicketStatus.VOID:
        raise TicketVoid("This ticket is void: its order was cancelled.")
    first = dbsession.scalar(
        select(CheckIn).where(CheckIn.ticket_id == ticket.id, CheckIn.undone_at.is_(None))
    )
    if first is None:
        return None  # undone since our UPDATE found it checked in
    if nonce is not None and first.nonce == nonce:
        return Admission(first, ticket, _ticket_with_type(dbsession, ticket.id)[1], replayed=True)
    raise AlreadyCheckedIn(
        f"This ticket was checked in at {_when(first.checked_in_at)} by {first.key_name}.",
        check_in_id=str(first.id),
        checked_in_at=_when(first.checked_in_at),
        checked_in_by={
            "key_id": None if first.api_key_id is None else str(first.api_key_id),
            "name": first.key_name,
        },
    )


def _when(moment):
    return moment.isoformat().replace("+00:00", "Z")


def event_of_check_in(dbsession, check_in_id):
    """The event a check-in was made at, None if there is no such check-in."""
    return dbsession.scalar(select(CheckIn.event_id).where(CheckIn.id == check_in_id))


def undo_check_in(dbsession, check_in_id, *, now):
    """Undo a mistaken scan: its ticket is valid for the door again. Undoing it again changes
    nothing (the check-in stays, with its ``undone_at``)."""
    check_in = dbsession.scalar(select(CheckIn).where(CheckIn.id == check_in_id).with_for_update())
    if check_in is None:
        raise CheckInNotFound(f"No check-in has the id {check_in_id}.")
    if check_in.undone_at is None:
        check_in.undone_at = now
        dbsession.execute(
            update(Ticket)
            .where(Ticket.id == check_in.ticket_id)
            .values(checked_in_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        dbsession.flush()
        ticket, type_name = _ticket_with_type(dbsession, check_in.ticket_id)
        undone = check_in_json(Admission(check_in, ticket, type_name))
        event_log.publish(dbsession, CheckInUndone(undone, created_at=now))
    return check_in


def check_in_stats(dbsession, event_id):
    """Tickets sold (valid) and checked in, for the event and for each of its ticket types."""
    if dbsession.get(Event, event_id) is None:
        raise EventNotFound(f"No event has the id {event_id}.")
    valid = Ticket.status == TicketStatus.VALID
    counts = {
        type_id: (sold, checked_in)
        for type_id, sold, checked_in in dbsession.execute(
            select(
                Ticket.ticket_type_id,
                func.count(),
                func.count(case((Ticket.checked_in_at.is_not(None), 1))),
            )
            .where(Ticket.event_id == event_id, valid)
            .group_by(Ticket.ticket_type_id)
        )
    }
    types = dbsession.execute(
        select(TicketType.id, TicketType.name)
        .where(TicketType.event_id == event_id)
        .order_by(TicketType.position, TicketType.created_at)
    ).all()
    by_type = [
        {
            "ticket_type_id": type_id,
            "name": name,
            "sold": counts.get(type_id, (0, 0))[0],
            "checked_in": counts.get(type_id, (0, 0))[1],
        }
        for type_id, name in types
    ]
    return {
        "event_id": event_id,
        "sold": sum(each["sold"] for each in by_type),
        "checked_in": sum(each["checked_in"] for each in by_type),
        "ticket_types": by_type,
    }
