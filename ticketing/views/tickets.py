"""Tickets, as their buyer sees them: the list with codes, the PDF, and naming the attendee.

The order's UUID is the buyer's proof, as for the order itself: whoever holds it may read the
tickets and name who will use them. Changing a ticket names its order in the body, so that a
ticket id alone (printed on the PDF, seen at the door) lets nobody change it.
"""

import uuid

import colander
from pyramid.response import Response

from ticketing.domain import tickets as domain
from ticketing.domain.errors import OrderHasNoTickets, OrderNotFound, TicketNotFound, TicketVoid
from ticketing.models.types import utcnow
from ticketing.openapi import Success, api_doc
from ticketing.ticket_pdf import printed_tickets, tickets_pdf

from . import JSON, ApiService, uuid_from_path
from .orders import lower_and_strip, order_id_from
from .schemas import StrictMappingSchema, StrictString, json_body_validator, text_field
from .serialize import TicketResource, ticket_json

order_tickets = ApiService(
    name="order_tickets", path="/api/orders/{id}/tickets", description="An order's tickets"
)
order_tickets_pdf = ApiService(
    name="order_tickets_pdf",
    path="/api/orders/{id}/tickets.pdf",
    description="An order's tickets, to print",
)
ticket = ApiService(name="ticket", path="/api/tickets/{id}", description="One ticket")

PDF = "application/pdf"


class TicketFields(StrictMappingSchema):
    order_id = colander.SchemaNode(
        StrictString(),
        validator=colander.uuid,
        description="The ticket's order: the buyer's proof that the ticket is theirs.",
    )
    attendee_name = text_field(description="Who will use the ticket.")
    attendee_email = colander.SchemaNode(
        StrictString(),
        preparer=lower_and_strip,
        validator=colander.All(colander.Length(max=254), colander.Email()),
    )


class UpdateTicketBody(StrictMappingSchema):
    ticket = TicketFields()

    example = {
        "ticket": {
            "order_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "attendee_name": "Jane Roe",
            "attendee_email": "jane@example.com",
        }
    }


@order_tickets.get()
@api_doc(
    Success(
        200,
        "The order's tickets with their codes, item by item.",
        TicketResource(),
        many=True,
    ),
    raises=(OrderNotFound,),
)
def list_order_tickets(request):
    """List an order's tickets

    One per ticket bought, issued when the order was confirmed, each with its code. The order's
    UUID is the buyer's proof of ownership.
    """
    rows = domain.order_tickets(request.dbsession, order_id_from(request))
    codes = request.ticket_codes
    return {
        "data": [ticket_json(each, type_name, codes) for each, type_name in rows],
        "meta": {"next_cursor": None},
    }


@ticket.put(schema=UpdateTicketBody(), validators=(json_body_validator,), content_type=JSON)
@api_doc(
    Success(200, "The ticket, with its new attendee.", TicketResource()),
    raises=(TicketNotFound, TicketVoid),
)
def update_ticket(request):
    """Name a ticket's attendee

    The buyer names who will use the ticket (its attendee's name and email, the buyer's until
    then). The body's `order_id` proves the ticket is the caller's: a ticket of another order is
    answered 404, like an unknown one.
    """
    fields = request.validated["ticket"]
    changed, type_name = domain.set_attendee(
        request.dbsession,
        uuid_from_path(request, TicketNotFound),
        uuid.UUID(fields["order_id"]),
        name=fields["attendee_name"],
        email=fields["attendee_email"],
        now=utcnow(),
    )
    return {"data": ticket_json(changed, type_name, request.ticket_codes)}


@order_tickets_pdf.get()
@api_doc(
    Success(
        200,
        "The PDF, one page per valid ticket: event, venue, date, type, attendee, code and QR code.",
        media_type=PDF,
        headers={
            "Content-Disposition": {
                "required": True,
                "schema": {
                    "type": "string",
                    "example": 'attachment; filename="tickets-3fa85f64.pdf"',
                },
            }
        },
    ),
    raises=(OrderNotFound, OrderHasNoTickets),
)
def download_order_tickets(request):
    """Download an order's tickets

    A PDF to print or show on a phone at the door. The order's UUID is the buyer's proof of
    ownership.
    """
    order_id = order_id_from(request)
    event, rows = domain.printable_tickets(request.dbsession, order_id)
    body = tickets_pdf(event, printed_tickets(rows, request.ticket_codes))
    return Response(
        body=body,
        content_type=PDF,
        content_disposition=f'attachment; filename="tickets-{str(order_id)[:8]}.pdf"',
    )
