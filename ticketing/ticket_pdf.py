"""Printable tickets: a PDF of one A4 page per ticket, with its event, venue, date, type,
attendee, code and the code's QR code, laid out with reportlab; segno makes the QR code.

The QR code holds the code exactly as printed beside it (upper case and hyphens: QR's
alphanumeric mode, so a small, robust symbol), so a scanner and a person typing it send the
same thing. Building a PDF needs no request: the download and the confirmation email share it.
"""

import io
from dataclasses import dataclass

import segno
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from ticketing.notifications import format_event_date

QR_SIZE = 70 * mm
MARGIN = 20 * mm


@dataclass(frozen=True)
class PrintedTicket:
    """What one page shows of a ticket."""

    ticket_id: str
    order_id: str
    ticket_type: str
    attendee_name: str
    attendee_email: str
    code: str


def printed_tickets(rows, codes):
    """The pages of ``rows`` ((ticket, type name) pairs, as ``order_tickets`` gives them)."""
    return [
        PrintedTicket(
            ticket_id=str(ticket.id),
            order_id=str(ticket.order_id),
            ticket_type=type_name,
            attendee_name=ticket.attendee_name,
            attendee_email=ticket.attendee_email,
            code=codes.code_of(ticket.id),
        )
        for ticket, type_name in rows
    ]


def tickets_pdf(event, tickets):
    """The PDF (bytes) of ``tickets`` (:class:`PrintedTicket`) for ``event``, a page each."""
    output = io.BytesIO()
    canvas = Canvas(output, pagesize=A4, pageCompression=1)
    canvas.setTitle(f"Tickets: {event.name}")
    canvas.setAuthor("ticketing")
    for ticket in tickets:
        _page(canvas, event, ticket)
        canvas.showPage()
    canvas.save()
    return output.getvalue()


def _page(canvas, event, ticket):
    width, height = A4
    top = height - MARGIN
    canvas.setFont("Helvetica-Bold", 24)
    canvas.drawString(MARGIN, top - 10 * mm, event.name)
    canvas.setFont("Helvetica", 13)
    lines = [
        event.venue,
        format_event_date(event.date),
        "",
        f"Ticket: {ticket.ticket_type}",
        f"Attendee: {ticket.attendee_name} <{ticket.attendee_email}>",
    ]
    y = top - 22 * mm
    for line in lines:
        canvas.drawString(MARGIN, y, line)
        y -= 7 * mm
    qr_top = y - 6 * mm
    canvas.drawImage(
        _qr_image(ticket.code), (width - QR_SIZE) / 2, qr_top - QR_SIZE, QR_SIZE, QR_SIZE
    )
    canvas.setFont("Courier-Bold", 16)
    canvas.drawCentredString(width / 2, qr_top - QR_SIZE - 10 * mm, ticket.code)
    canvas.setFont("Helvetica", 9)
    canvas.drawString(MARGIN, MARGIN + 5 * mm, f"Order {ticket.order_id}")
    canvas.drawString(MARGIN, MARGIN, f"Ticket {ticket.ticket_id}")
    canvas.drawRightString(
        width - MARGIN, MARGIN, "One admission: the code is checked in once at the door."
    )


def _qr_image(code):
    # A PNG with its quiet zone (border), scaled up so that the PDF viewer needs no smoothing.
    png = io.BytesIO()
    segno.make_qr(code, error="m").save(png, kind="png", scale=10, border=4)
    png.seek(0)
    return ImageReader(png)
