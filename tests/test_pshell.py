"""The admin console, driven the way an organiser uses it: ``pshell development.ini`` with
commands on standard input."""

import datetime as dt
import os
import pathlib
import subprocess

import pytest
import sqlalchemy as sa
from pyramid.paster import get_appsettings
from sqlalchemy.orm import Session

from ticketing.adapters.payments import MockPaymentGateway
from ticketing.domain.tickets import TicketCodes
from ticketing.migrations import upgrade_to_head
from ticketing.models import (
    EmailKind,
    EmailStatus,
    EventStatus,
    OrderStatus,
    OutboxEmail,
    get_engine,
)

from .factories import create_event, create_order, load_event, load_order, order_tickets
from .holds import assert_books
from .live_server import ini_for_tests

REPO = pathlib.Path(__file__).resolve().parent.parent
PSHELL = REPO / ".venv" / "bin" / "pshell"


@pytest.fixture
def database(tmp_path):
    url = f"sqlite:///{tmp_path / 'admin.sqlite'}"
    engine = get_engine({"sqlalchemy.url": url})
    upgrade_to_head(engine)
    yield url, engine
    engine.dispose()


def pshell(url, commands):
    environ = dict(os.environ, DATABASE_URL=url, HUEY_URL="memory://")
    # development.ini, with the mock gateway's ledger beside the test's database.
    ini = ini_for_tests(pathlib.Path(url.removeprefix("sqlite:///")).parent, "development.ini")
    result = subprocess.run(
        [str(PSHELL), str(ini)],
        input=commands,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environ,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_the_console_lists_its_operations(database):
    url, _ = database
    output = pshell(url, "")
    for name in (
        "publish_event",
        "cancel_order",
        "resend_confirmation",
        "complete_past_events",
        "settle_stale_orders",
        "failed_emails",
        "sales_summary",
        "expire_holds",
        "complete_payment_action",
        "order_tickets",
        "check_in_stats",
        "undo_check_in",
        "issue_missing_tickets",
        "waiting_list",
        "match_waiting_lists",
    ):
        assert name in output


def test_publish_sell_summarise_and_cancel_from_the_console(database):
    url, engine = database
    event = create_event(engine, status=EventStatus.DRAFT, total_tickets=10)

    output = pshell(
        url,
        f"publish_event('{event.id}')\n"
        "from ticketing.domain.orders import purchase_tickets, PurchaseRequest\n"
        "from ticketing.models.types import utcnow\n"
        "import uuid\n"
        f"bought = purchase_tickets(dbsession, tm, gateway, PurchaseRequest("
        f"event_id=uuid.UUID('{event.id}'), customer_email='a@b.co', "
        "customer_name='A', quantity=3), now=utcnow(), ticket_codes=ticket_codes)\n"
        "tm.commit(); tm.begin()\n"
        "print('ORDER', bought.order.id)\n"
        f"print('SUMMARY', sales_summary('{event.id}'))\n"
        "cancel_order(bought.order.id)\n",
    )

    assert "'tickets_sold': 3" in output and "'revenue': '150.00'" in output
    order_id = output.split("ORDER ", 1)[1].split()[0]
    assert load_event(engine, event.id).status == EventStatus.PUBLISHED
    assert load_order(engine, order_id).status == OrderStatus.CANCELLED
    assert load_event(engine, event.id).available_tickets == 10


def test_complete_past_events_from_the_console(database):
    url, engine = database
    past = create_event(engine, date=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    output = pshell(url, "print('COMPLETED', complete_past_events())\n")
    assert "COMPLETED 1" in output
    assert load_event(engine, past.id).status == EventStatus.COMPLETED


def test_failed_emails_are_listed_and_can_be_resent(database):
    url, engine = database
    event = create_event(engine, total_tickets=10, available_tickets=9)
    order = create_order(engine, event, quantity=1, payment_reference="ch_x")
    with Session(engine) as session, session.begin():
        session.add(
            OutboxEmail(
                order_id=order.id,
                kind=EmailKind.ORDER_CONFIRMATION,
                status=EmailStatus.FAILED,
                attempts=6,
                last_error="mail server error",
            )
        )
    order_id = order.id

    output = pshell(
        url,
        "print('FAILED', failed_emails())\n"
        f"resend_confirmation('{order_id}')\n"
        "queue = jobs.hueys['emails']\n"
        "queue.execute(queue.dequeue())\n"
        "print('AFTER', failed_emails())\n",
    )

    assert f"FAILED [('{order_id}', 'order_confirmation', 'mail server error')]" in output
    assert "AFTER []" in output
    with Session(engine) as session:
        email = session.scalars(sa.select(OutboxEmail)).one()
        assert (email.status, email.attempts) == (EmailStatus.SENT, 1)


def test_an_operation_that_fails_changes_nothing(database):
    url, engine = database
    published = create_event(engine)
    output = pshell(url, f"publish_event('{published.id}')\n")
    assert "EventNotDraft" in output
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM events")) == 1


def test_a_3d_secure_payment_is_completed_from_the_console(database):
    """The mock gateway's 3-D Secure, played from pshell: the webhook it causes goes through the
    app's real webhook view (signed with development.ini's secret) and confirms the order."""
    url, engine = database
    event = create_event(engine, total_tickets=10)

    output = pshell(
        url,
        "from ticketing.domain.orders import purchase_tickets, PurchaseRequest\n"
        "from ticketing.models.types import utcnow\n"
        "import uuid\n"
        f"waiting = purchase_tickets(dbsession, tm, gateway, PurchaseRequest("
        f"event_id=uuid.UUID('{event.id}'), customer_email='a@b.co', customer_name='A', "
        "quantity=2, payment_method='pm_card_threeDSecureRequired'), now=utcnow(),"
        " ticket_codes=ticket_codes)\n"
        "tm.commit(); tm.begin()\n"
        "print('WAITING', waiting.order.id, waiting.order.status)\n"
        "print('DONE', complete_payment_action(waiting.order.id, succeed=True))\n"
        "print('EXPIRED', expire_holds())\n",
    )

    order_id = output.split("WAITING ", 1)[1].split()[0]
    assert f"WAITING {order_id} awaiting_action" in output
    assert "DONE ({'received': True, 'outcome': 'confirmed'}, 'confirmed')" in output
    assert load_order(engine, order_id).status == OrderStatus.CONFIRMED
    assert load_event(engine, event.id).available_tickets == 8
    ledger = MockPaymentGateway(
        ledger_url=f"sqlite:///{pathlib.Path(url.removeprefix('sqlite:///')).parent}"
        "/payments-mock.sqlite"
    )
    try:
        assert_books(engine, ledger)
    finally:
        ledger.dispose()


def test_an_order_s_tickets_and_the_door_s_figures_from_the_console(database):
    url, engine = database
    event = create_event(engine, total_tickets=10, available_tickets=8)
    order = create_order(engine, event, quantity=2)
    # The console's codes are those of development.ini's ticket secret.
    secret = get_appsettings(str(REPO / "development.ini"))["ticketing.ticket_secret"]
    codes = sorted(TicketCodes(secret).code_of(t.id) for t in order_tickets(engine, order.id))

    output = pshell(
        url,
        f"print('CODES', sorted(t[4] for t in order_tickets('{order.id}')))\n"
        f"print('STATS', check_in_stats('{event.id}')['sold'])\n"
        "print('ISSUED', issue_missing_tickets())\n",
    )

    assert f"CODES {codes}" in output
    assert "STATS 2" in output and "ISSUED 0" in output


def test_the_waiting_list_from_the_console(database):
    url, engine = database
    event = create_event(engine, total_tickets=1, available_tickets=0)
    hold = create_order(
        engine,
        event,
        quantity=1,
        status=OrderStatus.RESERVED,
        expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
    )

    output = pshell(
        url,
        "import uuid\n"
        "from ticketing.domain import waiting_list as line\n"
        "from ticketing.models.types import utcnow\n"
        f"line.join(dbsession, uuid.UUID('{event.id}'), email='ann@example.com', name='Ann', "
        "ticket_type_id=None, quantity=1, now=utcnow())\n"
        "tm.commit(); tm.begin()\n"
        "expire_holds()\n"
        f"print('BEFORE', waiting_list('{event.id}'))\n"
        "print('OFFERS', match_waiting_lists())\n"
        f"print('AFTER', waiting_list('{event.id}'))\n"
        f"print('SUMMARY', sales_summary('{event.id}'))\n",
    )

    assert load_order(engine, hold.id).status == OrderStatus.EXPIRED
    # The expired hold's ticket was set aside; no worker runs here, so the console offers it.
    before = output.split("BEFORE ", 1)[1].splitlines()[0]
    assert "'ann@example.com', 1, 'waiting', 1, None" in before
    assert "OFFERS 1" in output
    after = output.split("AFTER ", 1)[1].splitlines()[0]
    assert "'offered', None, '" in after
    assert "'offers_outstanding': 1" in output
    assert load_event(engine, event.id).available_tickets == 0
