"""``ticketing_worker``'s own setting: ``worker.nice`` lowers its consumers' CPU priority, so that
on a machine that also serves the sale the emails wait for spare CPU instead of slowing it."""

import os
import time

from .conftest import TEST_TICKET_SECRET
from .workers import worker_processes


def worker_settings(tmp_path, **extra):
    return {
        "sqlalchemy.url": f"sqlite:///{tmp_path / 'ticketing.sqlite'}",
        "ticketing.ticket_secret": TEST_TICKET_SECRET,
        "ticketing.require_api_key": "false",
        "ticketing.payments": "mock",
        "ticketing.email": "mock",
        "huey.url": "memory://",
        **extra,
    }


def test_worker_nice_lowers_the_consumers_priority(tmp_path):
    wanted = min(os.getpriority(os.PRIO_PROCESS, 0) + 5, 19)
    with worker_processes(worker_settings(tmp_path, **{"worker.nice": "5"}), tmp_path) as start:
        consumer = start("emails")
        deadline = time.monotonic() + 30
        while os.getpriority(os.PRIO_PROCESS, consumer.pid) != wanted:
            assert consumer.poll() is None, "the worker stopped"
            assert time.monotonic() < deadline, "the worker's niceness never changed"
            time.sleep(0.05)
        time.sleep(0.5)
        assert consumer.poll() is None  # and it goes on consuming


def test_a_niceness_out_of_range_stops_the_worker_at_startup(tmp_path):
    with worker_processes(worker_settings(tmp_path, **{"worker.nice": "25"}), tmp_path) as start:
        consumer = start("emails")
        assert consumer.wait(timeout=30) != 0
    [log] = tmp_path.glob("worker-*.log")
    assert "setting 'worker.nice' must be 0 to 19, got 25" in log.read_text()
