"""gunicorn settings for production.ini (`gunicorn --paste production.ini` reads this file from the
working directory). Each worker holds its own database pool (sqlalchemy.pool_size in the ini)."""

import os

bind = os.environ.get("BIND", "0.0.0.0:6543")
# One worker per core (each runs Python on one core at a time, under its GIL).
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads let a worker keep serving while requests wait on the payment gateway: a purchase spends
# the gateway's latency asleep, holding a thread but no database connection. workers x threads
# bounds the purchases in flight, so 2 x 32 keeps 64 buyers going when each payment takes 200 ms
# (`make bench`: 8 threads per worker throttled that case to 1/3 of the 0 ms rate). More threads
# cost little, since only sqlalchemy.pool_size of them at a time get a connection.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
timeout = 30
graceful_timeout = 20
keepalive = 5
