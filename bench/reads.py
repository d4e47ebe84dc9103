"""Read benchmark (`make bench-reads`): do the list endpoints stay as fast with a million orders?

    .venv/bin/python bench/reads.py [--sizes 1000,1000000] [--requests 300] [--events 1000]

For each size the bench creates a PostgreSQL database, migrates it with
``initialize_ticketing_db``, bulk-loads that many orders with one ``INSERT ... SELECT
generate_series`` (over ``--events`` published events, one second apart; every tenth order is
for the first event, whose pages the event filter walks), analyses it, serves the app with
``gunicorn --paste`` (bench/bench.ini over production.ini, which switches the organiser key off
so ``GET /api/orders`` needs none) and times sequential requests on one keep-alive connection:
the p50 of each endpoint, first page and a page deep in the cursor (90% of the way through).
The target: p50 with 1,000,000 orders <= 1.5 x p50 with 1,000 (keyset
pagination on indexes; no OFFSET scan, no COUNT(*) per page).
"""

import argparse
import base64
import contextlib
import http.client
import json
import os
import sys
import time

import benchlib as b
import sqlalchemy as sa

TARGET_RATIO = 1.5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,1000000", help="orders in the database")
    parser.add_argument("--events", type=int, default=1000, help="events the orders belong to")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per endpoint")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests per endpoint")
    parser.add_argument("--quiet-wait", type=float, default=120)
    parser.add_argument("--keep", action="store_true", help="keep databases and scratch files")
    parser.add_argument("--no-save", action="store_true")
    return parser.parse_args(argv)


LOAD_EVENTS = """
INSERT INTO events (id, name, venue, date, currency, total_tickets, available_tickets, status,
                    created_at, updated_at)
SELECT gen_random_uuid(), 'Event ' || n, 'Arena ' || (n % 50), now() + interval '365 days',
       'USD', 1000000, 1000000, 'published',
       timestamptz '2026-01-01' + n * interval '1 minute',
       timestamptz '2026-01-01' + n * interval '1 minute'
FROM generate_series(1, :events) AS n
"""

LOAD_TICKET_TYPES = """
INSERT INTO ticket_types (id, event_id, name, price_cents, sold, min_per_order, max_per_order,
                          hidden, position, created_at, updated_at)
SELECT gen_random_uuid(), id, 'General admission', 5000, 0, 1, 10, false, 0, created_at,
       created_at
FROM events
"""

LOAD_ORDERS = """
WITH e AS (SELECT array_agg(id ORDER BY created_at) AS ids FROM events)
INSERT INTO orders (id, event_id, customer_email, customer_name, quantity, unit_price_cents,
                    total_amount_cents, currency, status, idempotency_key, request_fingerprint,
                    payment_reference, created_at, updated_at, confirmed_at)
SELECT gen_random_uuid(),
       -- every tenth order is for the first event, so that it has pages to walk at any size
       CASE WHEN n % 10 = 0 THEN e.ids[1] ELSE e.ids[1 + n % array_length(e.ids, 1)] END,
       'buyer' || (n % 20000) || '@example.com', 'Buyer ' || (n % 20000),
       1 + n % 4, 5000, 5000 * (1 + n % 4), 'USD', 'confirmed',
       'bulk-' || n, NULL, 'ch_bulk_' || n,
       timestamptz '2026-02-01' + n * interval '1 second',
       timestamptz '2026-02-01' + n * interval '1 second',
       timestamptz '2026-02-01' + n * interval '1 second'
FROM e, generate_series(1, :orders) AS n
"""

LOAD_ORDER_ITEMS = """
INSERT INTO order_items (order_id, ticket_type_id, line, name, quantity, unit_price_cents,
                         subtotal_cents)
SELECT o.id, t.id, 1, t.name, o.quantity, o.unit_price_cents, o.total_amount_cents
FROM orders o JOIN ticket_types t ON t.event_id = o.event_id
"""

BALANCE_EVENTS = """
WITH s AS (SELECT event_id, sum(quantity) AS sold FROM orders GROUP BY event_id),
types AS (UPDATE ticket_types SET sold = s.sold FROM s WHERE ticket_types.event_id = s.event_id)
UPDATE events SET available_tickets = total_tickets - s.sold
FROM s
WHERE s.event_id = events.id
"""


def load(url, events, orders):
    engine = sa.create_engine(url)
    try:
        started = time.monotonic()
        with engine.begin() as connection:
            connection.execute(sa.text(LOAD_EVENTS), {"events": events})
            connection.execute(sa.text(LOAD_TICKET_TYPES))
            connection.execute(sa.text(LOAD_ORDERS), {"orders": orders})
            connection.execute(sa.text(LOAD_ORDER_ITEMS))
            connection.execute(sa.text(BALANCE_EVENTS))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM ANALYZE"))
        loaded = time.monotonic() - started
        with engine.connect() as connection:
            deep = connection.execute(
                sa.text(
                    "SELECT created_at, id FROM orders ORDER BY created_at, id OFFSET :at LIMIT 1"
                ),
                {"at": int(orders * 0.9)},
            ).one()
            event = connection.execute(
                sa.text("SELECT id FROM events ORDER BY created_at, id LIMIT 1")
            ).scalar_one()
            of_event = connection.scalar(
                sa.text("SELECT count(*) FROM orders WHERE event_id = :e"), {"e": event}
            )
            deep_event = connection.execute(
                sa.text(
                    "SELECT created_at, id FROM orders WHERE event_id = :e"
                    " ORDER BY created_at, id OFFSET :at LIMIT 1"
                ),
                {"e": event, "at": int(of_event * 0.9)},
            ).one()
            size = connection.scalar(
                sa.text("SELECT pg_size_pretty(pg_database_size(current_database()))")
            )
    finally:
        engine.dispose()
    return {
        "load_s": round(loaded, 1),
        "database_size": size,
        "deep_cursor": cursor(*deep),
        "event_id": str(event),
        "deep_event_cursor": cursor(*deep_event),
    }


def cursor(created_at, row_id):
    """The API's opaque cursor (ticketing.pagination's format) for a row."""
    from ticketing.pagination import encode_cursor

    class Row:
        pass

    row = Row()
    row.created_at, row.id = created_at, row_id
    encoded = encode_cursor(row)
    base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))  # it round-trips
    return encoded


def endpoints(data):
    return {
        "GET /api/events": "/api/events",
        "GET /api/orders (first page)": "/api/orders",
        "GET /api/orders (deep page)": f"/api/orders?cursor={data['deep_cursor']}",
        "GET /api/orders?event_id (first page)": f"/api/orders?event_id={data['event_id']}",
        "GET /api/orders?event_id (deep page)": (
            f"/api/orders?event_id={data['event_id']}&cursor={data['deep_event_cursor']}"
        ),
    }


def time_endpoint(port, path, count, warmup):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        timings = []
        for number in range(warmup + count):
            started = time.perf_counter()
            connection.request("GET", path, headers={"Accept": "application/json"})
            response = connection.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
            if number >= warmup:
                timings.append(elapsed * 1000)
        items = len(json.loads(body)["data"])
    finally:
        connection.close()
    return {
        "p50_ms": round(b.percentile(timings, 0.5), 2),
        "p95_ms": round(b.percentile(timings, 0.95), 2),
        "items": items,
    }


def measure_size(args, orders, run, databases, workdir):
    name = b.db_name("bench", run, "reads", orders)
    url = databases.create(name)
    server = None
    try:
        ini = b.scenario_ini(
            workdir,
            f"reads-{orders}",
            **{"payments.mock.ledger_url": "", "huey.name": f"bench-{run}-reads"},
        )
        b.migrate(ini, url)
        b.log(f"loading {orders:,} orders over {args.events:,} events")
        data = load(url, args.events, orders)
        b.log(f"loaded in {data['load_s']} s ({data['database_size']})")
        server = b.Gunicorn(ini, url, workdir / f"reads-{orders}-gunicorn.log").start()
        data["quiet_before"] = b.wait_for_quiet(args.quiet_wait)
        data["endpoints"] = {
            label: time_endpoint(server.port, path, args.requests, args.warmup)
            for label, path in endpoints(data).items()
        }
        return data
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            databases.drop(name)


def main(argv=None):
    args = parse_args(argv)
    b.raise_on_termination()
    run = b.run_id()
    sizes = [int(size) for size in args.sizes.split(",")]
    results = {}
    with contextlib.ExitStack() as stack:
        databases = b.Databases(keep=args.keep)
        stack.callback(databases.close)
        workdir = b.temporary_directory(stack, args.keep)
        machine = b.machine_info(databases)
        for orders in sizes:
            results[orders] = measure_size(args, orders, run, databases, workdir)

    small, large = min(sizes), max(sizes)
    print()
    print(
        f"Reads: p50 of {args.requests} sequential requests on one keep-alive connection | "
        f"{machine['cores']} cores ({machine['cpu']}), PostgreSQL {machine['postgresql']}"
    )
    header = f"{'endpoint':<40}" + "".join(f"{f'{size:,} orders':>20}" for size in sizes)
    header += f"{'ratio':>8}  target <= {TARGET_RATIO}"
    print(header)
    print("-" * len(header))
    ratios = {}
    for label in results[small]["endpoints"]:
        cells = "".join(
            f"{results[size]['endpoints'][label]['p50_ms']:>17.2f} ms" for size in sizes
        )
        ratio = (
            results[large]["endpoints"][label]["p50_ms"]
            / results[small]["endpoints"][label]["p50_ms"]
        )
        ratios[label] = round(ratio, 2)
        print(f"{label:<40}{cells}{ratio:>8.2f}  {'met' if ratio <= TARGET_RATIO else 'NOT met'}")
    worst = max(ratios.values())
    print(f"\nworst ratio {worst:.2f} ({'met' if worst <= TARGET_RATIO else 'NOT met'})")
    if not args.no_save:
        path = b.write_results(
            "reads",
            {
                "benchmark": "reads",
                "run": run,
                "machine": machine,
                "arguments": vars(args),
                "results": results,
                "ratios": ratios,
                "target": TARGET_RATIO,
            },
        )
        print(f"written to {path.relative_to(b.REPO)}")
    return 0 if worst <= TARGET_RATIO else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
