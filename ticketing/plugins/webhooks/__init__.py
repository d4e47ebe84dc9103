"""Outgoing webhooks, a plugin on the public plugin API (``ticketing.events``): list
``ticketing.plugins.webhooks`` in ``ticketing.includes``.

Admins register endpoints (``/api/webhooks``, :mod:`.views`); every logged domain event they
subscribe to is delivered to them, signed as Standard Webhooks says, by the app's job workers
(:mod:`.jobs`), never lost and never for a change that rolled back (:mod:`.domain`), and only to
public https addresses in production (:mod:`.targets`). Settings:

- ``webhooks.allow_private_targets`` (false): true lets http and loopback/private addresses
  through, for receivers on the same machine (development and tests only);
- ``webhooks.retry_window_hours`` (72): how long a failing delivery is tried again, with
  exponential backoff, before it fails and its webhook is disabled;
- ``webhooks.retry_delay_seconds`` (60): the first retry's wait; each next one doubles it;
- ``webhooks.timeout_seconds`` (10): how long an endpoint may take to answer;
- ``webhooks.secret_overlap_hours`` (24): how long a rotated-out secret keeps signing.
- ``webhooks.ca_certs`` (the system's): a file of the authorities https endpoints' certificates
  must come from, for endpoints behind a private authority.
- ``webhooks.subscriptions_ttl_seconds`` (2): how long a web process trusts what it read of the
  event types webhooks want (:class:`Subscriptions`).
"""

import datetime as dt
import logging
import threading
import time

import sqlalchemy
from sqlalchemy.pool import NullPool

from ticketing.events import EVENT_TYPES, LOGGED_TYPES, AfterCommit
from ticketing.settings import as_bool, as_float, as_int

from . import models  # noqa: F401  (the tables, on the app's metadata)
from .domain import wanted_types
from .jobs import register_tasks
from .targets import IHostResolver, SystemResolver, TargetGuard

log = logging.getLogger(__name__)


class Options:
    """The plugin's settings, its jobs, and the SSRF guard (built at each use, from the
    resolver registered now, which tests may have swapped)."""

    def __init__(self, registry, settings):
        self.registry = registry
        self.allow_private = as_bool(settings, "webhooks.allow_private_targets", False)
        self.window = dt.timedelta(hours=as_float(settings, "webhooks.retry_window_hours", 72))
        self.retry_delay_seconds = as_int(settings, "webhooks.retry_delay_seconds", 60)
        self.timeout_seconds = as_float(settings, "webhooks.timeout_seconds", 10)
        self.secret_overlap = dt.timedelta(
            hours=as_float(settings, "webhooks.secret_overlap_hours", 24)
        )
        self.ca_certs = settings.get("webhooks.ca_certs") or None
        self.tasks = None

    def guard(self):
        resolver = self.registry.getUtility(IHostResolver)
        return TargetGuard(resolver, allow_private=self.allow_private)


class Subscriptions:
    """The event types some enabled webhook receives, as this process read them at most
    ``ttl`` seconds ago: a purchase owes no job to a sale nobody listens to. A webhook registered
    within the last ``ttl`` seconds gets its first events from the sweep (within a minute and a
    bit) instead; if the database cannot say, every event is fanned out.

    It is asked after a commit, while the request still holds its connection, so it reads on a
    connection of its own, made for the read and closed after it (once per ``ttl`` at most): on
    the app's pool, requests holding every connection would each wait for one more.
    """

    def __init__(self, engine, ttl=2.0, clock=time.monotonic):
        self.engine = engine
        self.ttl = ttl
        self.clock = clock
        self._types = None
        self._read_at = None
        self._lock = threading.Lock()

    def wanted(self, event_type):
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.ttl:
                self._read_at = now
                try:
                    with self.engine.connect() as connection:
                        self._types = wanted_types(connection)
                except Exception as error:
                    log.warning("could not read the webhooks' event types (%s)", error)
                    self._types = None
            return self._types is None or event_type in self._types


def _connect_args(engine):
    # As the app's connections fail fast on a database that does not answer, so does this one.
    if engine.dialect.name == "postgresql":
        return {"connect_args": {"connect_timeout": 2}}
    return {}


def includeme(config):
    registry = config.registry
    options = Options(registry, config.get_settings())
    registry["webhooks"] = options
    registry.registerUtility(SystemResolver(), IHostResolver)
    options.tasks = register_tasks(registry["jobs"], registry, options)
    app_engine = registry["dbengine"]
    subscriptions = Subscriptions(
        sqlalchemy.create_engine(app_engine.url, poolclass=NullPool, **_connect_args(app_engine)),
        ttl=as_float(config.get_settings(), "webhooks.subscriptions_ttl_seconds", 2.0),
    )

    def fan_out_after_commit(committed):
        try:
            if subscriptions.wanted(committed.event.type):
                options.tasks.fan_out(str(committed.event.id))
        except Exception as error:
            # The event is safe in the log; the sweep finds it a minute later.
            log.warning(
                "could not enqueue the fan-out of %r (%s); left for the sweep",
                committed.event,
                error,
            )

    logged = tuple(EVENT_TYPES[name] for name in LOGGED_TYPES)
    config.add_subscriber(fan_out_after_commit, AfterCommit, domain_event=logged)
    config.include(".views")
