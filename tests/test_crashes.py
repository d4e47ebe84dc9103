"""Production under stress: real gunicorn servers and job workers (as production.ini runs them)
under a stream of purchases and cancels, while the servers they depend on are killed.

Each scenario ends the same way: the load stops, the scheduled jobs' work is done on demand
(stale orders settled, the outbox swept), and the books are read back: every order confirmed,
failed or cancelled, tickets balanced, one kept charge per confirmed order and none without one,
every owed email sent exactly once. Each prints its figures (``pytest -s`` shows them).

The PostgreSQL and Redis the scenarios kill are private ones (tests/stress.py); the shared
servers are not touched. Every scenario is bounded in time and stops what it started.
"""

import time
import uuid

import pytest
from aiosmtpd.controller import Controller

from .factories import create_event
from .stress import (
    Host,
    Load,
    Operator,
    PrivatePostgres,
    PrivateRedis,
    books,
    free_port,
    request,
    stress_ini,
    wait_for,
    wait_for_emails,
)
from .test_jobs_e2e import Mailbox

#: seconds of load before the crash, and after the recovery
LOAD_BEFORE = 3
LOAD_AFTER = 4


@pytest.fixture(scope="module")
def postgres():
    cluster = PrivatePostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def redis_server(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.close()


@pytest.fixture
def mailbox():
    handler = Mailbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture
def stack(postgres, redis_server, mailbox, tmp_path):
    """Build hosts on one database, one Redis, one ledger and one mailbox; stop them after."""
    database_url = postgres.create_database(f"stress_{uuid.uuid4().hex[:10]}")
    ledger_path = tmp_path / "ledger.sqlite"
    hosts = []
    operators = []

    def build(count=1, threads=16, **settings):
        name = f"s{uuid.uuid4().hex[:6]}"
        ini = stress_ini(
            tmp_path,
            name,
            database_url=database_url,
            redis=redis_server,
            smtp_port=mailbox[1],
            ledger_path=ledger_path,
            **settings,
        )
        operator = Operator(ini)
        operators.append(operator)
        from ticketing.migrations import upgrade_to_head

        upgrade_to_head(operator.registry["dbengine"])
        built = []
        for number in range(count):
            # One periodic scheduler for the whole site; the other hosts consume emails only.
            queues = None if number == 0 else "emails"
            host = Host(ini, tmp_path, threads=threads, worker_queues=queues)
            hosts.append(host)
            built.append(host.start())
        return built, operator

    build.database_url = database_url
    build.ledger_path = ledger_path
    yield build
    for host in hosts:
        host.close()
    for operator in operators:
        operator.close()


def report(title, load, figures, **extra):
    lines = [f"\n== {title}", f"requests: {len(load.answers)}", f"answers: {dict(load.summary())}"]
    lines += [f"books: {figures}"]
    lines += [f"{name}: {value}" for name, value in extra.items()]
    print("\n".join(lines))


def settle_and_check(operator, stack, mailbox):
    """Do what the scheduler would (settle, sweep), wait for the emails, read back the books."""
    settled = operator.settle()
    operator.sweep_outbox()
    wait_for_emails(stack.database_url, mailbox)
    violations, figures = books(stack.database_url, stack.ledger_path, mailbox)
    figures["settled"] = [(r.confirmed, r.failed, r.unresolved) for r in settled if r != type(r)()]
    return violations, figures


def test_postgresql_killed_mid_load_answers_503_fast_and_recovers_by_itself(stack, postgres, mailbox):
    handler, _ = mailbox
    (host,), operator = stack()
    event = create_event(operator.registry["dbengine"], total_tickets=100_000)

    with Load([host.base], event.id) as load:
        time.sleep(LOAD_BEFORE)
        killed_at = time.monotonic()
        postgres.kill()
        time.sleep(3)
        restarted_at = time.monotonic()
        postgres.start()
        back_at = time.monotonic()
        wait_for(
            lambda: any(a.status == 201 for a in load.between(back_at, float("inf"))),
            20,
            "a purchase to succeed after the restart",
        )
        recovered_at = min(
            a.ended for a in load.between(back_at, float("inf")) if a.status == 201
        )
        time.sleep(LOAD_AFTER)

    # While it was down (from a moment after the kill until it was back), every answer was a
    # fast 503 database_unavailable with Retry-After: no hang, no 500.
    down = load.between(killed_at + 0.2, restarted_at)
    assert down, "no request was sent while the database was down"
    assert {(a.status, a.code) for a in down} == {(503, "database_unavailable")}
    assert max(a.seconds for a in down) < 2
    assert all(a.retry_after for a in down)
    assert not [a for a in load.answers if a.status is None or a.status >= 500 and a.status != 503]
    assert host.unhandled_errors() == 0

    violations, figures = settle_and_check(operator, stack, handler)
    report(
        "PostgreSQL SIGKILLed mid-load, restarted 3 s later",
        load,
        figures,
        answers_while_down=dict(load.summary(down)),
        slowest_answer_while_down_s=round(max(a.seconds for a in down), 3),
        pg_start_s=round(back_at - restarted_at, 2),
        recovery_after_restart_s=round(recovered_at - restarted_at, 2),
    )
    assert violations == {}
