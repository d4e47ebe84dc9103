"""An event's attendee list, for organisers: pages of JSON, or the whole list as a CSV download
that a spreadsheet opens, streamed batch by batch however long it is."""

import csv
import io

import colander
from cornice.validators import colander_querystring_validator
from pyramid.response import Response

from ticketing.domain import attendees as domain
from ticketing.domain.errors import EventNotFound, InvalidCursor
from ticketing.models import TicketStatus
from ticketing.openapi import Success, api_doc
from ticketing.security import READ

from . import MAX_PAGE_SIZE, ApiService
from .events import event_id_from
from .schemas import QueryString, limit_field
from .serialize import AttendeeResource, attendee_json, page_json, timestamp

CSV = "text/csv"
CSV_HEADER = (
    "order_id",
    "ticket_id",
    "ticket_type",
    "attendee_name",
    "attendee_email",
    "status",
    "checked_in_at",
)
#: what a spreadsheet would run as a formula at the start of a cell (OWASP's CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class AttendeesQuery(colander.MappingSchema):
    format = colander.SchemaNode(
        QueryString(),
        missing="json",
        validator=colander.OneOf(["json", "csv"]),
        description="json (pages, the default) or csv (every attendee, one download).",
    )
    limit = limit_field(MAX_PAGE_SIZE)
    cursor = colander.SchemaNode(
        QueryString(), missing=None, description="`meta.next_cursor` of the previous page."
    )
    status = colander.SchemaNode(
        QueryString(), missing=None, validator=colander.OneOf([s.value for s in TicketStatus])
    )


event_attendees = ApiService(
    name="event_attendees", path="/api/events/{id}/attendees", description="Attendee lists"
)


@event_attendees.get(
    schema=AttendeesQuery(), validators=(colander_querystring_validator,), permission=READ
)
@api_doc(
    Success(
        200,
        "A page of the event's tickets, in the order issued; with `format=csv`, every ticket, "
        "a row each (" + ", ".join(CSV_HEADER) + "), as a UTF-8 download with a byte-order "
        "mark, so that spreadsheets read it as UTF-8.",
        AttendeeResource(),
        many=True,
        media_type=CSV,
    ),
    raises=(EventNotFound, InvalidCursor),
)
def list_attendees(request):
    """List an event's attendees

    One row per ticket: its order, type, attendee, status and check-in. Pages of JSON, or with
    `format=csv` the whole list as a CSV download, streamed however many tickets there are.
    """
    query = request.validated
    event_id = event_id_from(request)
    if query["format"] == "csv":
        domain.require_event(request.dbsession, event_id)
        batches = domain.attendee_batches(
            request.registry["dbsession_factory"], event_id, status=query["status"]
        )
        return Response(
            app_iter=csv_lines(batches),
            content_type=CSV,
            charset="utf-8",
            content_disposition=f'attachment; filename="attendees-{str(event_id)[:8]}.csv"',
        )
    page, names = domain.attendee_page(
        request.dbsession,
        event_id,
        limit=query["limit"],
        cursor=query["cursor"],
        status=query["status"],
    )
    return page_json(page, lambda ticket: attendee_json(ticket, names[ticket.ticket_type_id]))


def csv_lines(batches):
    """The CSV, in UTF-8, one chunk per batch of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(CSV_HEADER)
    for rows in batches:
        for row in rows:
            writer.writerow(
                [
                    row.order_id,
                    row.ticket_id,
                    _cell(row.ticket_type),
                    _cell(row.attendee_name),
                    _cell(row.attendee_email),
                    row.status,
                    timestamp(row.checked_in_at) or "",
                ]
            )
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


def _cell(text):
    """Text as a spreadsheet shows it, never as a formula it runs."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
