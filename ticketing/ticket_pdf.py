"""Printable tickets: a PDF of one A4 page per ticket, with its event, venue, date, type,
attendee, code and the code's QR code, laid out with fpdf2; zxing-cpp encodes the QR code.

The QR code holds the code exactly as printed beside it (upper case and hyphens: QR's
alphanumeric mode, so a small, robust symbol), so a scanner and a person typing it send the
same thing. Building a PDF needs no request: the download and the confirmation email share it.

Every confirmation email attaches one, so its cost is the worker's (bench/ticket_pdf_cost.py
measures it): zxing-cpp encodes a code in compiled code (segno, in pure Python, spent ~6 ms on
each), and the symbol goes in as a grey image of one pixel per module, deflated, which the PDF
scales without smoothing (a 1-bit image costs fpdf2 a round trip through a CCITT TIFF in
Pillow: twice the CPU of the page). fpdf2 writes a page in under a millisecond (reportlab took
~7 ms). The PDF's standard fonts have Latin-1 glyphs only: other characters print as ``?``.
"""

from dataclasses import dataclass

import zxingcpp
from fpdf import FPDF
from PIL import Image

from ticketing.notifications import format_event_date

#: millimetres, as the page is laid out
QR_SIZE = 70
MARGIN = 20
LINE = 7


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
    document = FPDF(unit="mm", format="A4")
    document.set_title(_printable(f"Tickets: {event.name}"))
    document.set_author("ticketing")
    document.set_auto_page_break(False)
    document.set_image_filter("FlateDecode")
    for ticket in tickets:
        document.add_page()
        _page(document, event, ticket)
    return bytes(document.output())


def _page(document, event, ticket):
    width, height = document.w, document.h
    document.set_font("Helvetica", "B", 24)
    document.text(MARGIN, MARGIN + 10, _printable(event.name))
    document.set_font("Helvetica", "", 13)
    lines = [
        event.venue,
        format_event_date(event.date),
        "",
        f"Ticket: {ticket.ticket_type}",
        f"Attendee: {ticket.attendee_name} <{ticket.attendee_email}>",
    ]
    y = MARGIN + 22
    for line in lines:
        document.text(MARGIN, y, _printable(line))
        y += LINE
    qr_top = y + 6
    document.image(_qr_image(ticket.code), (width - QR_SIZE) / 2, qr_top, QR_SIZE, QR_SIZE)
    document.set_font("Courier", "B", 16)
    _centred(document, width / 2, qr_top + QR_SIZE + 10, ticket.code)
    document.set_font("Helvetica", "", 9)
    document.text(MARGIN, height - MARGIN - 5, f"Order {ticket.order_id}")
    document.text(MARGIN, height - MARGIN, f"Ticket {ticket.ticket_id}")
    notice = "One admission: the code is checked in once at the door."
    document.text(width - MARGIN - document.get_string_width(notice), height - MARGIN, notice)


def _centred(document, x, y, text):
    document.text(x - document.get_string_width(text) / 2, y, text)


def _qr_image(code):
    # One pixel per module with the quiet zone (border) around it; PDF images are not smoothed
    # unless they ask for it, so the modules stay sharp at any size.
    symbol = zxingcpp.create_barcode(code, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    pixels = symbol.to_image(scale=1, add_quiet_zones=True)
    rows, columns = pixels.shape
    return Image.frombytes("L", (columns, rows), bytes(memoryview(pixels)))


def _printable(text):
    """``text`` in the standard fonts' Latin-1, anything else as ``?`` (they have no glyph)."""
    return str(text).encode("latin-1", "replace").decode("latin-1")
