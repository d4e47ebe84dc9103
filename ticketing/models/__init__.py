"""Database wiring: engine, session factory, and a session bound to the request's transaction."""

import re
import time

import sqlalchemy
import transaction
import zope.sqlalchemy
from sqlalchemy import engine_from_config
from sqlalchemy.orm import configure_mappers, sessionmaker

from ticketing.settings import as_float, as_int, require

from .api_key import ApiKey, KeyScope
from .event import Event, EventStatus
from .event_log import EventLogEntry
from .fair_pool import FairQueuePool
from .meta import Base
from .order import HOLD_STATUSES, HOLDING_STATUSES, Order, OrderItem, OrderStatus
from .outbox import EmailKind, EmailStatus, OutboxEmail
from .promo_code import WHOLE_PERCENT, DiscountType, PromoCode, PromoCodeTicketType
from .stripe_event import StripeEvent
from .ticket import CheckIn, Ticket, TicketStatus
from .ticket_type import TicketType
from .waiting_list import ACTIVE_ENTRY_STATUSES, EntryStatus, WaitingListEntry

__all__ = [
    "ACTIVE_ENTRY_STATUSES",
    "ApiKey",
    "Base",
    "CheckIn",
    "EmailKind",
    "EmailStatus",
    "EntryStatus",
    "OutboxEmail",
    "DiscountType",
    "PromoCode",
    "PromoCodeTicketType",
    "WHOLE_PERCENT",
    "Event",
    "EventLogEntry",
    "EventStatus",
    "KeyScope",
    "Order",
    "OrderItem",
    "OrderStatus",
    "HOLD_STATUSES",
    "HOLDING_STATUSES",
    "StripeEvent",
    "Ticket",
    "TicketStatus",
    "TicketType",
    "WaitingListEntry",
    "get_engine",
    "get_request_session_factory",
    "get_session_factory",
    "get_tm_session",
]

# Import every model before configure_mappers() so relationships resolve.
configure_mappers()

_BARE_POSTGRES_URL = re.compile(r"^postgres(ql)?://")


def normalize_database_url(url):
    """Accept the ``postgres://`` URLs that hosting platforms hand out and use psycopg 3."""
    return _BARE_POSTGRES_URL.sub("postgresql+psycopg://", url, count=1)


def get_engine(settings, prefix="sqlalchemy."):
    """The engine of ``prefix`` settings (SQLAlchemy's own), and two of ours:

    - ``connect_timeout``: seconds a new PostgreSQL connection may take (libpq's, 2 at least),
      so that a database host that does not answer fails requests fast instead of hanging them;
    - ``pool_pre_ping_idle_seconds``: SQLAlchemy's ``pool_pre_ping`` for the connections that
      have sat in the pool that long (see :func:`_ping_when_idle`).

    PostgreSQL's pool serves waiting threads in turn (:class:`~.fair_pool.FairQueuePool`).
    """
    settings = dict(settings)
    url = require(settings, prefix + "url", " (set the DATABASE_URL environment variable)")
    settings[prefix + "url"] = normalize_database_url(url)
    connect_timeout = as_int(settings, prefix + "connect_timeout", 0)
    ping_idle_seconds = as_float(settings, prefix + "pool_pre_ping_idle_seconds", 0)
    settings.pop(prefix + "connect_timeout", None)
    settings.pop(prefix + "pool_pre_ping_idle_seconds", None)
    options = {}
    if settings[prefix + "url"].startswith("postgresql"):
        options["poolclass"] = FairQueuePool
        if connect_timeout:
            options["connect_args"] = {"connect_timeout": connect_timeout}
    engine = engine_from_config(settings, prefix, **options)
    if engine.dialect.name == "sqlite":
        sqlalchemy.event.listen(engine, "connect", _configure_sqlite_connection)
    if ping_idle_seconds > 0:
        _ping_when_idle(engine, ping_idle_seconds)
    return engine


_IDLE_SINCE = "ticketing.idle_since"


def _ping_when_idle(engine, idle_seconds):
    """Ping a pooled connection on checkout when it has been idle ``idle_seconds`` or more, and
    replace it (invalidating the pool's older connections) if the database does not answer.

    ``pool_pre_ping`` pings on every checkout, and a purchase checks a connection out twice (its
    phases give it back while the gateway charges): two round trips more per purchase, about a
    tenth of a hot sale's throughput (``make bench``). A connection given back moments ago has
    missed a restart of the database only if the server went and came back within that moment,
    unseen by any statement of the process (one that was running fails, and SQLAlchemy then
    invalidates every connection of the pool); even then its statement fails as a disconnect
    (503; a purchase it cuts off is settled by the stale-order sweep) and the pool is retired
    the same way. The connections that sat idle
    through an outage, a failover or a firewall's timeout are the ones a ping must catch.
    """

    def note_idle(dbapi_connection, connection_record):
        connection_record.info[_IDLE_SINCE] = time.monotonic()

    def ping_if_idle(dbapi_connection, connection_record, connection_proxy):
        idle_since = connection_record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if not engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise
            # The pool replaces this connection and retires the ones checked in before now.
            raise sqlalchemy.exc.InvalidatePoolError() from error

    sqlalchemy.event.listen(engine, "checkin", note_idle)
    sqlalchemy.event.listen(engine, "checkout", ping_if_idle)


def _configure_sqlite_connection(dbapi_connection, connection_record):
    # SQLite ignores foreign keys unless asked, and fails at once on a locked database by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA busy_timeout = 5000")
    cursor.close()


def get_session_factory(engine):
    # Objects stay readable after commit: the purchase flow commits between its phases and
    # keeps using what it loaded. ``info`` is shared by the app's factories (each session starts
    # with a copy): ticketing.events puts the domain events' notifier in it.
    return sessionmaker(bind=engine, expire_on_commit=False, info={})


def get_tm_session(session_factory, transaction_manager):
    """A session joined to ``transaction_manager``: it commits or aborts with the transaction."""
    dbsession = session_factory()
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


def get_request_session_factory(session_factory):
    """Sessions for requests, joined to the serving thread's transaction manager, which is the
    one pyramid_tm hands each request as ``request.tm`` (:func:`thread_transaction_manager`).

    zope.sqlalchemy's listeners are registered once, on this factory, not on each request's
    session: registering them per session was ~6% of a purchase's CPU (``make bench``, hot
    event: 438 -> 475 orders/s). The sessions are of a subclass of ``session_factory``'s class,
    so listeners on that factory (the outbox's after-commit dispatch) hear them too. Jobs,
    scripts and tests, which may run several managers in one thread, join sessions of
    ``session_factory`` to a manager of their own with :func:`get_tm_session`.
    """
    factory = sessionmaker(class_=session_factory.class_, **session_factory.kw)
    zope.sqlalchemy.register(factory, transaction_manager=transaction.manager)
    return factory


def thread_transaction_manager(request):
    """pyramid_tm's manager hook: the serving thread's own manager (``transaction.manager`` is
    thread-local, and a thread serves one request at a time), explicit like
    ``pyramid_tm.explicit_manager``: nothing begins a transaction without being asked to."""
    manager = transaction.manager
    manager.explicit = True
    return manager


def includeme(config):
    settings = config.get_settings()
    settings["tm.manager_hook"] = thread_transaction_manager
    # Cornice returns (not raises) validation errors; without the veto pyramid_tm would commit
    # whatever a view wrote before an error response.
    settings["tm.commit_veto"] = "pyramid_tm.default_commit_veto"
    settings.setdefault("retry.attempts", 3)
    config.include("pyramid_tm")
    config.include("pyramid_retry")

    dbengine = settings.get("dbengine") or get_engine(settings)
    session_factory = get_session_factory(dbengine)
    config.registry["dbengine"] = dbengine
    config.registry["dbsession_factory"] = session_factory
    request_session_factory = get_request_session_factory(session_factory)

    def dbsession(request):
        # Tests may hand in their own session through the environ.
        session = request.environ.get("app.dbsession")
        if session is None:
            session = request_session_factory()
        return session

    config.add_request_method(dbsession, reify=True)
