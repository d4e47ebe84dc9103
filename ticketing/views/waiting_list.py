"""The waiting list: joining a sold-out type's line, reading and leaving an entry, and the
organisers' view of the queue."""

import uuid

import colander
from cornice.validators import colander_querystring_validator

from ticketing.domain import waiting_list as domain
from ticketing.domain.errors import (
    AboveMaxPerOrder,
    AlreadyOnWaitingList,
    BelowMinPerOrder,
    EventNotFound,
    EventNotOnSale,
    InvalidCursor,
    OrderNotReleasable,
    TicketsAvailable,
    TicketTypeNotFound,
    TicketTypeNotOnSale,
    TicketTypeRequired,
    WaitingListEntryNotFound,
    WaitingListEntryPurchased,
)
from ticketing.models import EntryStatus
from ticketing.models.types import utcnow
from ticketing.openapi import Success, api_doc
from ticketing.security import READ

from . import JSON, MAX_PAGE_SIZE, ApiService, uuid_from_path
from .events import LOCATION, event_id_from
from .orders import lower_and_strip, quantity_range, ticket_type_id_field
from .schemas import (
    QueryString,
    StrictInteger,
    StrictMappingSchema,
    StrictString,
    json_body_validator,
    limit_field,
    text_field,
)
from .serialize import WaitingListEntryResource, page_json, waiting_list_entry_json


class EntryFields(StrictMappingSchema):
    email = colander.SchemaNode(
        StrictString(),
        preparer=lower_and_strip,
        validator=colander.All(colander.Length(max=254), colander.Email()),
        description="Where the offer is sent; one entry per email and ticket type.",
    )
    name = text_field()
    ticket_type_id = ticket_type_id_field(
        missing=None, description="The type waited for; without it, the event's only type on sale."
    )
    quantity = colander.SchemaNode(StrictInteger(), validator=quantity_range)


class JoinBody(StrictMappingSchema):
    entry = EntryFields()

    example = {"entry": {"email": "jane@example.com", "name": "Jane Roe", "quantity": 2}}


class ListEntriesQuery(colander.MappingSchema):
    limit = limit_field(MAX_PAGE_SIZE)
    cursor = colander.SchemaNode(
        QueryString(), missing=None, description="`meta.next_cursor` of the previous page."
    )
    status = colander.SchemaNode(
        QueryString(), missing=None, validator=colander.OneOf([s.value for s in EntryStatus])
    )
    ticket_type_id = colander.SchemaNode(QueryString(), missing=None, validator=colander.uuid)


event_waiting_list = ApiService(
    name="event_waiting_list",
    path="/api/events/{id}/waiting-list",
    description="An event's waiting list",
)
waiting_list_entry = ApiService(
    name="waiting_list_entry",
    path="/api/waiting-list/{id}",
    description="One waiting list entry",
)


def entry_id_from(request):
    return uuid_from_path(request, WaitingListEntryNotFound)


@event_waiting_list.post(schema=JoinBody(), validators=(json_body_validator,), content_type=JSON)
@api_doc(
    Success(
        201, "The entry, with its place in line.", WaitingListEntryResource(), headers=LOCATION
    ),
    raises=(
        EventNotFound,
        EventNotOnSale,
        TicketTypeNotFound,
        TicketTypeRequired,
        TicketTypeNotOnSale,
        BelowMinPerOrder,
        AboveMaxPerOrder,
        TicketsAvailable,
        AlreadyOnWaitingList,
    ),
)
def join_waiting_list(request):
    """Join a ticket type's waiting list

    For a type on sale that has fewer tickets left than asked for. When tickets come back
    (a cancellation, an expired hold, a failed payment, a raised capacity), the entries in line
    whose quantity fits get offers in order: the tickets held for `ticketing.waitlist_offer_hours`
    (24) as an order to pay (`POST /api/orders/{id}/pay`), sent by email.
    """
    fields = request.validated["entry"]
    type_id = fields["ticket_type_id"]
    shown = domain.join(
        request.dbsession,
        event_id_from(request),
        email=fields["email"],
        name=fields["name"],
        ticket_type_id=type_id and uuid.UUID(type_id),
        quantity=fields["quantity"],
        now=utcnow(),
    )
    request.response.status_code = 201
    request.response.location = request.route_url("waiting_list_entry", id=shown.entry.id)
    return {"data": waiting_list_entry_json(shown)}


@event_waiting_list.get(
    schema=ListEntriesQuery(), validators=(colander_querystring_validator,), permission=READ
)
@api_doc(
    Success(
        200, "A page of the event's entries, in the order they joined.",
        WaitingListEntryResource(), many=True,
    ),
    raises=(EventNotFound, InvalidCursor),
)  # fmt: skip
def list_waiting_list(request):
    """List an event's waiting list

    Every entry, in the order they joined, with each waiting one's place in its type's line;
    filtered by status or ticket type.
    """
    query = request.validated
    page = domain.list_entries(
        request.dbsession,
        event_id_from(request),
        limit=query["limit"],
        cursor=query["cursor"],
        status=query["status"],
        ticket_type_id=uuid.UUID(query["ticket_type_id"]) if query["ticket_type_id"] else None,
    )
    return page_json(page, waiting_list_entry_json)


@waiting_list_entry.get()
@api_doc(Success(200, "The entry.", WaitingListEntryResource()), raises=(WaitingListEntryNotFound,))
def get_waiting_list_entry(request):
    """Read a waiting list entry

    Its UUID is its holder's proof, as an order's is: its place in line, or its offer.
    """
    return {
        "data": waiting_list_entry_json(domain.get_entry(request.dbsession, entry_id_from(request)))
    }


@waiting_list_entry.delete()
@api_doc(
    Success(204, "Left (or had left already)."),
    raises=(WaitingListEntryNotFound, WaitingListEntryPurchased, OrderNotReleasable),
)
def leave_waiting_list(request):
    """Leave the waiting list

    An entry with an offer out gives its hold back, and its tickets go to the next in line;
    while the offer is being paid, 409 `order_not_releasable`.
    """
    domain.leave(request.dbsession, request.payment_gateway, entry_id_from(request), now=utcnow())
    request.response.status_code = 204
    request.response.content_type = None  # a 204 has no content, so no content type either
    return request.response
