"""Domain events: what happens in a sale, for plugins to react to. This module is the plugin
API, and stable: the classes, their ``type`` strings, their attributes and the shape of ``data``
(the resource as the API shows it) change only with a major version.

Two moments, as in Kinto (``ResourceChanged`` / ``AfterResourceChanged``):

- **inside the transaction**: ``config.add_subscriber(fn, OrderConfirmed)`` is called while the
  change is being written, before it commits. A subscriber may write rows of its own in the same
  transaction, or refuse the change by raising :class:`ChangeRefused`: the whole change then
  rolls back and the client gets 422 ``change_refused`` with the subscriber's detail. Only events
  whose ``vetoable`` is true can be refused (a failure, an expiry, a refund or a completion has
  already happened): for the others a subscriber's error is logged and ignored.
- **after commit**: ``config.add_subscriber(fn, AfterCommit, domain_event=OrderConfirmed)``
  (``domain_event`` takes a class or a tuple of them; without it, every event) is called with an
  :class:`AfterCommit` whose ``event`` is the domain event, once its transaction committed, and
  never for one that rolled back. It may not change anything (the transaction is over): send,
  enqueue, log. Its errors are logged and never fail or undo the request.

Events of a ``logged`` type are also written to the ``event_log`` table
(:class:`ticketing.models.EventLogEntry`: ``id``, ``type``, ``created_at``, ``data``) in the
transaction of the change, so a plugin that must not lose one (webhooks) reads them from there.
"""

import logging
import uuid

import sqlalchemy
from zope.interface import implementedBy, providedBy

from ticketing.domain.errors import ChangeRefused
from ticketing.domain.event_log import AFTER_COMMIT, NOTIFIER
from ticketing.representations import timestamp

log = logging.getLogger(__name__)

__all__ = [
    "AfterCommit",
    "ChangeRefused",
    "CheckInCreated",
    "CheckInUndone",
    "DomainEvent",
    "EventChanged",
    "EventCompleted",
    "EventPublished",
    "OrderCancelled",
    "OrderConfirmed",
    "OrderExpired",
    "OrderFailed",
    "OrderReserved",
    "EVENT_TYPES",
    "LOGGED_TYPES",
]


class DomainEvent:
    """Something that happened. ``id`` is unique to it (receivers deduplicate with it),
    ``created_at`` when it happened (UTC), ``data`` the resource as the API shows it then."""

    #: the event's name in payloads and webhook subscriptions, e.g. ``order.confirmed``
    type = None
    #: whether a subscriber inside the transaction may refuse it
    vetoable = True
    #: whether it is written to the event log (and so can be sent to webhooks)
    logged = True

    def __init__(self, data, *, created_at, id=None):
        # ``data`` may also be a function that makes it, called when it is first read: an event
        # that nobody reads (one not logged, with no subscriber) then costs nothing to announce.
        self.id = id or uuid.uuid4()
        self.created_at = created_at
        self._data = data

    @property
    def data(self):
        if callable(self._data):
            self._data = self._data()
        return self._data

    def payload(self):
        """``{type, id, created_at, data}``: what a webhook receives."""
        return {
            "type": self.type,
            "id": str(self.id),
            "created_at": timestamp(self.created_at),
            "data": self.data,
        }

    def __repr__(self):
        return f"<{type(self).__name__} {self.id}>"


class OrderEvent(DomainEvent):
    """About an order; ``data`` is the order as ``GET /api/orders/{id}`` shows it."""

    @property
    def order_id(self):
        return uuid.UUID(self.data["id"])

    @property
    def event_id(self):
        return uuid.UUID(self.data["event_id"])


class OrderReserved(OrderEvent):
    """A purchase took its tickets; the order is ``pending`` while it is paid for. Not logged:
    within the payment call it becomes ``order.confirmed`` or ``order.failed``, which are. A
    subscriber refusing it refuses the purchase before any money is taken."""

    type = "order.reserved"
    logged = False


class OrderConfirmed(OrderEvent):
    """The order was paid for. Refusing it refunds the charge and releases the tickets."""

    type = "order.confirmed"


class OrderFailed(OrderEvent):
    """The payment was declined or could not be made, or money that came after its hold expired
    was refunded (``hold_expired_refunded``); the tickets went back."""

    type = "order.failed"
    vetoable = False


class OrderExpired(OrderEvent):
    """A hold was not paid in time (``expired``), or a purchase a crash left pending was settled
    as abandoned (``failed``, no charge kept); the tickets went back."""

    type = "order.expired"
    vetoable = False


class OrderCancelled(OrderEvent):
    """The order was cancelled and refunded in full (by the API, or in the payment gateway's
    dashboard), or a hold was given back; its tickets went back."""

    type = "order.cancelled"
    vetoable = False


class AboutAnEvent(DomainEvent):
    """About an event; ``data`` is the event as organisers see it (hidden ticket types too)."""

    @property
    def event_id(self):
        return uuid.UUID(self.data["id"])


class EventPublished(AboutAnEvent):
    type = "event.published"


class EventChanged(AboutAnEvent):
    """An organiser changed the event (``PUT /api/events/{id}``)."""

    type = "event.changed"


class EventCompleted(AboutAnEvent):
    """The event's date passed (the daily job)."""

    type = "event.completed"
    vetoable = False


class AboutACheckIn(DomainEvent):
    """About a scan at the door; ``data`` is the check-in as ``POST
    /api/events/{id}/check-ins`` answers it (ticket, type, attendee, when and by which key)."""

    @property
    def check_in_id(self):
        return uuid.UUID(self.data["id"])

    @property
    def ticket_id(self):
        return uuid.UUID(self.data["ticket_id"])


class CheckInCreated(AboutACheckIn):
    """A ticket was scanned in (not a retried scan's replay). Refusing it turns the attendee
    away: the ticket stays unscanned."""

    type = "checkin.created"


class CheckInUndone(AboutACheckIn):
    """A mistaken scan was undone; the ticket admits its attendee again."""

    type = "checkin.deleted"
    vetoable = False


#: every event class by its ``type``
EVENT_TYPES = {
    cls.type: cls
    for cls in (
        OrderReserved,
        OrderConfirmed,
        OrderFailed,
        OrderExpired,
        OrderCancelled,
        EventPublished,
        EventChanged,
        EventCompleted,
        CheckInCreated,
        CheckInUndone,
    )
}
#: the types written to the event log, which webhooks can subscribe to
LOGGED_TYPES = tuple(name for name, cls in EVENT_TYPES.items() if cls.logged)


class AfterCommit:
    """Notified after the transaction that caused ``event`` committed."""

    def __init__(self, event):
        self.event = event

    def __repr__(self):
        return f"<AfterCommit {self.event!r}>"


class Notifier:
    """The in-transaction moment, as the domain calls it through ``dbsession.info``."""

    def __init__(self, registry):
        self.registry = registry

    def __call__(self, event):
        if event.vetoable:
            self.registry.notify(event)
        else:
            self.notify_each(event, "a subscriber failed on %r, which cannot be refused; ignored")

    def notify_each(self, notified, failure):
        """Call every subscriber of ``notified``, each on its own: one that fails is logged
        with ``failure`` and the others are still called."""
        for subscriber in self.registry.adapters.subscriptions((providedBy(notified),), None):
            try:
                subscriber(notified)
            except Exception:
                log.exception(failure, getattr(notified, "event", notified))

    def listens(self, event_class):
        return bool(self.registry.adapters.subscriptions((implementedBy(event_class),), None))


class DomainEventPredicate:
    """``domain_event=`` on an ``AfterCommit`` subscriber: only for events of these classes."""

    def __init__(self, value, config):
        self.classes = tuple(value) if isinstance(value, list | tuple) else (value,)

    def text(self):
        return "domain_event = " + ", ".join(cls.__name__ for cls in self.classes)

    phash = text

    def __call__(self, event):
        return isinstance(getattr(event, "event", None), self.classes)


def includeme(config):
    registry = config.registry
    session_factory = registry["dbsession_factory"]
    notifier = session_factory.kw["info"][NOTIFIER] = Notifier(registry)

    def notify_after_commit(session):
        # The change is committed: a subscriber's failure must neither turn it into an error
        # nor keep the other subscribers from hearing it.
        for event in session.info.pop(AFTER_COMMIT, ()):
            notifier.notify_each(AfterCommit(event), "an after-commit subscriber failed on %r")

    def forget(session, *args):
        session.info.pop(AFTER_COMMIT, None)

    sqlalchemy.event.listen(session_factory, "after_commit", notify_after_commit)
    sqlalchemy.event.listen(session_factory, "after_rollback", forget)
    config.add_subscriber_predicate("domain_event", DomainEventPredicate)
