"""Every transition the issue names logs its domain event in its own transaction, with the
resource as the API shows it: the jobs' (completion, the stale-order sweep) as well as the
requests'. Plugins hear them after commit (tests/test_plugins.py); webhooks deliver them."""

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.models import EventLogEntry, OrderStatus

from .factories import create_event, create_order


@pytest.fixture
def jobs(app):
    return app.registry["jobs"]


def log_entries(engine):
    with Session(engine) as session:
        entries = session.scalars(select(EventLogEntry).order_by(EventLogEntry.created_at))
        return [(entry.type, entry.data) for entry in entries]


def test_an_organiser_s_change_logs_event_changed_with_the_event_as_organisers_see_it(
    testapp, dbengine
):
    event = create_event(dbengine)

    changed = testapp.put_json(f"/api/events/{event.id}", {"event": {"venue": "Arena"}}).json

    [(kind, data)] = log_entries(dbengine)
    assert kind == "event.changed"
    assert data == changed["data"] == testapp.get(f"/api/events/{event.id}").json["data"]


def test_the_daily_completion_logs_event_completed_for_each_event(dbengine, jobs):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    events = [create_event(dbengine, date=past) for _ in range(3)]

    assert jobs.tasks.complete_past_events.call_local() == 3

    logged = log_entries(dbengine)
    assert sorted(data["id"] for _, data in logged) == sorted(str(e.id) for e in events)
    assert {(kind, data["status"]) for kind, data in logged} == {("event.completed", "completed")}


def test_a_purchase_the_sweep_abandons_logs_order_expired(dbengine, jobs):
    event = create_event(dbengine, total_tickets=10, available_tickets=8)
    order = create_order(
        dbengine,
        event,
        status=OrderStatus.PENDING,
        created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    )

    assert jobs.tasks.settle_stale_orders.call_local() == (0, 1, 0)

    [(kind, data)] = log_entries(dbengine)
    assert kind == "order.expired"
    assert (data["id"], data["status"], data["failure_code"]) == (
        str(order.id),
        "failed",
        "abandoned",
    )


def test_a_purchase_the_sweep_confirms_logs_order_confirmed(dbengine, jobs, gateway):
    event = create_event(dbengine, total_tickets=10, available_tickets=8)
    order = create_order(
        dbengine,
        event,
        status=OrderStatus.PENDING,
        created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    )
    charge = gateway.charge(10000, "USD", order.charge_idempotency_key, "2 tickets", {})

    assert jobs.tasks.settle_stale_orders.call_local() == (1, 0, 0)

    [(kind, data)] = log_entries(dbengine)
    assert kind == "order.confirmed"
    assert (data["status"], data["payment_reference"]) == ("confirmed", charge.id)
