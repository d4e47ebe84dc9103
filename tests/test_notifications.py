"""Order emails: built from the templates in ticketing/templates/email, multipart/alternative with a
plain-text and an HTML part, every value HTML-escaped in the HTML part."""

import datetime as dt
import email
import email.policy
import uuid
from email.message import MIMEPart
from importlib import resources

import pytest

from ticketing.models import Event, EventStatus, Order, OrderItem, OrderStatus
from ticketing.notifications import (
    POLICY,
    _order_values,
    format_event_date,
    order_cancellation_message,
    order_confirmation_message,
    render_message,
    waiting_list_offer_message,
)

SENDER = "Tickets <tickets@example.test>"
ORDER_ID = uuid.UUID("3f2b8c1e-0000-4000-8000-00000000abcd")


def make_event(**fields):
    values = {
        "id": uuid.uuid4(),
        "name": "Concert",
        "venue": "Stadium",
        "date": dt.datetime(2027, 3, 13, 20, 0, tzinfo=dt.UTC),
        "currency": "USD",
        "total_tickets": 100,
        "available_tickets": 98,
        "status": EventStatus.PUBLISHED,
    }
    values.update(fields)
    return Event(**values)


def make_order(event, items=None, **fields):
    values = {
        "id": ORDER_ID,
        "event_id": event.id,
        "customer_email": "john@example.com",
        "customer_name": "John Doe",
        "quantity": 2,
        "unit_price_cents": 5000,
        "total_amount_cents": 10000,
        "currency": "USD",
        "status": OrderStatus.CONFIRMED,
        # What a hold (a waiting list's offer) has; the other messages do not show it.
        "expires_at": dt.datetime(2027, 3, 1, 9, 30, tzinfo=dt.UTC),
    }
    values.update(fields)
    order = Order(**values)
    order.items = items or [
        OrderItem(
            ticket_type_id=uuid.uuid4(),
            line=1,
            name="General admission",
            quantity=values["quantity"],
            unit_price_cents=values["unit_price_cents"],
            subtotal_cents=values["total_amount_cents"],
        )
    ]
    return order


def item(name, quantity, unit_price_cents, line=1):
    return OrderItem(
        ticket_type_id=uuid.uuid4(),
        line=line,
        name=name,
        quantity=quantity,
        unit_price_cents=unit_price_cents,
        subtotal_cents=quantity * unit_price_cents,
    )


def parts(message):
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return text, html


def round_trip(message):
    """The message as a mail server would store it, parsed back."""
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)


BUILDERS = [order_confirmation_message, order_cancellation_message, waiting_list_offer_message]


def test_the_confirmation_says_what_was_bought():
    event = make_event()
    message = order_confirmation_message(make_order(event), event, SENDER)

    assert message["Subject"] == "Your tickets for Concert (order 3f2b8c1e)"
    assert message["From"] == SENDER
    assert message["To"] == "John Doe <john@example.com>"
    assert message["Date"] and message["Message-ID"].endswith("@example.test>")
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    text, html = parts(message)
    for part in (text, html):
        assert str(ORDER_ID) in part
        assert "Concert" in part
        assert "Stadium" in part
        assert "Saturday 13 March 2027, 20:00 UTC" in part
        assert "100.00 USD" in part
        assert "50.00 USD" in part
        assert "John Doe" in part
    assert "Tickets:   2 x General admission, 50.00 USD each" in text
    assert "<td>2 &times; General admission, 50.00 USD each</td>" in html
    assert "confirmed" in text


def test_the_confirmation_lists_each_ticket_type_on_its_own_line():
    event = make_event()
    order = make_order(
        event,
        items=[item("VIP", 2, 12000), item("Early bird", 1, 3500, line=2)],
        quantity=3,
        unit_price_cents=None,
        total_amount_cents=27500,
    )
    text, html = parts(order_confirmation_message(order, event, SENDER))

    assert (
        "Tickets:   2 x VIP, 120.00 USD each\n           1 x Early bird, 35.00 USD each\n"
        "Total:     275.00 USD"
    ) in text
    assert "<td>2 &times; VIP, 120.00 USD each<br>1 &times; Early bird, 35.00 USD each</td>" in (
        html
    )


def test_the_confirmation_says_what_a_promo_code_took_off():
    event = make_event()
    discounted = item("VIP", 2, 12000)
    discounted.discount_cents = 4800
    order = make_order(
        event,
        items=[discounted, item("Early bird", 1, 3500, line=2)],
        quantity=3,
        unit_price_cents=None,
        total_amount_cents=22700,
        discount_cents=4800,
        promo_code="VIP20",
    )
    text, html = parts(order_confirmation_message(order, event, SENDER))

    assert (
        "Tickets:   2 x VIP, 120.00 USD each, 48.00 USD off with VIP20\n"
        "           1 x Early bird, 35.00 USD each\n"
        "Total:     227.00 USD"
    ) in text
    assert "<td>2 &times; VIP, 120.00 USD each, 48.00 USD off with VIP20<br>" in html


def test_amounts_have_the_decimals_of_their_currency():
    event = make_event(currency="JPY")
    order = make_order(
        event, currency="JPY", quantity=2, unit_price_cents=5000, total_amount_cents=10000
    )
    text, _ = parts(order_confirmation_message(order, event, SENDER))

    assert "Tickets:   2 x General admission, 5000 JPY each" in text
    assert "Total:     10000 JPY" in text


def test_the_cancellation_says_what_was_refunded():
    event = make_event()
    order = make_order(event, status=OrderStatus.CANCELLED, quantity=3, total_amount_cents=15000)
    message = order_cancellation_message(order, event, SENDER)

    assert message["Subject"] == "Cancelled: your order for Concert (order 3f2b8c1e)"
    assert message["To"] == "John Doe <john@example.com>"
    text, html = parts(message)
    assert "cancelled and refunded in full" in text
    assert "Refund:    150.00 USD" in text
    assert "Tickets:   3" in text
    for part in (text, html):
        assert str(ORDER_ID) in part and "Stadium" in part and "150.00 USD" in part


def test_the_offer_says_what_is_held_until_when_and_how_to_pay():
    event = make_event()
    order = make_order(event, status=OrderStatus.RESERVED)
    message = waiting_list_offer_message(order, event, SENDER)

    assert message["Subject"] == (
        "Tickets for Concert are held for you until Monday 1 March 2027, 09:30 UTC (order 3f2b8c1e)"
    )
    assert message["To"] == "John Doe <john@example.com>"
    text, html = parts(message)
    assert "Held until Monday 1 March 2027, 09:30 UTC" in text
    assert "Tickets:   2 x General admission, 50.00 USD each" in text
    for part in (text, html):
        assert f"POST /api/orders/{ORDER_ID}/pay" in part
        assert "next person in line" in part and "100.00 USD" in part


@pytest.mark.parametrize("build", BUILDERS)
def test_values_are_escaped_in_the_html_part_only(build):
    event = make_event(name="Rock & Roll <Live>", venue='"The" Venue')
    order = make_order(event, customer_name="<script>alert(1)</script>")
    text, html = parts(build(order, event, SENDER))

    assert "Rock & Roll <Live>" in text
    assert '"The" Venue' in text
    assert "<script>alert(1)</script>" in text
    assert "Rock &amp; Roll &lt;Live&gt;" in html
    assert "&quot;The&quot; Venue" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html and "<Live>" not in html


@pytest.mark.parametrize("build", BUILDERS)
def test_a_line_break_in_a_value_cannot_add_a_header(build):
    event = make_event(name="Concert\r\nBcc: everyone@example.test")
    order = make_order(event, customer_name="John\nDoe")
    received = round_trip(build(order, event, SENDER))
    assert received["Bcc"] is None
    assert "\n" not in received["Subject"]
    assert "Concert Bcc: everyone@example.test" in received["Subject"]
    assert received["To"] == "John Doe <john@example.com>"


@pytest.mark.parametrize("build", BUILDERS)
def test_a_value_that_looks_like_a_boundary_stays_inside_its_part(build):
    # The boundaries are the same in every message: quoted-printable must keep them out of the
    # parts whatever the organiser and the buyer write.
    boundaries = "\n--=_ticketing_alternative\n--=_ticketing_alternative--\n--=_ticketing_mixed\n"
    event = make_event(venue=f"Hall{boundaries}B")
    order = make_order(event, customer_name=f"Ann{boundaries}")
    received = round_trip(build(order, event, SENDER))
    assert [part.get_content_type() for part in received.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]
    text, html = parts(received)
    assert f"Hall{boundaries}B" in text
    assert "Hall" in html and html.rstrip().endswith("</html>")


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("name", ['Doe, John "JD"', "O'Brien (Box office)", "Ann <Lee>"])
def test_a_name_with_special_characters_is_quoted_in_to(build, name):
    received = round_trip(build(make_order(make_event(), customer_name=name), make_event(), SENDER))
    [address] = received["To"].addresses
    assert (address.display_name, address.addr_spec) == (name, "john@example.com")


@pytest.mark.parametrize("build", BUILDERS)
def test_non_ascii_survives_the_trip(build):
    event = make_event(name="Café Tacuba — En vivo", venue="Zócalo")
    order = make_order(event, customer_name="José Núñez")
    received = round_trip(build(order, event, SENDER))
    assert "Café Tacuba — En vivo" in received["Subject"]
    assert received["To"].addresses[0].display_name == "José Núñez"
    text, html = parts(received)
    assert "Café Tacuba — En vivo" in text and "Zócalo" in text
    assert "Café Tacuba — En vivo" in html


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Subject", "Your tickets for Concert (order 3f2b8c1e)"),
        ("From", SENDER),
        ("To", '"Doe, John" <john@example.com>'),
        ("Date", "Sat, 13 Mar 2027 20:00:00 +0000"),
        ("Message-ID", f"<{ORDER_ID}@example.test>"),
        ("Subject", "Café Tacuba — En vivo"),
        ("Subject", "A long subject " * 8),
    ],
)
def test_headers_are_written_as_the_standard_policy_writes_them(name, value):
    # Short ASCII values are kept as given, not parsed: what is written must not change.
    ours, standard = email.message.EmailMessage(POLICY), email.message.EmailMessage()
    ours[name] = standard[name] = value
    assert ours.as_bytes() == standard.as_bytes()
    assert ours[name] == standard[name]


@pytest.mark.parametrize("value", ["Concert\r\nBcc: everyone@example.test", "Concert\nBcc: x@y.z"])
def test_a_header_value_with_a_line_break_is_refused(value):
    message = email.message.EmailMessage(POLICY)
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        message["Subject"] = value


def test_event_dates_are_shown_in_utc_in_english():
    paris = dt.timezone(dt.timedelta(hours=1))
    assert format_event_date(dt.datetime(2027, 3, 13, 21, 30, tzinfo=paris)) == (
        "Saturday 13 March 2027, 20:30 UTC"
    )
    assert format_event_date(dt.datetime(2026, 12, 31, 23, 5)) == (
        "Thursday 31 December 2026, 23:05 UTC"
    )


def test_every_message_has_its_three_templates_in_the_package():
    folder = resources.files("ticketing").joinpath("templates").joinpath("email")
    names = {entry.name for entry in folder.iterdir()}
    for message in ("order_confirmation", "order_cancellation", "waiting_list_offer"):
        assert {f"{message}.subject.txt", f"{message}.txt", f"{message}.html"} <= names


def test_an_attachment_in_which_a_boundary_could_appear_is_refused():
    event = make_event()
    order = make_order(event)
    invite = MIMEPart(policy=POLICY)
    invite.set_content("--=_ticketing_mixed\n", subtype="calendar")  # 7bit: left as it is
    with pytest.raises(ValueError, match="base64 or quoted-printable"):
        render_message(
            "order_cancellation", *_order_values(order, event), order, SENDER, attachments=[invite]
        )
