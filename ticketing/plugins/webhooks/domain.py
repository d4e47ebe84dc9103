"""Webhooks: endpoints that admins register, and the deliveries of logged domain events to them.

Durability comes from the core's event log (``ticketing.events``): an entry exists exactly for
each change that committed. After the commit a job fans the entry out into one delivery per
webhook that wants its type (:func:`fan_out`; unique per webhook and event), and a job per
delivery sends it (:func:`begin_attempt`, then :func:`finish_attempt`). If a job is lost (the
queue down, a worker killed), the sweep (:func:`unfanned_events`, :func:`overdue_deliveries`)
finds the work again. An attempt is leased while it runs, so two jobs never send the same attempt;
a worker killed mid-attempt lets the lease lapse and the next attempt goes out.
"""

import base64
import dataclasses
import datetime as dt
import json
import secrets

from sqlalchemy import and_, delete, exists, or_, select, update

from ticketing.events import LOGGED_TYPES
from ticketing.models import EventLogEntry
from ticketing.pagination import paginate
from ticketing.representations import timestamp

from .errors import DeliveryNotFound, WebhookDisabled, WebhookNotFound
from .models import DeliveryStatus, Webhook, WebhookDelivery, WebhookFanout
from .sending import signed_headers

#: a logged event or a pending delivery this long without its job is looked for by the sweep
SWEEP_GRACE = dt.timedelta(minutes=1)
#: a duplicate job may run this much before the attempt's time and still take it
EARLY_SLACK = dt.timedelta(seconds=5)
SECRET_BYTES = 32


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One attempt at a delivery, ready to send (see :mod:`.sending`)."""

    delivery_id: object
    number: int
    url: str
    body: str
    headers: dict


def new_secret():
    """A signing secret as Standard Webhooks libraries take it: ``whsec_`` + base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def create_webhook(dbsession, guard, *, url, events, description, now):
    """A new webhook, and its secret (shown to the admin this once)."""
    guard.check_url(url)
    webhook = Webhook(
        url=url,
        events=_known(events),
        description=description,
        secret=new_secret(),
        enabled=True,
        created_at=now,
        updated_at=now,
    )
    dbsession.add(webhook)
    dbsession.flush()
    return webhook


def _known(events):
    # The schema allows only LOGGED_TYPES; keep them once each, in their canonical order.
    return [name for name in LOGGED_TYPES if name in events]


def list_webhooks(dbsession):
    return list(dbsession.scalars(select(Webhook).order_by(Webhook.created_at, Webhook.id)))


def get_webhook(dbsession, webhook_id, *, for_update=False):
    statement = select(Webhook).where(Webhook.id == webhook_id)
    if for_update:
        statement = statement.with_for_update()
    webhook = dbsession.scalar(statement)
    if webhook is None:
        raise WebhookNotFound(f"No webhook has the id {webhook_id}.")
    return webhook


def update_webhook(dbsession, guard, webhook_id, changes, *, now):
    """Change any of ``url``, ``events``, ``description``, ``enabled``: disabling keeps the
    deliveries owed (they wait until it is enabled again); enabling clears the reason it was
    disabled."""
    webhook = get_webhook(dbsession, webhook_id, for_update=True)
    if "url" in changes:
        guard.check_url(changes["url"])
        webhook.url = changes["url"]
    if "events" in changes:
        webhook.events = _known(changes["events"])
    if "description" in changes:
        webhook.description = changes["description"]
    if "enabled" in changes and changes["enabled"] != webhook.enabled:
        if changes["enabled"]:
            webhook.enabled = True
            webhook.disabled_reason = webhook.disabled_at = None
        else:
            _disable(webhook, "disabled by an admin", now)
    webhook.updated_at = now
    dbsession.flush()
    return webhook


def _disable(webhook, reason, now):
    webhook.enabled = False
    webhook.disabled_reason = reason
    webhook.disabled_at = now


def delete_webhook(dbsession, webhook_id):
    """Delete a webhook and its delivery log."""
    webhook = get_webhook(dbsession, webhook_id, for_update=True)
    dbsession.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id))
    dbsession.delete(webhook)
    dbsession.flush()


def rotate_secret(dbsession, webhook_id, *, now, overlap):
    """A new secret; the current one keeps signing beside it for ``overlap`` (receivers switch
    without missing a delivery), then stops. Returns the webhook (its new secret in ``secret``)."""
    webhook = get_webhook(dbsession, webhook_id, for_update=True)
    webhook.previous_secret = webhook.secret
    webhook.previous_secret_expires_at = now + overlap
    webhook.secret = new_secret()
    webhook.updated_at = now
    dbsession.flush()
    return webhook


def signing_secrets(webhook, now):
    """The secrets that sign a delivery now: the current one, and the previous one within its
    overlap after a rotation."""
    keys = [webhook.secret]
    expires = webhook.previous_secret_expires_at
    if webhook.previous_secret and expires is not None and expires > now:
        keys.append(webhook.previous_secret)
    return keys


def list_deliveries(dbsession, webhook_id, *, limit, cursor=None):
    webhook = get_webhook(dbsession, webhook_id)
    statement = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
    return paginate(dbsession, statement, WebhookDelivery, limit, cursor)


def retry_delivery(dbsession, webhook_id, delivery_id, *, now):
    """Owe a delivery again from now (one that failed, or waits for its next attempt); the
    caller enqueues it after commit. Attempts go on counting."""
    webhook = get_webhook(dbsession, webhook_id)
    if not webhook.enabled:
        raise WebhookDisabled(f"Webhook {webhook_id} is disabled ({webhook.disabled_reason}).")
    delivery = dbsession.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook.id)
        .with_for_update()
    )
    if delivery is None:
        raise DeliveryNotFound(f"Webhook {webhook_id} has no delivery {delivery_id}.")
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = now
    delivery.leased_until = None
    delivery.updated_at = now
    dbsession.flush()
    return delivery


# --- delivering --------------------------------------------------------------------------


def fan_out(dbsession, event_id, *, now):
    """Owe a logged event to every enabled webhook that wants its type, once; return the new
    deliveries' ids. A second fan-out of the same event owes nothing (its marker is there; two
    at once: one of them fails on the marker's key and rolls back)."""
    if dbsession.get(WebhookFanout, event_id) is not None:
        return []
    entry = dbsession.get(EventLogEntry, event_id)
    if entry is None:
        return []
    dbsession.add(WebhookFanout(event_id=entry.id, created_at=now))
    receiving = select(Webhook).where(
        Webhook.enabled.is_(True), Webhook.created_at <= entry.created_at
    )
    deliveries = [
        WebhookDelivery(
            webhook_id=webhook.id,
            event_id=entry.id,
            event_type=entry.type,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        for webhook in dbsession.scalars(receiving)
        if entry.type in webhook.events
    ]
    dbsession.add_all(deliveries)
    dbsession.flush()
    return [delivery.id for delivery in deliveries]


def begin_attempt(dbsession, delivery_id, *, now, lease):
    """Take the next attempt of a pending delivery and lease it for ``lease`` (the caller
    commits before sending); None when there is nothing to send: delivered or given up, an
    attempt under way, not due yet (a duplicate job), or its webhook disabled."""
    delivery = dbsession.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.PENDING)
        .with_for_update(skip_locked=True)
    )
    if delivery is None:
        return None
    if delivery.leased_until is not None and delivery.leased_until > now:
        return None
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now + EARLY_SLACK:
        return None
    webhook = dbsession.get(Webhook, delivery.webhook_id)
    if not webhook.enabled:
        return None
    entry = dbsession.get(EventLogEntry, delivery.event_id)
    delivery.attempts += 1
    delivery.leased_until = now + lease
    delivery.updated_at = now
    body = json.dumps(payload(entry), separators=(",", ":"))
    return Attempt(
        delivery_id=delivery.id,
        number=delivery.attempts,
        url=webhook.url,
        body=body,
        headers=signed_headers(str(entry.id), body, signing_secrets(webhook, now), now=now),
    )


def payload(entry):
    """``{type, id, created_at, data}``: what every delivery of a logged event sends."""
    return {
        "type": entry.type,
        "id": str(entry.id),
        "created_at": timestamp(entry.created_at),
        "data": entry.data,
    }


def finish_attempt(dbsession, attempt, answer, *, now, retry_in, window):
    """Record what an attempt came to; return ``delivered``, ``retry`` (in ``retry_in``),
    ``failed`` or ``skipped`` (another job took the delivery over meanwhile).

    2xx ends the delivery. 410 Gone disables the webhook. Any other answer, or none, is tried
    again, until the next attempt would fall past ``window`` from the delivery's start: the
    delivery fails then, and the webhook is disabled, saying why.
    """
    delivery = dbsession.scalar(
        select(WebhookDelivery).where(WebhookDelivery.id == attempt.delivery_id).with_for_update()
    )
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return "skipped"
    if delivery.attempts != attempt.number:
        return "skipped"
    delivery.leased_until = None
    delivery.last_status = answer.status
    delivery.last_error = answer.error
    delivery.updated_at = now
    if answer.succeeded:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        return "delivered"
    webhook = dbsession.get(Webhook, delivery.webhook_id, with_for_update=True)
    if answer.status == 410:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
        _disable(webhook, f"the endpoint answered 410 Gone at {timestamp(now)}", now)
        return "failed"
    if now + retry_in > delivery.created_at + window:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
        last = f"HTTP {answer.status}" if answer.status else answer.error
        _disable(
            webhook,
            f"deliveries failed for {_hours(window)} (since {timestamp(delivery.created_at)}, "
            f"{delivery.attempts} attempts; the last: {last})",
            now,
        )
        return "failed"
    delivery.next_attempt_at = now + retry_in
    return "retry"


def _hours(window):
    return f"{window.total_seconds() / 3600:g} h"


def wanted_types(connection):
    """The event types that some enabled webhook receives."""
    wanted = set()
    for events in connection.scalars(select(Webhook.events).where(Webhook.enabled.is_(True))):
        wanted.update(events)
    return wanted


def unfanned_events(dbsession, *, now, window):
    """Logged events of the last ``window`` that some enabled webhook registered before them
    receives, and that no fan-out took within the grace: their jobs were lost, or never made
    (the web process did not know of the webhook yet). Events no webhook wants need none."""
    wanting = [
        and_(EventLogEntry.type.in_(webhook.events), EventLogEntry.created_at >= webhook.created_at)
        for webhook in dbsession.scalars(select(Webhook).where(Webhook.enabled.is_(True)))
    ]
    if not wanting:
        return []
    return list(
        dbsession.scalars(
            select(EventLogEntry.id)
            .where(
                EventLogEntry.created_at > now - window,
                EventLogEntry.created_at <= now - SWEEP_GRACE,
                or_(*wanting),
                ~exists().where(WebhookFanout.event_id == EventLogEntry.id),
            )
            .order_by(EventLogEntry.created_at)
            .limit(500)
        )
    )


def overdue_deliveries(dbsession, *, now, limit=500):
    """Pending deliveries past their attempt's time by the grace, with no attempt under way:
    their jobs were lost. Marks them due now (so the next sweep waits again) and returns their
    ids, for the caller to enqueue after commit."""
    overdue = list(
        dbsession.scalars(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now - SWEEP_GRACE,
                (WebhookDelivery.leased_until.is_(None)) | (WebhookDelivery.leased_until <= now),
                # A disabled webhook's deliveries wait for it to be enabled again.
                WebhookDelivery.webhook_id.in_(select(Webhook.id).where(Webhook.enabled.is_(True))),
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        )
    )
    if overdue:
        dbsession.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(overdue))
            .values(next_attempt_at=now, leased_until=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return overdue
