"""Profile the purchase path in-process: N sequential purchases through the whole WSGI stack on
PostgreSQL, printing purchases/s and (with --profile) a pyinstrument report.

    .venv/bin/python bench/profile_purchase.py [--count 500] [--profile]

Needs PostgreSQL at TEST_DATABASE_URL's server (default 127.0.0.1:5432); creates and drops a
database of its own.
"""

import argparse
import os
import time
import uuid

import sqlalchemy as sa
from webtest import TestApp

from ticketing import main
from ticketing.migrations import upgrade_to_head
from ticketing.models import get_engine, normalize_database_url

SERVER = normalize_database_url(
    os.environ.get("TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres")
)


def main_(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="a pyinstrument report (wall time)")
    parser.add_argument(
        "--cpu-profile",
        type=int,
        metavar="N",
        help="the N functions that spend most CPU themselves (cProfile on process time): under "
        "concurrency the server is CPU-bound, so CPU, not wall time, says what a purchase costs",
    )
    args = parser.parse_args(argv)

    name = f"ticketing_profile_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        sa.make_url(SERVER).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    engine = get_engine({"sqlalchemy.url": url})
    try:
        upgrade_to_head(engine)
        app = TestApp(
            main(
                {},
                **{
                    "sqlalchemy.url": url,
                    "dbengine": engine,
                    "ticketing.require_api_key": "false",
                    "ticketing.ticket_secret": "bench-only-ticket-secret",
                    "ratelimit.enabled": "false",
                },
            )
        )
        event = app.post_json(
            "/api/events",
            {
                "event": {
                    "name": "Profile",
                    "venue": "Hall",
                    "date": "2099-01-01T00:00:00Z",
                    "ticket_price": "10.00",
                    "total_tickets": args.count * 2,
                }
            },
        ).json["data"]
        app.post(f"/api/events/{event['id']}/publish")

        def run():
            for number in range(args.count):
                app.post_json(
                    f"/api/events/{event['id']}/purchase",
                    {
                        "order": {
                            "customer_email": "p@example.com",
                            "customer_name": "P",
                            "quantity": 1,
                            "idempotency_key": f"profile-{number}",
                        }
                    },
                    status=201,
                )

        profiler = cpu_profiler = None
        if args.cpu_profile:
            import cProfile

            cpu_profiler = cProfile.Profile(time.process_time)
            cpu_profiler.enable()
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler()
            profiler.start()
        started, started_cpu = time.perf_counter(), time.process_time()
        run()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
        if cpu_profiler:
            import pstats

            cpu_profiler.disable()
            pstats.Stats(cpu_profiler).sort_stats("tottime").print_stats(args.cpu_profile)
        if profiler:
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False))
        print(
            f"{args.count} sequential purchases in {elapsed:.2f}s: "
            f"{args.count / elapsed:.0f}/s, {elapsed / args.count * 1000:.2f} ms each, "
            f"{cpu / args.count * 1000:.2f} ms of this process's CPU each (client included)"
        )
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main_()
