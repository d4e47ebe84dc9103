"""The emails sent to customers, built from the templates in ``ticketing/templates/email``.

Each message has three templates, ``string.Template`` files named after it: ``NAME.subject.txt``,
``NAME.txt`` (the plain-text part) and ``NAME.html`` (the HTML part, where every value is
HTML-escaped). A message is ``multipart/alternative``, plain text first, so that any client shows
one of the two (inside a ``multipart/mixed`` with the attachments, if any). Building a message
needs no server: hand the result to an :class:`~ticketing.interfaces.IEmailSender`.

Every email costs the job worker its building, so the parts are put together directly rather
than converted from one to the next (``add_alternative``, ``add_attachment``), and headers are
kept as given when that is what the standard policy would write anyway (see
:class:`HeadersAsGiven`): parsing each header as it was set was half of the worker's CPU.
"""

import datetime as dt
import html
import quopri
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.policy import EmailPolicy
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from functools import cache, lru_cache
from importlib import resources
from string import Template

from ticketing.money import format_money


def order_confirmation_message(order, event, sender, tickets=(), pdf=None):
    """The email telling the buyer of a confirmed ``order`` their tickets for ``event``: each
    of ``tickets`` (``ticketing.ticket_pdf.PrintedTicket``) with its code, and ``pdf``, the
    tickets to print, attached."""
    values, html_values = _order_values(order, event)
    where = _WITH_PDF if pdf is not None else _WITHOUT_PDF
    values["ticket_codes"] = _ticket_codes_text(tickets, where)
    html_values["ticket_codes"] = _ticket_codes_html(tickets, where)
    attachments = []
    if pdf is not None:
        attachment = MIMEPart(policy=POLICY)
        attachment.set_content(
            pdf, maintype="application", subtype="pdf", filename=f"tickets-{str(order.id)[:8]}.pdf"
        )
        attachments.append(attachment)
    return render_message(
        "order_confirmation", values, html_values, order, sender, attachments=attachments
    )


def _ticket_lines(tickets):
    return [(f"{ticket.ticket_type}, {ticket.attendee_name}", ticket.code) for ticket in tickets]


#: what the list of ticket codes says of the door, with the PDF attached and without
_WITH_PDF = "the attached PDF has a page for each,\nwith its QR code to show at the door"
_WITHOUT_PDF = "show its code at the door"


def _ticket_codes_text(tickets, where):
    if not tickets:
        return ""
    lines = "".join(f"  {label}: {code}\n" for label, code in _ticket_lines(tickets))
    return f"\nYour tickets, each admitting one person once ({where}):\n" + lines


def _ticket_codes_html(tickets, where):
    if not tickets:
        return ""
    items = "".join(
        f"<li>{html.escape(label, quote=True)}: <code>{html.escape(code)}</code></li>"
        for label, code in _ticket_lines(tickets)
    )
    where = html.escape(" ".join(where.split()))
    return f"<p>Your tickets, each admitting one person once ({where}):</p>\n<ul>{items}</ul>"


def order_cancellation_message(order, event, sender):
    """The email telling the buyer that ``order`` is cancelled and refunded in full."""
    return render_message("order_cancellation", *_order_values(order, event), order, sender)


def payment_refunded_message(order, event, sender):
    """The email telling the buyer that their payment came after their hold expired, for
    tickets since gone, and was refunded."""
    return render_message("payment_refunded", *_order_values(order, event), order, sender)


def waiting_list_offer_message(order, event, sender):
    """The email telling someone on the waiting list that tickets are held for them: the
    order (a hold) to pay, and until when."""
    values, html_values = _order_values(order, event)
    values["expires_at"] = format_event_date(order.expires_at)
    return render_message("waiting_list_offer", values, html_values, order, sender)


class HeadersAsGiven(EmailPolicy):
    """The standard policy (``email.policy.default``), but a header whose value is ASCII and
    fits on one line is kept as given, and parsed only if it is read: written out, it is what
    the standard policy would write. Any other value (non-ASCII, to be encoded; too long, to be
    folded) is parsed as it is set, as the standard policy does; a line break is refused. The
    ``Content-*`` headers are parsed as they are set too (writing a message reads them again
    and again), once for each value: all but the boundaries are the same in every message."""

    def header_store_parse(self, name, value):
        if isinstance(value, str) and name.lower().startswith("content-"):
            return _parsed_header(name, value)
        if (
            isinstance(value, str)
            and value.isascii()
            and len(name) + len(value) + 2 <= self.max_line_length
            and "\r" not in value
            and "\n" not in value
        ):
            return (name, value)
        return super().header_store_parse(name, value)

    def header_fetch_parse(self, name, value):
        if hasattr(value, "name"):
            return value
        # Kept as given: parsed when read, once per value (the sender reads From and To).
        return _parsed_header(name, value)[1]

    def header_max_count(self, name):
        # The standard policy makes a new class of header for each question.
        return _header_max_count(name.lower())

    def fold(self, name, value):
        if hasattr(value, "name"):
            return _folded(value.name, value, self.linesep, self.max_line_length, self.utf8)
        return super().fold(name, value)

    def fold_binary(self, name, value):
        if hasattr(value, "name"):
            charset = "utf8" if self.utf8 else "ascii"
            return self.fold(name, value).encode(charset, "surrogateescape")
        return super().fold_binary(name, value)


_STANDARD = EmailPolicy()


@lru_cache(maxsize=1024)
def _parsed_header(name, value):
    # A parsed header is a value (a str with attributes), never changed once made.
    return _STANDARD.header_store_parse(name, value)


@cache
def _header_max_count(name):
    return _STANDARD.header_max_count(name)


@lru_cache(maxsize=1024)
def _folded(name, header, linesep, max_line_length, utf8):
    # A parsed header never changes, and how it is written depends only on it and on the lines
    # it is written in: the Content-* headers, the same in most messages, are folded once each.
    return header.fold(
        policy=_STANDARD.clone(linesep=linesep, max_line_length=max_line_length, utf8=utf8)
    )


POLICY = HeadersAsGiven()


def render_message(name, values, html_values, order, sender, *, now=None, attachments=()):
    """Fill the three templates of message ``name`` with ``values`` and address the result from
    ``sender`` to the order's customer. The HTML part gets ``values`` escaped, and
    ``html_values`` (HTML already) as they are. ``attachments`` (MIME parts) follow the text."""
    message = EmailMessage(policy=POLICY)
    message["Subject"] = _template(f"{name}.subject.txt").substitute(_one_line(values)).strip()
    message["From"] = sender
    display_name = " ".join(order.customer_name.split())
    # As text when it is plain ASCII (quoted as need be): then it is kept as given (above).
    message["To"] = (
        formataddr((display_name, order.customer_email))
        if display_name.isascii() and order.customer_email.isascii()
        else Address(display_name=display_name, addr_spec=order.customer_email)
    )
    message["Date"] = format_datetime(now or dt.datetime.now(dt.UTC))
    message["Message-ID"] = make_msgid(domain=_domain_of(sender))
    message["MIME-Version"] = "1.0"
    escaped = {key: html.escape(str(value), quote=True) for key, value in values.items()}
    escaped.update(html_values)
    text = [
        _text_part(_template(f"{name}.txt").substitute(values), "plain"),
        _text_part(_template(f"{name}.html").substitute(escaped), "html"),
    ]
    if attachments:
        body = MIMEPart(policy=POLICY)
        _multipart(body, "alternative", text)
        _multipart(message, "mixed", [body, *attachments])
    else:
        _multipart(message, "alternative", text)
    return message


def _text_part(text, subtype):
    # Quoted-printable even for plain ASCII: it writes "=" as "=3D", so that no line of any
    # part can be one of the boundaries below. Encoded by binascii's C encoder (through quopri),
    # as the content manager's pure-Python one and its header juggling were an eighth of the
    # worker's CPU per email (py-spy, bench row hot-worker-nopdf).
    part = MIMEPart(policy=POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(quopri.encodestring(text.encode()).decode("ascii"))
    return part


def _multipart(message, subtype, parts):
    # A boundary begins with "=_", which never appears in base64 or quoted-printable text, and
    # every part is one or the other: a boundary need not be random, nor searched for, to be
    # absent from the parts. One per subtype (a mixed message nests an alternative one), the
    # same in every message, so that its header is parsed once per process, not per email.
    message["Content-Type"] = f'multipart/{subtype}; boundary="=_ticketing_{subtype}"'
    for part in parts:
        if not part.is_multipart() and part["Content-Transfer-Encoding"] not in _SAFE_ENCODINGS:
            raise ValueError("a part of a message must be base64 or quoted-printable")
        message.attach(part)


#: the encodings in which no line can be a boundary of ours
_SAFE_ENCODINGS = ("base64", "quoted-printable")


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


@cache
def _domain_of(sender):
    address = parseaddr(str(sender))[1]
    return address.rpartition("@")[2] or "localhost"
