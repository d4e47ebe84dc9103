"""Check-in at the door: scanning a ticket's code, undoing a mistaken scan, and the figures.

Door staff hold ``checkin`` keys, optionally limited to some events: the route factories give
each operation its event (:class:`~ticketing.security.EventContext`), so that a key limited to
other events is refused before anything is read.
"""

import colander

from ticketing.domain import checkins as domain
from ticketing.domain.errors import (
    AlreadyCheckedIn,
    CheckInNotFound,
    EventNotFound,
    NonceReused,
    TicketNotFound,
    TicketVoid,
    WrongEvent,
)
from ticketing.models.types import utcnow
from ticketing.openapi import Success, api_doc
from ticketing.security import CHECK_IN, SEE_CHECK_INS, EventContext, event_context

from . import JSON, ApiService, uuid_from_path
from .events import LOCATION, event_id_from
from .schemas import StrictMappingSchema, StrictString, json_body_validator
from .serialize import CheckInResource, CheckInStatsResource, check_in_json, check_in_stats_json


def check_in_context(request):
    """The event of the check-in ``{id}`` of the path, for keys limited to some events."""
    try:
        check_in_id = uuid_from_path(request, CheckInNotFound)
    except CheckInNotFound:
        return EventContext(None)
    return EventContext(domain.event_of_check_in(request.dbsession, check_in_id))


event_check_ins = ApiService(
    name="event_check_ins",
    path="/api/events/{id}/check-ins",
    description="Check-in at the door",
    factory=event_context,
)
event_check_in_stats = ApiService(
    name="event_check_in_stats",
    path="/api/events/{id}/check-ins/stats",
    description="Check-in figures",
    factory=event_context,
)
check_in = ApiService(
    name="check_in",
    path="/api/check-ins/{id}",
    description="One check-in",
    factory=check_in_context,
)


class ScanBody(StrictMappingSchema):
    code = colander.SchemaNode(
        StrictString(),
        validator=colander.Length(1, 100),
        description="The ticket's code as scanned or typed: any case, spaces and hyphens ignored.",
    )
    nonce = colander.SchemaNode(
        StrictString(),
        validator=colander.Length(1, 100),
        missing=None,
        description="The scanner's own id of this scan: sent again with the same code, it "
        "replays the first answer (a scanner that lost its connection retries safely).",
    )

    example = {"code": "7K3Q-9XWD-M2TP-4H8C-RVB6-0ZNJ-5EGA", "nonce": "scan-0001"}


REPLAYED = {
    "Idempotent-Replayed": {
        "required": False,
        "description": "`true` when the answer replays an earlier scan with the same nonce.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


@event_check_ins.post(
    schema=ScanBody(), validators=(json_body_validator,), content_type=JSON, permission=CHECK_IN
)
@api_doc(
    Success(
        201,
        "Admitted: the check-in, with the ticket's type and attendee.",
        CheckInResource(),
        headers={**LOCATION, **REPLAYED},
    ),
    raises=(EventNotFound, TicketNotFound, WrongEvent, TicketVoid, AlreadyCheckedIn, NonceReused),
)
def check_in_ticket(request):
    """Check a ticket in

    Admits the ticket whose code was scanned, once: a second scan is 409 `already_checked_in`
    with when and by which key it was first scanned (`checked_in_at`, `checked_in_by`).
    """
    caller = request.identity
    admission = domain.check_in(
        request.dbsession,
        event_id_from(request),
        request.validated["code"],
        nonce=request.validated["nonce"],
        scanner=domain.Scanner(caller.key_id, caller.name),
        now=utcnow(),
    )
    if admission.replayed:
        request.response.headers["Idempotent-Replayed"] = "true"
    request.response.status_code = 201
    request.response.location = request.route_url("check_in", id=admission.check_in.id)
    return {"data": check_in_json(admission)}


@check_in.delete(permission=CHECK_IN)
@api_doc(Success(204, "Undone: the ticket admits its attendee again."), raises=(CheckInNotFound,))
def undo_check_in(request):
    """Undo a check-in

    For a mistaken scan: the ticket is valid for the door again. The check-in stays on record,
    with its `undone_at`; undoing it again changes nothing.
    """
    domain.undo_check_in(request.dbsession, uuid_from_path(request, CheckInNotFound), now=utcnow())
    request.response.status_code = 204
    request.response.content_type = None  # a 204 has no content, so no content type either
    return request.response


@event_check_in_stats.get(permission=SEE_CHECK_INS)
@api_doc(
    Success(
        200, "Tickets sold and checked in, for the event and each type.", CheckInStatsResource()
    ),
    raises=(EventNotFound,),
)
def check_in_stats(request):
    """Check-in figures

    Valid tickets sold and checked in, in all and by ticket type.
    """
    stats = domain.check_in_stats(request.dbsession, event_id_from(request))
    return {"data": check_in_stats_json(stats)}
