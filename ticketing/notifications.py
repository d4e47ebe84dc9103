"""The emails sent to customers, built from the templates in ``ticketing/templates/email``.

Each message has three templates, ``string.Template`` files named after it: ``NAME.subject.txt``,
``NAME.txt`` (the plain-text part) and ``NAME.html`` (the HTML part, where every value is
HTML-escaped). A message is ``multipart/alternative``, plain text first, so that any client shows
one of the two. Building a message needs no server: hand the result to an
:class:`~ticketing.interfaces.IEmailSender`.
"""

import datetime as dt
import html
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from functools import cache
from importlib import resources
from string import Template

from ticketing.money import format_money


def order_confirmation_message(order, event, sender, tickets=(), pdf=None):
    """The email telling the buyer of a confirmed ``order`` their tickets for ``event``: each
    of ``tickets`` (``ticketing.ticket_pdf.PrintedTicket``) with its code, and ``pdf``, the
    tickets to print, attached."""
    values, html_values = _order_values(order, event)
    values["ticket_codes"] = _ticket_codes_text(tickets)
    html_values["ticket_codes"] = _ticket_codes_html(tickets)
    message = render_message("order_confirmation", values, html_values, order, sender)
    if pdf is not None:
        message.add_attachment(
            pdf,
            maintype="application",
            subtype="pdf",
            filename=f"tickets-{str(order.id)[:8]}.pdf",
        )
    return message


def _ticket_lines(tickets):
    return [(f"{ticket.ticket_type}, {ticket.attendee_name}", ticket.code) for ticket in tickets]


def _ticket_codes_text(tickets):
    if not tickets:
        return ""
    lines = "".join(f"  {label}: {code}\n" for label, code in _ticket_lines(tickets))
    return (
        "\nYour tickets, each admitting one person once (the attached PDF has a page for each,"
        "\nwith its QR code to show at the door):\n" + lines
    )


def _ticket_codes_html(tickets):
    if not tickets:
        return ""
    items = "".join(
        f"<li>{html.escape(label, quote=True)}: <code>{html.escape(code)}</code></li>"
        for label, code in _ticket_lines(tickets)
    )
    return (
        "<p>Your tickets, each admitting one person once (the attached PDF has a page for each, "
        f"with its QR code to show at the door):</p>\n<ul>{items}</ul>"
    )


def order_cancellation_message(order, event, sender):
    """The email telling the buyer that ``order`` is cancelled and refunded in full."""
    return render_message("order_cancellation", *_order_values(order, event), order, sender)


def payment_refunded_message(order, event, sender):
    """The email telling the buyer that their payment came after their hold expired, for
    tickets since gone, and was refunded."""
    return render_message("payment_refunded", *_order_values(order, event), order, sender)


def render_message(name, values, html_values, order, sender, *, now=None):
    """Fill the three templates of message ``name`` with ``values`` and address the result from
    ``sender`` to the order's customer. The HTML part gets ``values`` escaped, and
    ``html_values`` (HTML already) as they are."""
    message = EmailMessage()
    message["Subject"] = _template(f"{name}.subject.txt").substitute(_one_line(values)).strip()
    message["From"] = sender
    message["To"] = Address(
        display_name=" ".join(order.customer_name.split()), addr_spec=order.customer_email
    )
    message["Date"] = format_datetime(now or dt.datetime.now(dt.UTC))
    message["Message-ID"] = make_msgid(domain=_domain_of(sender))
    message.set_content(_template(f"{name}.txt").substitute(values))
    escaped = {key: html.escape(str(value), quote=True) for key, value in values.items()}
    escaped.update(html_values)
    message.add_alternative(_template(f"{name}.html").substitute(escaped), subtype="html")
    return message


def _order_values(order, event):
    """The templates' values, and the HTML part's own rendering of the ticket lines."""
    lines = [
        f"{item.quantity} x {item.name}, "
        f"{format_money(item.unit_price_cents, order.currency)} {order.currency} each"
        + _discount_of(item, order)
        for item in order.items
    ]
    values = {
        "customer_name": order.customer_name,
        "order_id": str(order.id),
        "short_order_id": str(order.id)[:8],
        "event_name": event.name,
        "venue": event.venue,
        "event_date": format_event_date(event.date),
        "quantity": str(order.quantity),
        # One line per ticket type, under the "Tickets:" label of the plain-text part.
        "tickets": ("\n" + " " * len("Tickets:   ")).join(lines),
        "total": format_money(order.total_amount_cents, order.currency),
        "currency": order.currency,
    }
    html_lines = (html.escape(line, quote=True).replace(" x ", " &times; ", 1) for line in lines)
    return values, {"tickets": "<br>".join(html_lines)}


def _discount_of(item, order):
    """What a promo code took off the item, for its line: the total is what was paid."""
    if not item.discount_cents:
        return ""
    off = format_money(item.discount_cents, order.currency)
    return f", {off} {order.currency} off with {order.promo_code}"


def format_event_date(when):
    """``Saturday 14 March 2027, 20:00 UTC``: in English, whatever the process's locale."""
    when = when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)
    weekday = _WEEKDAYS[when.weekday()]
    month = _MONTHS[when.month - 1]
    return f"{weekday} {when.day} {month} {when.year}, {when:%H:%M} UTC"


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@cache
def _template(filename):
    folder = resources.files("ticketing").joinpath("templates").joinpath("email")
    return Template(folder.joinpath(filename).read_text(encoding="utf-8"))


def _one_line(values):
    # A header must not break: event names and the like lose any line breaks in the subject.
    return {key: " ".join(str(value).split()) for key, value in values.items()}


def _domain_of(sender):
    address = parseaddr(str(sender))[1]
    return address.rpartition("@")[2] or "localhost"
