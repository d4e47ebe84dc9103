"""Tickets: issued on confirmation (one per unit of each item, exactly once, whichever way the
order is confirmed), their codes, the buyer's list and attendee changes, and voided with their
order."""

import datetime as dt
import email
import email.policy
import io
import re
import uuid

import pypdf
import pytest
import transaction
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from webtest import TestApp

from ticketing import main
from ticketing.adapters.payments import MockPaymentGateway
from ticketing.domain import orders, tickets
from ticketing.domain.tickets import TicketCodes, hash_of_code, normalize_code
from ticketing.interfaces import IEmailSender
from ticketing.models import Ticket, get_tm_session

from .conftest import app_settings
from .factories import (
    CODES,
    assert_books_balance,
    create_event,
    create_order,
    create_ticket_type,
    order_tickets,
)

CODE_SHAPE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){6}$")


def page_texts(pdf):
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]


def buy(testapp, event, status=201, **order):
    body = {"customer_email": "ann@example.com", "customer_name": "Ann", **order}
    if "items" not in body:
        body.setdefault("quantity", 2)
    return testapp.post_json(f"/api/events/{event.id}/purchase", {"order": body}, status=status)


# --- codes ------------------------------------------------------------------------------------


def test_a_code_has_140_bits_in_seven_groups_of_crockford_base32():
    ticket_id = uuid.uuid4()
    code = CODES.code_of(ticket_id)
    assert CODE_SHAPE.match(code), code
    assert len(code.replace("-", "")) * 5 == 140
    # The same ticket always has the same code; another ticket, or another secret, another one.
    assert CODES.code_of(ticket_id) == code
    assert CODES.code_of(uuid.uuid4()) != code
    assert TicketCodes("another-secret").code_of(ticket_id) != code


def test_codes_are_read_in_any_case_without_spaces_or_hyphens_and_with_crockford_s_aliases():
    code = CODES.code_of(uuid.uuid4())
    compact = code.replace("-", "")
    spoken = " ".join(compact[i : i + 2] for i in range(0, len(compact), 2)).lower()
    assert hash_of_code(spoken) == hash_of_code(code)
    # O is read as 0 and I or L as 1: the alphabet has none of them, so nothing is confused.
    assert normalize_code("o0-iL1 ab") == "00111AB"
    assert hash_of_code(code.replace("0", "O").replace("1", "l")) == hash_of_code(code)


def test_the_hash_a_ticket_is_issued_with_is_its_shown_code_s():
    for ticket_id in [uuid.uuid4() for _ in range(500)]:
        assert CODES.hash_of_ticket(ticket_id) == hash_of_code(CODES.code_of(ticket_id))


# --- issued on confirmation ---------------------------------------------------------------


def test_a_confirmed_purchase_issues_one_ticket_per_unit_of_each_item(testapp, dbengine, gateway):
    event = create_event(dbengine)
    vip = create_ticket_type(dbengine, event)
    general = event.ticket_types[0]
    order = buy(
        testapp,
        event,
        items=[
            {"ticket_type_id": str(vip.id), "quantity": 1},
            {"ticket_type_id": str(general.id), "quantity": 3},
        ],
    ).json["data"]

    listed = testapp.get(f"/api/orders/{order['id']}/tickets").json["data"]

    assert [each["ticket_type"] for each in listed] == ["VIP"] + ["General admission"] * 3
    assert {each["status"] for each in listed} == {"valid"}
    assert {(each["attendee_name"], each["attendee_email"]) for each in listed} == {
        ("Ann", "ann@example.com")
    }
    assert all(CODE_SHAPE.match(each["code"]) for each in listed)
    assert len({each["code"] for each in listed}) == 4
    stored = {str(each.id): each for each in order_tickets(dbengine, order["id"])}
    for shown in listed:
        # Only the code's hash is stored, and the code shown is the one the hash is of.
        ticket = stored[shown["id"]]
        assert ticket.code_hash == hash_of_code(shown["code"])
        assert shown["code"] not in repr(ticket.__dict__)
        assert ticket.event_id == event.id
    assert_books_balance(dbengine, gateway)


def test_an_unknown_order_has_no_tickets_to_list(testapp):
    response = testapp.get(f"/api/orders/{uuid.uuid4()}/tickets", status=404)
    assert response.json["code"] == "order_not_found"
    assert testapp.get("/api/orders/not-a-uuid/tickets", status=404).json["code"] == (
        "order_not_found"
    )


def test_a_declined_purchase_issues_no_ticket(testapp, dbengine, gateway):
    event = create_event(dbengine)
    gateway.configure(failure_mode="card_declined")
    buy(testapp, event, status=402)
    with Session(dbengine) as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 0
    gateway.configure()
    assert_books_balance(dbengine, gateway)


def test_the_sweep_s_confirmation_issues_the_tickets_once(dbengine):
    gateway = MockPaymentGateway()
    event = create_event(dbengine, total_tickets=10)
    now = dt.datetime.now(dt.UTC)
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    factory = sessionmaker(bind=dbengine, expire_on_commit=False)
    purchase = orders.PurchaseRequest(
        event_id=event.id, customer_email="ann@example.com", customer_name="Ann", quantity=3
    )
    # Reserved and charged, then the process died before confirming.
    order = orders._reserve(get_tm_session(factory, tm), purchase, now)
    tm.commit()
    gateway.charge(
        order.total_amount_cents, "USD", order.charge_idempotency_key, description="", metadata={}
    )
    later = now + orders.STALE_AFTER + dt.timedelta(seconds=1)
    for _ in range(2):  # a second sweep finds nothing left to confirm
        tm.begin()
        orders.settle_stale_pending_orders(
            get_tm_session(factory, tm), tm, gateway, now=later, ticket_codes=CODES
        )
        tm.commit()

    assert len(order_tickets(dbengine, order.id)) == 3
    assert_books_balance(dbengine, gateway)


# --- the attendee ----------------------------------------------------------------------------


def test_the_buyer_names_a_ticket_s_attendee_with_the_order_id(testapp, dbengine):
    event = create_event(dbengine)
    order = buy(testapp, event).json["data"]
    first, second = testapp.get(f"/api/orders/{order['id']}/tickets").json["data"]

    changed = testapp.put_json(
        f"/api/tickets/{first['id']}",
        {
            "ticket": {
                "order_id": order["id"],
                "attendee_name": " Bea ",
                "attendee_email": "Bea@Example.com",
            }
        },
    ).json["data"]

    assert (changed["attendee_name"], changed["attendee_email"]) == ("Bea", "bea@example.com")
    assert changed["code"] == first["code"]
    listed = testapp.get(f"/api/orders/{order['id']}/tickets").json["data"]
    assert {each["id"]: each["attendee_name"] for each in listed} == {
        first["id"]: "Bea",
        second["id"]: "Ann",
    }


def test_a_ticket_cannot_be_changed_without_its_own_order_s_id(testapp, dbengine):
    event = create_event(dbengine)
    order = buy(testapp, event).json["data"]
    other = buy(testapp, event, customer_email="other@example.com").json["data"]
    ticket = testapp.get(f"/api/orders/{order['id']}/tickets").json["data"][0]
    change = {"attendee_name": "Mallory", "attendee_email": "m@example.com"}

    for order_id in (other["id"], str(uuid.uuid4())):
        response = testapp.put_json(
            f"/api/tickets/{ticket['id']}", {"ticket": {"order_id": order_id, **change}}, status=404
        )
        assert response.json["code"] == "ticket_not_found"
    missing = testapp.put_json(f"/api/tickets/{ticket['id']}", {"ticket": change}, status=400)
    assert missing.json["errors"][0]["field"] == "ticket.order_id"
    assert testapp.get(f"/api/orders/{order['id']}/tickets").json["data"][0] == ticket


@pytest.mark.parametrize(
    "fields",
    [
        {"attendee_name": "", "attendee_email": "b@example.com"},
        {"attendee_name": "B", "attendee_email": "not-an-email"},
        {"attendee_name": "B"},
        {"attendee_name": "B", "attendee_email": "b@example.com", "status": "void"},
    ],
)
def test_an_invalid_attendee_is_refused_field_by_field(testapp, dbengine, fields):
    event = create_event(dbengine)
    order = buy(testapp, event).json["data"]
    ticket = testapp.get(f"/api/orders/{order['id']}/tickets").json["data"][0]
    response = testapp.put_json(
        f"/api/tickets/{ticket['id']}", {"ticket": {"order_id": order["id"], **fields}}, status=400
    )
    assert response.json["code"] == "validation_failed"


# --- cancelled ---------------------------------------------------------------------------------


def test_cancelling_an_order_voids_its_tickets(testapp, dbengine, gateway):
    event = create_event(dbengine)
    order = buy(testapp, event).json["data"]
    testapp.post(f"/api/orders/{order['id']}/cancel")

    listed = testapp.get(f"/api/orders/{order['id']}/tickets").json["data"]
    assert [each["status"] for each in listed] == ["void", "void"]
    response = testapp.put_json(
        f"/api/tickets/{listed[0]['id']}",
        {"ticket": {"order_id": order["id"], "attendee_name": "B", "attendee_email": "b@x.io"}},
        status=409,
    )
    assert response.json["code"] == "ticket_void"
    assert_books_balance(dbengine, gateway)


def test_the_factory_s_orders_have_tickets_like_the_purchase_s(dbengine):
    event = create_event(dbengine)
    confirmed = create_order(dbengine, event, quantity=3)
    cancelled = create_order(dbengine, event, quantity=2, status="cancelled")
    assert [t.status for t in order_tickets(dbengine, confirmed.id)] == ["valid"] * 3
    assert [t.status for t in order_tickets(dbengine, cancelled.id)] == ["void"] * 2


# --- the confirmation email ---------------------------------------------------------------------


def test_the_confirmation_email_shows_the_codes_and_attaches_the_pdf(testapp, dbengine, mailer):
    event = create_event(dbengine)
    order = buy(testapp, event, quantity=2).json["data"]
    tickets = testapp.get(f"/api/orders/{order['id']}/tickets").json["data"]

    [message] = mailer.outbox

    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for ticket in tickets:
        assert f"General admission, Ann: {ticket['code']}" in text
        assert f"<code>{ticket['code']}</code>" in html
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"tickets-{order['id'][:8]}.pdf"
    pdf = attachment.get_content()
    downloaded = testapp.get(f"/api/orders/{order['id']}/tickets.pdf").body
    assert page_texts(pdf) == page_texts(downloaded)
    assert all(
        ticket["code"] in text for ticket, text in zip(tickets, page_texts(pdf), strict=True)
    )
    # The message survives a mail server: plain text, HTML and the PDF, as sent.
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert next(parsed.iter_attachments()).get_content() == pdf


def test_without_the_pdf_the_confirmation_lists_the_codes_alone(dbengine):
    app = main({}, **app_settings(dbengine, **{"mail.attach_tickets_pdf": "false"}))
    testapp = TestApp(app)
    order = buy(testapp, create_event(dbengine), quantity=2).json["data"]
    tickets = testapp.get(f"/api/orders/{order['id']}/tickets").json["data"]

    [message] = app.registry.getUtility(IEmailSender).outbox
    text = message.get_body(("plain",)).get_content()
    assert all(f"General admission, Ann: {ticket['code']}" in text for ticket in tickets)
    assert "(show its code at the door)" in text and "attached" not in text
    assert list(message.iter_attachments()) == []


def test_orders_confirmed_before_tickets_existed_get_theirs_once(dbengine, dbsession, tm):
    event = create_event(dbengine)
    older = create_order(dbengine, event, quantity=3)
    with dbengine.begin() as connection:
        connection.execute(Ticket.__table__.delete())  # as before migration 0006
    create_order(dbengine, event, quantity=1, status="cancelled")
    now = dt.datetime.now(dt.UTC)

    assert tickets.issue_missing_tickets(dbsession, CODES, now=now) == 1
    tm.commit()
    tm.begin()
    assert tickets.issue_missing_tickets(dbsession, CODES, now=now) == 0

    issued = order_tickets(dbengine, older.id)
    assert [(t.status, t.attendee_email) for t in issued] == [("valid", "a@example.com")] * 3
