"""Publishing domain events (``ticketing.events``) from the rules that cause them.

Publishing an event writes it to the event log in the caller's transaction (where the change is
being written) and tells the subscribers that listen inside the transaction, who may refuse it
(:class:`~ticketing.domain.errors.ChangeRefused` rolls the whole change back). Once the session's
transaction commits, ``AfterCommit`` subscribers hear it; after a rollback nobody does.

The notifier comes with the session (``dbsession.info[NOTIFIER]``, put there when the app is
configured), so the rules take no extra argument and never see the registry: a session without
one (a bare test session) still writes the log and notifies nobody.
"""

import functools

from sqlalchemy import bindparam, select
from zope.sqlalchemy import mark_changed

from ticketing.models import EventLogEntry

#: session.info key: a callable that notifies the in-transaction subscribers of an event
NOTIFIER = "ticketing.events.notifier"
#: session.info key: the events to notify after the session's transaction commits
AFTER_COMMIT = "ticketing.events.after_commit"


def publish(dbsession, event):
    """Log ``event`` (if it is of a logged type) in the session's transaction, and announce it."""
    if event.logged:
        dbsession.execute(_log_insert(), log_parameters(event))
        mark_changed(dbsession)
    announce(dbsession, event)


def announce(dbsession, event):
    """Tell subscribers of ``event``, whose log entry (if any) the caller has written, e.g. in
    a statement of its own (:func:`logging_from`). Raises what a subscriber's veto raises."""
    notifier = dbsession.info.get(NOTIFIER)
    if notifier is None:
        return
    notifier(event)
    dbsession.info.setdefault(AFTER_COMMIT, []).append(event)


def listened_to(dbsession, event_class):
    """Whether anyone subscribes to ``event_class`` inside the transaction (and so may refuse
    it): the purchase then runs its phase in a transaction rather than in autocommit."""
    notifier = dbsession.info.get(NOTIFIER)
    return notifier is not None and notifier.listens(event_class)


def log_parameters(event):
    """The parameters of :func:`logging_from` (and of the plain insert) for ``event``; its
    ``created_at`` is the statement's ``p_now``."""
    return {
        "p_log_id": event.id,
        "p_log_type": event.type,
        "p_log_data": event.data,
        "p_now": event.created_at,
    }


def logging_from(source, name="logged"):
    """A data-modifying CTE that logs one entry per row of ``source`` (another CTE, e.g. the
    confirmation's ``UPDATE ... RETURNING``): added to that statement (``add_cte``), changing
    a row and logging its event are one statement, which logs nothing when nothing changed."""
    return _log_insert_from(source).cte(name)


@functools.cache
def _log_insert():
    return _log_insert_from(None)


def _log_insert_from(source):
    log = EventLogEntry.__table__
    values = {
        "id": bindparam("p_log_id", type_=log.c.id.type),
        "type": bindparam("p_log_type", type_=log.c.type.type),
        "created_at": bindparam("p_now", type_=log.c.created_at.type),
        "data": bindparam("p_log_data", type_=log.c.data.type),
    }
    if source is None:
        return log.insert().values(values)
    return log.insert().from_select(list(values), select(*values.values()).select_from(source))
