"""The jobs themselves. They are registered on the app's Huey instances when the app is
configured, as closures over its registry: no global app state."""

import contextlib
import datetime as dt
import types
import uuid

import transaction
from huey import crontab

from ticketing.domain import events, holds, orders, outbox
from ticketing.domain.errors import EmailDeliveryError
from ticketing.interfaces import IEmailSender, IPaymentGateway
from ticketing.models import get_tm_session
from ticketing.models.types import utcnow
from ticketing.settings import hold_duration

EMAIL_RETRIES = 5
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


def register_tasks(jobs, registry):
    emails = jobs.hueys["emails"]
    scheduled = jobs.hueys["scheduled"]
    session_factory = registry["dbsession_factory"]
    from_address = registry.settings.get("mail.default_sender") or DEFAULT_FROM_ADDRESS

    @emails.task(
        retries=EMAIL_RETRIES,
        retry_delay=jobs.email_retry_delay,
        retry_backoff=EMAIL_RETRY_BACKOFF,
        context=True,
        name="send_order_email",
    )
    def send_email(email_id, task=None):
        retry_in = dt.timedelta(seconds=task.retry_delay if task else jobs.email_retry_delay)
        with job_transaction(session_factory) as (dbsession, _):
            delivery = outbox.deliver(
                dbsession,
                registry.getUtility(IEmailSender),
                uuid.UUID(email_id),
                now=utcnow(),
                from_address=from_address,
                retry_in=retry_in,
                ticket_codes=registry["ticket_codes"],
            )
        if delivery.outcome == "retry":
            # Raised after the attempt is recorded, so that Huey retries with its backoff.
            raise EmailDeliveryError(delivery.error)
        return delivery.outcome

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
