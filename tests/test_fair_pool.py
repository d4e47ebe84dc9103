"""PostgreSQL's connection pool serves its waiting threads in turn: a thread that gives its
connection back and asks again at once (a purchase between its two phases) waits behind those
already waiting, instead of taking it again ahead of them (sqlalchemy/sqlalchemy#7679)."""

import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.util import queue as sqla_queue

from ticketing.models import get_engine
from ticketing.models.fair_pool import FairQueue, FairQueuePool


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def waiting(queue):
    with queue.mutex:
        return len(queue._waiting)


def test_a_thread_that_gives_back_and_asks_again_waits_behind_the_waiting():
    queue = FairQueue(1)
    queue.put("connection")
    taken = []

    def take(name):
        item = queue.get(True, 5)
        taken.append(name)
        queue.put(item)

    held = queue.get()
    threads = []
    for name in ("first", "second"):
        threads.append(threading.Thread(target=take, args=(name,)))
        threads[-1].start()
        wait_until(lambda: waiting(queue) == len(threads))
    queue.put(held)
    # The moment it gave it back, the same thread asks again: SQLAlchemy's Queue gives it the
    # connection at once, ahead of both.
    again = queue.get(True, 5)
    taken.append("again")
    queue.put(again)
    for thread in threads:
        thread.join()

    assert taken == ["first", "second", "again"]


def test_a_waiter_that_times_out_leaves_its_turn_to_the_next():
    queue = FairQueue(1)
    queue.put("connection")
    held = queue.get()
    outcome = {}

    def impatient():
        try:
            queue.get(True, 0.05)
        except sqla_queue.Empty:
            outcome["impatient"] = "gave up"

    def patient():
        outcome["patient"] = queue.get(True, 5)

    first = threading.Thread(target=impatient)
    first.start()
    wait_until(lambda: waiting(queue) == 1)
    second = threading.Thread(target=patient)
    second.start()
    first.join()
    queue.put(held)
    second.join()

    assert outcome == {"impatient": "gave up", "patient": "connection"}
    assert waiting(queue) == 0


def test_nothing_waits_for_a_free_connection_when_no_one_is_waiting():
    queue = FairQueue(2)
    queue.put("a")
    queue.put("b")
    assert {queue.get(False), queue.get(False)} == {"a", "b"}
    with pytest.raises(sqla_queue.Empty):
        queue.get(False)


@pytest.fixture
def engine(postgresql_url):
    engine = get_engine(
        {
            "sqlalchemy.url": postgresql_url.render_as_string(hide_password=False),
            "sqlalchemy.pool_size": "1",
            "sqlalchemy.max_overflow": "0",
            "sqlalchemy.pool_timeout": "5",
        }
    )
    yield engine
    engine.dispose()


def test_postgresql_engines_serve_threads_in_the_order_they_asked(engine):
    assert isinstance(engine.pool, FairQueuePool)
    order = []
    holder = engine.connect()
    holder.execute(sa.text("SELECT 1"))

    def use(number):
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            order.append(number)

    threads = []
    for number in range(6):
        threads.append(threading.Thread(target=use, args=(number,)))
        threads[-1].start()
        wait_until(lambda: waiting(engine.pool._pool) == len(threads))
    holder.close()
    for thread in threads:
        thread.join()

    assert order == list(range(6))


def test_a_recreated_pool_stays_fair(engine):
    assert isinstance(engine.pool.recreate(), FairQueuePool)
