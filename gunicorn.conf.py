"""gunicorn settings for production.ini (`gunicorn --paste production.ini` reads this file from the
working directory). Each worker holds its own database pool (sqlalchemy.pool_size in the ini)."""

import os

bind = os.environ.get("BIND", "0.0.0.0:6543")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads let a worker keep serving while a request waits on the payment gateway.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 30
graceful_timeout = 20
keepalive = 5
