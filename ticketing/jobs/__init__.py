"""Background jobs on Huey.

Three queues, each its own Huey instance with its own consumer (``ticketing_worker INI --queue
NAME``): ``default`` (10 workers; plugins' jobs, such as webhook deliveries), ``emails`` (5) and
``scheduled`` (2, and the periodic scheduler). Settings:

- ``huey.url``: ``redis://host:port/db`` in production; ``sqlite:///path`` or ``memory://``
  otherwise;
- ``huey.immediate``: run every job inline when it is enqueued (the unit tests);
- ``huey.name``: the prefix of the queues' names (keeps apps sharing one Redis apart);
- ``huey.email_retry_delay_seconds``: the first retry's delay; each retry doubles it.

Jobs take ids, never objects, and each runs in a transaction of its own with the same session
factory and adapters as requests. Emails are enqueued only after the transaction that owes them
commits; a sweep every minute re-enqueues any whose job went missing.
"""

import logging
import time
from urllib.parse import urlparse

import sqlalchemy
from huey import MemoryHuey, RedisHuey, SqliteHuey
from huey import signals as huey_signals
from pyramid.exceptions import ConfigurationError

from ticketing.domain.outbox import DISPATCH_AFTER_COMMIT
from ticketing.settings import as_bool, as_int

from .tasks import register_tasks

log = logging.getLogger(__name__)

#: queue name -> how many jobs its consumer runs at once
QUEUES = {"default": 10, "emails": 5, "scheduled": 2}


def build_huey(name, settings):
    """The queue ``name``. Its tasks' return values are not kept: nothing reads them, and Huey
    would keep each in the queue's storage (a Redis hash) until read, i.e. for ever. Only the
    immediate mode of the unit tests, whose storage is in memory and dies with the test, keeps
    them for the tests to read."""
    if as_bool(settings, "huey.immediate", False):
        return MemoryHuey(name, immediate=True)
    url = settings.get("huey.url", "memory://")
    scheme = urlparse(url).scheme
    if scheme in ("redis", "rediss"):
        return RedisHuey(name, url=url, results=False)
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        if not path:
            raise ConfigurationError(f"huey.url = {url!r} names no file")
        return SqliteHuey(name, filename=path, results=False)
    if scheme == "memory":
        return MemoryHuey(name, results=False)
    raise ConfigurationError(f"huey.url = {url!r}: use redis://, sqlite:/// or memory://")


class Jobs:
    """The app's job queues and the tasks registered on them."""

    def __init__(self, registry, settings):
        prefix = settings.get("huey.name", "ticketing")
        self.hueys = {queue: build_huey(f"{prefix}.{queue}", settings) for queue in QUEUES}
        self.email_retry_delay = as_int(settings, "huey.email_retry_delay_seconds", 10)
        self.tasks = register_tasks(self, registry)
        for huey in self.hueys.values():
            install_telemetry(huey)

    def send_email(self, email_id):
        # When it was queued: its job may find the email sent since, in another job's batch.
        return self.tasks.send_email(str(email_id), time.time())

    def dispatch_after_commit(self, session):
        """SQLAlchemy ``after_commit`` hook: enqueue the emails the transaction recorded."""
        for email_id in session.info.pop(DISPATCH_AFTER_COMMIT, ()):
            try:
                self.send_email(email_id)
            except Exception:
                # The email is safe in the outbox; the sweep will enqueue it again.
                log.exception("could not enqueue email %s; the outbox sweep will retry", email_id)

    def consumer(self, queue):
        """A consumer for ``queue``; only the scheduled queue's runs the periodic jobs."""
        return self.hueys[queue].create_consumer(
            workers=QUEUES[queue], worker_type="thread", periodic=queue == "scheduled"
        )


def forget_dispatch(session, *args):
    session.info.pop(DISPATCH_AFTER_COMMIT, None)


def install_telemetry(huey):
    """One log line per finished or failed job, with its duration and attempt."""
    started = {}

    @huey.signal(huey_signals.SIGNAL_EXECUTING)
    def executing(signal, task):
        started[task.id] = time.monotonic()

    @huey.signal(huey_signals.SIGNAL_COMPLETE)
    def complete(signal, task):
        log.info("[huey] completed %s in %dms", task.name, _elapsed_ms(started, task))

    @huey.signal(huey_signals.SIGNAL_ERROR)
    def error(signal, task, exc=None):
        log.warning(
            "[huey] failed %s in %dms, attempt %d, %d retries left: %r",
            task.name,
            _elapsed_ms(started, task),
            _attempt(task),
            task.retries,
            exc,
        )


def _elapsed_ms(started, task):
    begun = started.pop(task.id, None)
    return 0 if begun is None else round((time.monotonic() - begun) * 1000)


def _attempt(task):
    configured = getattr(task, "default_retries", task.retries) or 0
    return configured - task.retries + 1


def includeme(config):
    jobs = Jobs(config.registry, config.get_settings())
    config.registry["jobs"] = jobs
    session_factory = config.registry["dbsession_factory"]
    sqlalchemy.event.listen(session_factory, "after_commit", jobs.dispatch_after_commit)
    sqlalchemy.event.listen(session_factory, "after_rollback", forget_dispatch)
    config.include(".waiting_list")
