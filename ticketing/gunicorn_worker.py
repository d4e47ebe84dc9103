"""gunicorn's gthread worker, telling the application how long each request has waited for a thread.

gthread hands every readable connection to a pool of ``threads`` threads; past that, requests wait
in the pool's queue, where the application cannot see them. In a burst that queue is where the time
goes: admission control (``ticketing.admission``) would otherwise count its deadline from when a
thread picked the request up, and buyers it let in would already have waited seconds. This worker
notes when each request joined the queue and puts it in the WSGI environ as ``QUEUED_AT`` (on
``time.monotonic``'s clock).

gunicorn.conf.py selects it: ``worker_class = "ticketing.gunicorn_worker.ThreadWorker"``.
"""

import threading
import time

from gunicorn.workers import gthread

#: environ key: ``time.monotonic()`` when the request was handed to the worker's thread pool
QUEUED_AT = "ticketing.queued_at"


class ThreadWorker(gthread.ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The pool thread that handles a connection also calls the application for it.
        self._handling = threading.local()

    def enqueue_req(self, conn):
        conn.queued_at = time.monotonic()
        super().enqueue_req(conn)

    def handle(self, conn):
        self._handling.queued_at = conn.queued_at
        return super().handle(conn)

    def load_wsgi(self):
        super().load_wsgi()
        application = self.wsgi

        def noting_the_queue(environ, start_response):
            environ[QUEUED_AT] = self._handling.queued_at
            return application(environ, start_response)

        self.wsgi = noting_the_queue
