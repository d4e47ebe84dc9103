"""The waiting list's jobs: matching a type's set-aside tickets to the people in line (on
``default``, enqueued after the transaction that set them aside commits) and the sweep (on
``scheduled``, every minute) that matches what a lost job left.

Settings: ``ticketing.waitlist_offer_hours`` (24), how long an offer's hold lasts.
"""

import logging
import types
import uuid

import sqlalchemy
from huey import crontab

from ticketing.domain import waiting_list
from ticketing.models.types import utcnow
from ticketing.settings import waitlist_offer_duration

from .tasks import job_transaction

log = logging.getLogger(__name__)

EVERY_MINUTE = crontab(minute="*")


def register_tasks(jobs, registry, offer_for):
    default = jobs.hueys["default"]
    scheduled = jobs.hueys["scheduled"]
    session_factory = registry["dbsession_factory"]

    @default.task(name="match_waiting_list")
    def match(ticket_type_id):
        with job_transaction(session_factory) as (dbsession, _):
            waiting_list.match(
                dbsession, uuid.UUID(ticket_type_id), now=utcnow(), offer_for=offer_for
            )

    @scheduled.periodic_task(EVERY_MINUTE, name="sweep_waiting_list")
    def sweep():
        with job_transaction(session_factory) as (dbsession, _):
            stranded = waiting_list.types_to_match(dbsession, now=utcnow())
        for ticket_type_id in stranded:
            match(str(ticket_type_id))

    return types.SimpleNamespace(match=match, sweep=sweep)


def includeme(config):
    registry = config.registry
    offer_for = waitlist_offer_duration(config.get_settings())
    registry["waitlist_offer_for"] = offer_for
    tasks = register_tasks(registry["jobs"], registry, offer_for)
    registry["waiting_list_jobs"] = tasks

    def match_after_commit(session):
        for ticket_type_id in session.info.pop(waiting_list.MATCH_AFTER_COMMIT, ()):
            try:
                tasks.match(str(ticket_type_id))
            except Exception:
                # The tickets stay set aside, out of public sale; the sweep matches them.
                log.exception(
                    "could not enqueue the matching of type %s; left for the sweep", ticket_type_id
                )

    def forget(session, *args):
        session.info.pop(waiting_list.MATCH_AFTER_COMMIT, None)

    session_factory = registry["dbsession_factory"]
    sqlalchemy.event.listen(session_factory, "after_commit", match_after_commit)
    sqlalchemy.event.listen(session_factory, "after_rollback", forget)
