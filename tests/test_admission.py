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
    first = admission.enter()
    assert first and admission.enter()
    assert not admission.enter()
    admission.leave(first)
    assert admission.enter()


def test_a_waiting_purchase_gets_the_place_that_frees_up_in_time():
    admission = Admission(max_in_progress=1, max_waiting=1, wait_seconds=2)
    place = admission.enter()
    threading.Timer(0.1, admission.leave, (place,)).start()
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
    place = admission.enter()
    with ThreadPoolExecutor(1) as pool:
        waiter = pool.submit(admission.enter)
        time.sleep(0.1)
        started = time.monotonic()
        assert not admission.enter()
        assert time.monotonic() - started < 0.1
        admission.leave(place)
        assert waiter.result(timeout=5)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def timed_purchases(admission, clock, count, seconds, at_once=1):
    """``count`` rounds of ``at_once`` purchases running together, each taking ``seconds``."""
    for _ in range(count):
        places = [admission.enter() for _ in range(at_once)]
        assert None not in places
        clock.now += seconds
        for place in places:
            admission.leave(place)


def queueing(admission, clock, rounds, service_seconds):
    """Rounds of as many purchases as the limit lets in, all queueing for one resource that
    serves each in ``service_seconds``: the more at once, the longer each takes."""
    for _ in range(rounds):
        at_once = max(int(admission.limit), admission.min_in_progress)
        timed_purchases(admission, clock, 1, service_seconds * at_once, at_once=at_once)


def test_the_limit_settles_where_purchases_stop_queueing():
    clock = Clock()
    admission = Admission(
        max_in_progress=32, max_waiting=0, wait_seconds=0, min_in_progress=4, clock=clock
    )
    timed_purchases(admission, clock, 5, 0.02)  # 20 ms when alone
    assert admission.limit == 32

    # 32 at once take 32 x 20 ms: they only queue. The limit comes down to where a purchase
    # takes about twice (plus 50 ms) what it takes with few at once, and stays there.
    queueing(admission, clock, 200, 0.02)
    settled = admission.limit
    assert 4 <= settled <= 12
    queueing(admission, clock, 200, 0.02)
    assert abs(admission.limit - settled) <= 4

    timed_purchases(admission, clock, 2000, 0.02, at_once=4)  # no more queueing
    assert admission.limit == 32


def test_a_slow_gateway_keeps_the_limit_high():
    """Purchases that spend 200 ms on the gateway are slow, but 30 at once are not queueing."""
    clock = Clock()
    admission = Admission(max_in_progress=32, max_waiting=0, wait_seconds=0, clock=clock)
    timed_purchases(admission, clock, 5, 0.22)
    timed_purchases(admission, clock, 100, 0.24, at_once=30)
    assert admission.limit == 32


def test_the_limit_decides_who_gets_in():
    admission = Admission(max_in_progress=8, max_waiting=0, wait_seconds=0, min_in_progress=2)
    admission.limit = 2.7  # as queueing left it
    places = [admission.enter(), admission.enter()]
    assert None not in places and admission.enter() is None
    admission.leave(places[0])
    assert admission.enter() is not None


def test_turned_away_buyers_get_turns_at_the_pace_purchases_finish():
    clock = Clock()
    admission = Admission(
        max_in_progress=1, max_waiting=0, wait_seconds=0, retry_after_seconds=1, clock=clock
    )
    holder = admission.enter()
    assert admission.enter() is None
    assert admission.retry_after() == 1  # no purchase has finished: no pace known yet
    admission.leave(holder)
    timed_purchases(admission, clock, 50, 0.125)  # eight purchases finishing a second

    holder = admission.enter()
    told = []
    for _ in range(40):
        assert admission.enter() is None
        told.append(admission.retry_after())
    # Forty buyers at once are spread over the five seconds the process needs to sell to them.
    assert told == sorted(told)
    assert [told.count(seconds) for seconds in range(1, 6)] == [8, 8, 8, 8, 8]

    for _ in range(500):
        admission.enter()
    assert admission.retry_after() == 30  # never more

    clock.now += 31
    admission.leave(holder)
    holder = admission.enter()
    assert admission.enter() is None
    assert admission.retry_after() == 1  # the waiting room has emptied: the base again


def test_the_deadline_counts_the_wait_before_the_request_got_a_thread():
    clock = Clock()
    admission = Admission(max_in_progress=1, max_waiting=4, wait_seconds=0.5, clock=clock)
    holder = admission.enter()
    # Queued in the server for 0.6 s before a thread took it up: past its deadline already.
    started = time.monotonic()
    assert admission.enter(queued_at=clock.now - 0.6) is None
    assert time.monotonic() - started < 0.1
    assert admission.waiting == 0
    admission.leave(holder)
    # With a place free, an old request still gets it: turning it away would help no one.
    assert admission.enter(queued_at=clock.now - 5) is not None


def test_turned_away_purchases_are_summarised_not_logged_one_by_one(pg_engine, caplog):
    app = admitting_app(pg_engine, **{"admission.max_waiting": "0"})
    testapp = TestApp(app)
    event = create_event(pg_engine, total_tickets=100)
    admission = app.registry["admission"]
    admission.min_in_progress = admission.max_in_progress
    held = [admission.enter(), admission.enter()]
    with caplog.at_level("WARNING"):
        for number in range(5):
            assert buy(testapp, event, number).status_int == 503
    assert not [r for r in caplog.records if "answered 503" in r.getMessage()]
    for place in held:
        admission.leave(place)


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
    held = [admission.enter(), admission.enter()]  # two purchases in progress elsewhere
    assert None not in held
    statements = []

    def count(*args):
        statements.append(args[2])

    sa.event.listen(pg_engine, "before_cursor_execute", count)
    try:
        assert buy(testapp, event).status_int == 503
    finally:
        sa.event.remove(pg_engine, "before_cursor_execute", count)
    assert statements == []
    admission.leave(held[0])
    assert buy(testapp, event).status_int == 201


def test_admission_is_off_unless_switched_on(pg_engine):
    app = main({}, **app_settings(pg_engine))
    assert "admission" not in app.registry
