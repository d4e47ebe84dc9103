"""What the waiting list costs the requests that give tickets back: nothing when nobody waits
(the type's UPDATE asks), a few statements when someone does."""

from webtest import TestApp

from ticketing import main

from .conftest import app_settings
from .test_purchase_statements import recorded_statements
from .test_waiting_list import cancel, join, sold_out


def test_a_cancellation_costs_no_statement_more_while_nobody_waits(dbengine):
    # Jobs queued, not run inline: only the request's own statements are counted.
    testapp = TestApp(main({}, **app_settings(dbengine, **{"huey.immediate": "false"})))
    event, sales = sold_out(testapp, dbengine, 1, 1, 1)

    with recorded_statements(dbengine) as nobody_waits:
        cancel(testapp, sales[0]["id"])
    join(testapp, event, 2, "ann@example.com")  # one ticket is on sale, she wants two
    with recorded_statements(dbengine) as someone_waits:
        cancel(testapp, sales[1]["id"])

    # read and lock the order, its tickets, the event; refund; mark it cancelled; the tickets
    # back to the event, then to its type (asking whether anyone waits, and whether the order
    # was an offer); void its tickets; owe the email; log order.cancelled
    # As before the waiting list (11): the order and its tickets read and locked, the event
    # read, the order cancelled, its tickets back to the event, then to its type (whose UPDATE
    # now also asks whether anyone waits for the event and whether the order was an offer), its
    # tickets void, its email owed, order.cancelled logged.
    assert nobody_waits == [
        "SELECT", "SELECT", "SELECT", "SELECT", "UPDATE", "SELECT",
        "UPDATE", "UPDATE", "UPDATE", "INSERT", "INSERT",
    ]  # fmt: skip
    # Someone waits: then the event's room, the line's wants, its types locked, the tickets set
    # aside on the type and taken out of the event's available: five more.
    assert someone_waits == [
        *nobody_waits[:8], "SELECT", "SELECT", "SELECT", "UPDATE", "UPDATE", *nobody_waits[8:],
    ]  # fmt: skip
