"""The promo codes and waiting list issue's scenario, end to end through the app: a sold-out
show, three people in line, a cancellation of two tickets, the first in line offered them and
paying the offer with a 20% code; the availability, the code's uses and the sales summary show
the line, the offer and the discount; the books balance at every step."""

import uuid

from ticketing.domain import orders
from ticketing.jobs.tasks import job_transaction
from ticketing.models import EmailKind

from .holds import assert_books, emails_of
from .test_promo_codes import add_code, code_of, pay_with
from .test_waiting_list import availability, cancel, entry_of, join, offers_sent, sold_out


def test_the_first_in_line_pays_the_tickets_a_cancellation_freed_with_a_20_percent_code(
    app, testapp, dbengine, gateway, mailer
):
    event, (cancelled_sale, _) = sold_out(testapp, dbengine, 2, 2, name="Sold Out Show")
    code = add_code(testapp, event, code="WAITED20", max_uses=10).json["data"]
    ann = join(testapp, event, 2, "ann@example.com").json["data"]
    bob = join(testapp, event, 1, "bob@example.com").json["data"]
    cid = join(testapp, event, 2, "cid@example.com").json["data"]
    assert [ann["position"], bob["position"], cid["position"]] == [1, 2, 3]
    assert availability(testapp, event)["event"]["waiting"] == 3
    assert_books(dbengine, gateway)

    cancel(testapp, cancelled_sale["id"])

    ann = entry_of(testapp, ann["id"])
    assert ann["status"] == "offered"
    [offer_email] = offers_sent(mailer)
    assert offer_email["To"] == "Ann <ann@example.com>"
    assert ann["order_id"] in offer_email.get_body(preferencelist=("plain",)).get_content()
    offer = testapp.get(f"/api/orders/{ann['order_id']}").json["data"]
    assert (offer["status"], offer["quantity"], offer["total_amount"]) == ("reserved", 2, "100.00")
    shown = availability(testapp, event)["event"]
    assert (shown["offered"], shown["waiting"], shown["available"]) == (2, 2, 0)
    assert_books(dbengine, gateway)

    paid = pay_with(testapp, ann["order_id"], "waited20").json["data"]

    assert (paid["status"], paid["promo_code"]) == ("confirmed", "WAITED20")
    assert (paid["total_amount"], paid["discount_total"]) == ("80.00", "20.00")
    [charge] = [each for each in gateway.kept_charges() if each.metadata["order_id"] == paid["id"]]
    assert charge.amount_cents == 8000
    assert sorted(emails_of(dbengine, uuid.UUID(paid["id"]))) == sorted(
        [EmailKind.WAITING_LIST_OFFER, EmailKind.ORDER_CONFIRMATION]
    )
    assert entry_of(testapp, ann["id"])["status"] == "purchased"
    assert [entry_of(testapp, bob["id"])["position"], entry_of(testapp, cid["id"])["position"]] == [
        1,
        2,
    ]
    assert code_of(testapp, event, code["id"])["uses"] == 1
    shown = availability(testapp, event)["event"]
    assert (shown["sold"], shown["offered"], shown["waiting"], shown["available"]) == (4, 0, 2, 0)
    with job_transaction(app.registry["dbsession_factory"]) as (dbsession, _):
        summary = orders.sales_summary(dbsession, event.id)
    assert (summary["tickets_sold"], summary["revenue"], summary["discounts"]) == (
        4,
        "180.00",
        "20.00",
    )
    assert summary["promo_codes"] == [
        {"code": "WAITED20", "orders": 1, "tickets_sold": 2, "discounts": "20.00"}
    ]
    assert summary["waiting_list"]["waiting"] == 2
    assert summary["waiting_list"]["offers_purchased"] == 1
    assert_books(dbengine, gateway)
