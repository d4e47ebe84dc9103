"""The webhooks plugin's jobs, on the app's Huey queues: fan-outs and deliveries on ``default``,
the sweep on ``scheduled`` (every minute, as the email outbox's)."""

import datetime as dt
import math
import types
import uuid

from huey import crontab

from ticketing.jobs.tasks import job_transaction
from ticketing.models.types import utcnow

from . import domain
from .sending import post

EVERY_MINUTE = crontab(minute="*")
RETRY_BACKOFF = 2


class DeliveryFailed(Exception):
    """Raised after a failed attempt is recorded, so that Huey retries with its backoff."""


def retries_for(window, first_delay, backoff=RETRY_BACKOFF):
    """How many retries, ``first_delay`` then growing by ``backoff``, it takes to cover
    ``window``: Huey's schedule then spans it, and the window's end decides when to stop."""
    seconds = window.total_seconds()
    return max(1, math.ceil(math.log(seconds / first_delay * (backoff - 1) + 1, backoff)))


def retry_delays(first_delay, retries, backoff=RETRY_BACKOFF):
    """The waits before each retry, as Huey makes them."""
    return [first_delay * backoff**attempt for attempt in range(retries)]


def register_tasks(jobs, registry, options):
    default = jobs.hueys["default"]
    scheduled = jobs.hueys["scheduled"]
    session_factory = registry["dbsession_factory"]
    lease = dt.timedelta(seconds=options.timeout_seconds * 3)

    @default.task(name="fan_out_webhook_event")
    def fan_out(event_id):
        with job_transaction(session_factory) as (dbsession, _):
            owed = domain.fan_out(dbsession, uuid.UUID(event_id), now=utcnow())
        for delivery_id in owed:
            deliver(str(delivery_id))
        return None

    @default.task(
        retries=retries_for(options.window, options.retry_delay_seconds),
        retry_delay=options.retry_delay_seconds,
        retry_backoff=RETRY_BACKOFF,
        context=True,
        name="deliver_webhook",
    )
    def deliver(delivery_id, task=None):
        retry_in = dt.timedelta(seconds=task.retry_delay if task else options.retry_delay_seconds)
        with job_transaction(session_factory) as (dbsession, _):
            attempt = domain.begin_attempt(
                dbsession, uuid.UUID(delivery_id), now=utcnow(), lease=lease
            )
        if attempt is None:
            return None
        # No transaction is open while the endpoint takes its time.
        answer = post(
            options.guard(), attempt.url, attempt.body, attempt.headers,
            timeout=options.timeout_seconds, ca_certs=options.ca_certs,
        )  # fmt: skip
        with job_transaction(session_factory) as (dbsession, _):
            outcome = domain.finish_attempt(
                dbsession, attempt, answer, now=utcnow(), retry_in=retry_in, window=options.window
            )
        if outcome == "retry":
            raise DeliveryFailed(answer.error or f"HTTP {answer.status}")
        return None

    @scheduled.periodic_task(EVERY_MINUTE, name="sweep_webhooks")
    def sweep():
        with job_transaction(session_factory) as (dbsession, _):
            now = utcnow()
            events = domain.unfanned_events(dbsession, now=now, window=options.window)
            deliveries = domain.overdue_deliveries(dbsession, now=now)
        for event_id in events:
            fan_out(str(event_id))
        for delivery_id in deliveries:
            deliver(str(delivery_id))
        return None

    return types.SimpleNamespace(fan_out=fan_out, deliver=deliver, sweep=sweep)
