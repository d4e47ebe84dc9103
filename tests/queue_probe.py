"""A WSGI application for tests of ticketing.gunicorn_worker: it takes its time, and answers how
long the request waited for a thread."""

import json
import time

from ticketing.gunicorn_worker import QUEUED_AT


def application(environ, start_response):
    waited = time.monotonic() - environ[QUEUED_AT]
    time.sleep(0.4)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"waited": waited}).encode()]
