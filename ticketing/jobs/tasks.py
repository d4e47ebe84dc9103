"""The jobs themselves. They are registered on the app's Huey instances when the app is
configured, as closures over its registry: no global app state."""

import collections
import contextlib
import datetime as dt
import threading
import time
import types
import uuid

import transaction
from huey import crontab
from pyramid.exceptions import ConfigurationError

from ticketing.domain import events, holds, orders, outbox
from ticketing.domain.errors import EmailDeliveryError
from ticketing.interfaces import IEmailSender, IPaymentGateway
from ticketing.models import get_tm_session
from ticketing.models.types import utcnow
from ticketing.settings import as_bool, as_int, hold_duration

EMAIL_RETRIES = 5
#: emails one job sends at most, on one connection and in one transaction
DEFAULT_EMAIL_BATCH_SIZE = 50
#: how long a job waits for more emails to come due before it sends its batch
DEFAULT_EMAIL_BATCH_GATHER_MS = 0
EMAIL_RETRY_BACKOFF = 2
COMPLETION_RETRIES = 3
COMPLETION_RETRY_DELAY = 60
DAILY_AT_MIDNIGHT_UTC = crontab(minute="0", hour="0")
EVERY_MINUTE = crontab(minute="*")
DEFAULT_FROM_ADDRESS = "Tickets <tickets@localhost>"


@contextlib.contextmanager
def job_transaction(session_factory):
    """A transaction of the job's own: committed if the block ends normally, else aborted."""
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    dbsession = get_tm_session(session_factory, tm)
    try:
        yield dbsession, tm
    except BaseException:
        tm.abort()
        raise
    tm.commit()


def email_retry_delays(first_delay, retries=EMAIL_RETRIES, backoff=EMAIL_RETRY_BACKOFF):
    """The waits before each retry of an email: ``first_delay``, then doubling."""
    return [first_delay * backoff**attempt for attempt in range(retries)]


class EmailBatches:
    """How this process's email jobs share the work. A job waits ``gather_seconds`` before it
    sends, so that its batch carries the emails that came due meanwhile, whose own jobs then
    find them sent: under a sale, one query, one transaction and one SMTP exchange after
    another carry dozens of emails instead of one, and an email waits that long more.

    Remembers when it last sent (or gave up on) each of the last ``size`` emails, so that a job
    of such an email queued before that costs no database round trip (a job of another process
    finds it sent in the database instead; a job queued later, an organiser's resend, is not
    one of those)."""

    def __init__(self, gather_seconds=0.0, size=100_000):
        self.gather_seconds = gather_seconds
        self._settled_at = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def settled_since(self, email_id, queued_at):
        """Whether ``email_id`` was sent or given up on here after ``queued_at`` (Unix time)."""
        settled_at = self._settled_at.get(email_id)
        return settled_at is not None and queued_at is not None and queued_at <= settled_at

    def settled(self, email_ids, at):
        with self._lock:
            for email_id in email_ids:
                self._settled_at[email_id] = at
                self._settled_at.move_to_end(email_id)
            while len(self._settled_at) > self._size:
                self._settled_at.popitem(last=False)


def register_tasks(jobs, registry):
    emails = jobs.hueys["emails"]
    scheduled = jobs.hueys["scheduled"]
    session_factory = registry["dbsession_factory"]
    from_address = registry.settings.get("mail.default_sender") or DEFAULT_FROM_ADDRESS
    attach_pdf = as_bool(registry.settings, "mail.attach_tickets_pdf", True)

    batch_size = as_int(registry.settings, "huey.email_batch_size", DEFAULT_EMAIL_BATCH_SIZE)
    if batch_size < 1:
        raise ConfigurationError("setting 'huey.email_batch_size' must be 1 or more")
    gather_ms = as_int(
        registry.settings, "huey.email_batch_gather_ms", DEFAULT_EMAIL_BATCH_GATHER_MS
    )
    if gather_ms < 0:
        raise ConfigurationError("setting 'huey.email_batch_gather_ms' must be 0 or more")
    batches = EmailBatches(gather_ms / 1000)

    @emails.task(
        retries=EMAIL_RETRIES,
        retry_delay=jobs.email_retry_delay,
        retry_backoff=EMAIL_RETRY_BACKOFF,
        context=True,
        name="send_order_email",
    )
    def send_email(email_id, queued_at=None, task=None):
        retry_in = dt.timedelta(seconds=task.retry_delay if task else jobs.email_retry_delay)
        if batches.settled_since(email_id, queued_at):
            # Sent (or given up on) in the batch of another job of this process meanwhile.
            return "skipped"
        if batches.gather_seconds:
            time.sleep(batches.gather_seconds)
            if batches.settled_since(email_id, queued_at):
                return "skipped"
        with job_transaction(session_factory) as (dbsession, _):
            deliveries = outbox.deliver(
                dbsession,
                registry.getUtility(IEmailSender),
                uuid.UUID(email_id),
                now=utcnow(),
                from_address=from_address,
                retry_in=retry_in,
                ticket_codes=registry["ticket_codes"],
                attach_pdf=attach_pdf,
                batch_size=batch_size,
            )
        batches.settled(
            (str(each.email_id) for each in deliveries if each.outcome in ("sent", "failed")),
            at=time.time(),
        )
        own = deliveries[0]
        if own.outcome == "retry":
            # Raised after the attempt is recorded, so that Huey retries with its backoff.
            raise EmailDeliveryError(own.error)
        return own.outcome

    @scheduled.periodic_task(
        DAILY_AT_MIDNIGHT_UTC,
        retries=COMPLETION_RETRIES,
        retry_delay=COMPLETION_RETRY_DELAY,
        name="complete_past_events",
    )
    def complete_past_events():
        with job_transaction(session_factory) as (dbsession, tm):
            return events.complete_past_events(dbsession, tm, now=utcnow())

    @scheduled.periodic_task(EVERY_MINUTE, name="sweep_outbox")
    def sweep_outbox():
        with job_transaction(session_factory) as (dbsession, _):
            return len(outbox.overdue_emails(dbsession, now=utcnow()))

    @scheduled.periodic_task(EVERY_MINUTE, name="settle_stale_orders")
    def settle_stale_orders():
        with job_transaction(session_factory) as (dbsession, tm):
            report = orders.settle_stale_pending_orders(
                dbsession,
                tm,
                registry.getUtility(IPaymentGateway),
                now=utcnow(),
                ticket_codes=registry["ticket_codes"],
            )
        return (report.confirmed, report.failed, report.unresolved)

    @scheduled.periodic_task(EVERY_MINUTE, name="expire_holds")
    def expire_holds():
        with job_transaction(session_factory) as (dbsession, tm):
            report = holds.expire_holds(
                dbsession,
                tm,
                registry.getUtility(IPaymentGateway),
                now=utcnow(),
                hold_for=hold_duration(registry.settings),
                ticket_codes=registry["ticket_codes"],
            )
        return (report.expired, report.paid_meanwhile)

    return types.SimpleNamespace(
        expire_holds=expire_holds,
        send_email=send_email,
        complete_past_events=complete_past_events,
        sweep_outbox=sweep_outbox,
        settle_stale_orders=settle_stale_orders,
    )
