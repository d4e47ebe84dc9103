"""gunicorn settings for production.ini (`gunicorn --paste production.ini` reads this file from the
working directory). Each worker holds its own database pool (sqlalchemy.pool_size in the ini)."""

import os

bind = os.environ.get("BIND", "0.0.0.0:6543")
# One worker per core (each runs Python on one core at a time, under its GIL).
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads let a worker keep serving while requests wait on the payment gateway: a purchase spends
# the gateway's latency asleep, holding a thread but no database connection. workers x threads
# bounds the purchases in flight: at the rate 2 cores sell a hot event (~480 orders/s,
# `make bench`), a 200 ms gateway keeps ~100 purchases waiting on it, and 2 x 80 leaves the rest
# for the server to work on (the bench's hot-slow-fed row: 0.86 of the 0 ms rate; at 2 x 32 the
# buyers past 64 only queued). Idle threads cost little memory, and only sqlalchemy.pool_size of
# them at a time get a connection.
# gthread, noting how long each request waited for a thread (admission control counts it).
worker_class = "ticketing.gunicorn_worker.ThreadWorker"
threads = int(os.environ.get("GUNICORN_THREADS", "80"))
# Access-log lines only when something writes them (--access-logfile -); see the module.
logger_class = "ticketing.gunicorn_logger.Logger"
timeout = 30
graceful_timeout = 20
# A buyer that admission control turns away is told to come back within 30 s (Retry-After); its
# connection stays open until then instead of being closed and made again, which costs the worker
# an accept and lands the buyer on a worker that did not give it its turn (`make bench`, burst
# row: 503s 2,240 -> 1,300 and orders/s +12% against keepalive 5). An idle connection costs
# gthread a file descriptor, not a thread; behind a load balancer, keep this above the balancer's
# idle timeout.
keepalive = 30
