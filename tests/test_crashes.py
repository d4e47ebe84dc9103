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
    """Do what the scheduler would (settle, sweep, and sweep again each "minute" until every
    email is out), wait for the emails, read back the books."""
    settled = operator.settle()
    wait_for_emails(stack.database_url, mailbox, sweep=operator.sweep_outbox)
    violations, figures = books(stack.database_url, stack.ledger_path, mailbox)
    figures["settled"] = [(r.confirmed, r.failed, r.unresolved) for r in settled if r != type(r)()]
    return violations, figures


def test_postgresql_killed_mid_load_answers_503_fast_and_recovers(stack, postgres, mailbox):
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
        recovered_at = min(a.ended for a in load.between(back_at, float("inf")) if a.status == 201)
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


def test_redis_killed_mid_load_loses_no_sale_and_no_email(stack, redis_server, mailbox):
    handler, _ = mailbox
    (host,), operator = stack()
    event = create_event(operator.registry["dbengine"], total_tickets=100_000)

    with Load([host.base], event.id) as load:
        time.sleep(LOAD_BEFORE)
        killed_at = time.monotonic()
        redis_server.kill()
        time.sleep(1)
        health_while_down = request("GET", f"{host.base}/api/health")
        time.sleep(4)
        restarted_at = time.monotonic()
        redis_server.start()  # empty: the jobs queued before the crash are gone
        time.sleep(LOAD_AFTER)

    down = load.between(killed_at, restarted_at)
    purchases_down = [a for a in down if a.kind == "purchase"]
    # Purchases go on without Redis: rate limits fail open, emails wait in the outbox.
    assert purchases_down and {a.status for a in purchases_down} == {201}
    assert {a.status for a in load.answers} <= {200, 201}
    assert max(a.seconds for a in down) < 2
    status, body, _, _ = health_while_down
    assert (status, body["status"], body["checks"]) == (
        200,
        "degraded",
        {"database": "ok", "redis": "degraded"},
    )
    log = host.server_log.read_text()
    # A line or so per outage and gunicorn worker (threads may race to it), not one per request.
    assert 1 <= log.count("rate limit storage unavailable") <= 6 < len(down)
    assert 1 <= log.count("rate limit storage answers again") <= 6
    assert host.unhandled_errors() == 0

    violations, figures = settle_and_check(operator, stack, handler)
    report(
        "Redis SIGKILLed mid-load, restarted 5 s later",
        load,
        figures,
        answers_while_down=dict(load.summary(down)),
        slowest_answer_while_down_s=round(max(a.seconds for a in down), 3),
        health_while_down=body,
        rate_limit_log_lines=log.count("rate limit storage unavailable"),
    )
    assert violations == {}


def test_a_gateway_timing_out_on_a_fifth_of_charges_settles_every_order_once(stack, mailbox):
    handler, _ = mailbox
    # One charge in five takes the money and loses the answer; one look-up in five times out
    # too, so that some purchases cannot tell and are left to the stale-order sweep.
    (host,), operator = stack(
        **{
            "payments.mock.failure_mode": "timeout_after_charge",
            "payments.mock.lookup_failure_mode": "timeout",
            "payments.mock.failure_rate": "0.2",
        }
    )
    event = create_event(operator.registry["dbengine"], total_tickets=100_000)

    with Load([host.base], event.id) as load:
        time.sleep(8)

    assert {(a.status, a.code) for a in load.answers} <= {
        (201, None),
        (200, None),
        (503, "payment_unavailable"),
    }
    unanswered = [a for a in load.answers if a.status == 503]
    assert unanswered, "no purchase was left to the sweep"
    assert host.unhandled_errors() == 0

    violations, figures = settle_and_check(operator, stack, handler)
    report("gateway timing out on 20% of charges and look-ups", load, figures)
    assert violations == {}


def test_a_deploy_sigterm_lets_purchases_in_flight_finish(stack, mailbox):
    handler, _ = mailbox
    # A slow gateway, so that purchases are in flight when the signal arrives.
    (host,), operator = stack(**{"payments.mock.latency_ms": "300"})
    event = create_event(operator.registry["dbengine"], total_tickets=100_000)

    with Load([host.base], event.id, buyers=8) as load:
        time.sleep(LOAD_BEFORE)
        in_flight_from = time.monotonic() - 0.3
        signalled_at = time.monotonic()
        host.server.terminate()
        host.server.wait(timeout=40)
        stopped_at = time.monotonic()
        time.sleep(1)

    # Every request sent before the signal got its answer; none failed on the server's side.
    before = load.between(0, signalled_at)
    assert before and all(a.status in (200, 201) for a in before), load.summary(before)
    in_flight = load.between(in_flight_from, signalled_at)
    assert in_flight, "no purchase was in flight at the signal"
    # After it: an answer, or a connection refused (or reset before any answer, by a worker
    # closing its listening socket); never a hang, never a 5xx.
    after = load.between(signalled_at, float("inf"))
    assert {a.status or a.error for a in after} <= {200, 201, "refused", "reset"}
    assert host.server.returncode == 0

    violations, figures = settle_and_check(operator, stack, handler)
    report(
        "gunicorn SIGTERM mid-load (a deploy)",
        load,
        figures,
        in_flight_at_signal=dict(load.summary(in_flight)),
        after_signal=dict(load.summary(after)),
        graceful_stop_s=round(stopped_at - signalled_at, 2),
    )
    assert violations == {}


def test_two_hosts_over_one_database_and_one_redis(stack, mailbox):
    handler, _ = mailbox
    hosts, operator = stack(count=2)
    event = create_event(operator.registry["dbengine"], total_tickets=100_000)

    with Load([host.base for host in hosts], event.id, buyers=8) as load:
        time.sleep(6)

    # The rate limits are shared: one client, six purchases on each host, ten allowed a minute.
    client = {"X-Forwarded-For": "192.0.2.77"}
    statuses = []
    for number in range(12):
        body = {
            "order": {
                "customer_email": "one@example.com",
                "customer_name": "One Client",
                "quantity": 1,
                "idempotency_key": f"one-client-{number}",
            }
        }
        url = f"{hosts[number % 2].base}/api/events/{event.id}/purchase"
        statuses.append(request("POST", url, body, client)[0])
    assert sorted(statuses) == [201] * 10 + [429] * 2

    assert {a.status for a in load.answers} <= {200, 201}
    assert all(host.unhandled_errors() == 0 for host in hosts)
    violations, figures = settle_and_check(operator, stack, handler)
    per_host = {
        host.base: sum(1 for a in load.answers if a.status == 201 and a.base == host.base)
        for host in hosts
    }
    report("two hosts, one PostgreSQL, one Redis", load, figures, purchases_per_host=per_host)
    assert violations == {}
