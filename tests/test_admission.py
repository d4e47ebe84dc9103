"""Admission control of purchases: a bounded number in progress, a bounded and short wait, and
503 server_busy with Retry-After for the rest, before any SQL. Real threads, real PostgreSQL."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from webtest import TestApp

from ticketing import main
from ticketing.admission import Admission
from ticketing.interfaces import IPaymentGateway

from .conftest import app_settings
from .factories import assert_books_balance, create_event


def test_a_place_is_given_while_there_is_one():
    admission = Admission(max_in_progress=2, max_waiting=0, wait_seconds=0)
    assert admission.enter() and admission.enter()
    assert not admission.enter()
    admission.leave()
    assert admission.enter()


def test_a_waiting_purchase_gets_the_place_that_frees_up_in_time():
    admission = Admission(max_in_progress=1, max_waiting=1, wait_seconds=2)
    assert admission.enter()
    threading.Timer(0.1, admission.leave).start()
    started = time.monotonic()
    assert admission.enter()
    assert time.monotonic() - started < 1


def test_a_purchase_that_cannot_start_within_the_deadline_is_refused():
    admission = Admission(max_in_progress=1, max_waiting=1, wait_seconds=0.1)
    assert admission.enter()
    assert not admission.enter()
    assert admission.waiting == 0


def test_beyond_the_waiting_line_the_refusal_is_immediate():
    admission = Admission(max_in_progress=1, max_waiting=1, wait_seconds=5)
    assert admission.enter()
    with ThreadPoolExecutor(1) as pool:
        waiter = pool.submit(admission.enter)
        time.sleep(0.1)
        started = time.monotonic()
        assert not admission.enter()
        assert time.monotonic() - started < 0.1
        admission.leave()
        assert waiter.result(timeout=5)


def admitting_app(pg_engine, **overrides):
    settings = {
        "admission.enabled": "true",
        "admission.max_in_progress": "2",
        "admission.max_waiting": "1",
        "admission.wait_seconds": "0.05",
        **overrides,
    }
    return main({}, **app_settings(pg_engine, **settings))


def buy(testapp, event, number=0):
    order = {"customer_email": f"b{number}@example.com", "customer_name": "B", "quantity": 1}
    return testapp.post_json(
        f"/api/events/{event.id}/purchase", {"order": order}, expect_errors=True
    )


def test_a_burst_gets_server_busy_with_retry_after(pg_engine):
    app = admitting_app(pg_engine)
    gateway = app.registry.getUtility(IPaymentGateway)
    gateway.configure(latency_ms=300)  # purchases in progress for a while
    testapp = TestApp(app)
    event = create_event(pg_engine, total_tickets=100)
    barrier = threading.Barrier(8)

    def at_once(number):
        barrier.wait()
        return buy(testapp, event, number)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(at_once, range(8)))

    busy = [r for r in responses if r.status_int == 503]
    bought = [r for r in responses if r.status_int == 201]
    assert 2 <= len(bought) <= 3 and len(bought) + len(busy) == 8
    for response in busy:
        assert response.json["code"] == "server_busy"
        assert response.headers["Retry-After"] == "1"
        assert response.content_type == "application/problem+json"
    assert_books_balance(pg_engine, gateway)


def test_a_refused_purchase_costs_no_sql(pg_engine):
    app = admitting_app(pg_engine, **{"admission.max_waiting": "0"})
    testapp = TestApp(app)
    event = create_event(pg_engine, total_tickets=100)
    admission = app.registry["admission"]
    assert admission.enter() and admission.enter()  # two purchases in progress elsewhere
    statements = []

    def count(*args):
        statements.append(args[2])

    sa.event.listen(pg_engine, "before_cursor_execute", count)
    try:
        assert buy(testapp, event).status_int == 503
    finally:
        sa.event.remove(pg_engine, "before_cursor_execute", count)
    assert statements == []
    admission.leave()
    assert buy(testapp, event).status_int == 201


def test_admission_is_off_unless_switched_on(pg_engine):
    app = main({}, **app_settings(pg_engine))
    assert "admission" not in app.registry
