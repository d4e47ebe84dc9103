"""Test fixtures.

The API and domain tests run twice: on SQLite (the embedded default) and on PostgreSQL (the
production database; ``TEST_DATABASE_URL``, default the local server). PostgreSQL is required:
if it cannot be reached, its tests fail with a message saying so; they never skip.

Each database is created and migrated once per session; each test starts from empty tables.
Tests build their own app (and so their own mock adapters) and reach the adapters through the
app's registry, exactly as the code does.
"""

import os
import uuid

import pytest
import redis
import sqlalchemy as sa
import transaction
import transaction.interfaces
from sqlalchemy.exc import OperationalError
from webtest import TestApp

# The shipped plugins' tables are in the migrations, so the tests' metadata has them too.
import ticketing.plugins.webhooks.models  # noqa: F401, I001
from ticketing import main
from ticketing.interfaces import IEmailSender, IPaymentGateway
from ticketing.migrations import upgrade_to_head
from ticketing.models import get_engine, get_tm_session, normalize_database_url
from ticketing.models.meta import Base

#: the tests' ticket secret (tests/factories.py signs tickets with it too)
TEST_TICKET_SECRET = "test-ticket-secret"
DEFAULT_TEST_DATABASE_URL = "postgresql+psycopg://root@127.0.0.1:5432/ticketing_test"


@pytest.fixture(scope="session")
def postgresql_url():
    base = sa.make_url(
        normalize_database_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL))
    )
    # A database of the run's own, so that parallel runs never share tables.
    name = f"{base.database}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = base.set(database=name)
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is required for these tests and is not reachable at "
            f"{base.render_as_string()}: {error.orig}",
            pytrace=False,
        )
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    return sa.make_url(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'ticketing.sqlite'}")


def migrated_engine(url):
    engine = get_engine({"sqlalchemy.url": url.render_as_string(hide_password=False)})
    upgrade_to_head(engine)
    return engine


@pytest.fixture(scope="session")
def postgresql_engine(postgresql_url):
    engine = migrated_engine(postgresql_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_engine(sqlite_url):
    engine = migrated_engine(sqlite_url)
    yield engine
    engine.dispose()


def empty_tables(engine):
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture(params=["sqlite", "postgresql"])
def dbengine(request):
    """A migrated engine on each database in turn, with empty tables for every test."""
    engine = request.getfixturevalue(f"{request.param}_engine")
    yield engine
    empty_tables(engine)


@pytest.fixture
def pg_engine(postgresql_engine):
    """PostgreSQL only: for locking and concurrency, which SQLite cannot show."""
    yield postgresql_engine
    empty_tables(postgresql_engine)


WEBHOOK_SECRET = "whsec_test_secret"


def app_settings(engine, **overrides):
    settings = {
        "sqlalchemy.url": engine.url.render_as_string(hide_password=False),
        "dbengine": engine,
        "ticketing.payments": "mock",
        "ticketing.email": "mock",
        # Rate limits have tests of their own; elsewhere they would only get in the way.
        "ratelimit.enabled": "false",
        # Jobs run inline when enqueued (after commit), with the app's own mock adapters.
        "huey.immediate": "true",
        # As in development.ini; tests/test_access_control.py switches it on.
        "ticketing.require_api_key": "false",
        "ticketing.ticket_secret": TEST_TICKET_SECRET,
        # As in both ini files; webhooks may go to the tests' receivers on this machine.
        "ticketing.includes": "ticketing.plugins.webhooks",
        "webhooks.allow_private_targets": "true",
        # The mock gateway's webhooks are signed and verified as Stripe's are.
        "stripe.webhook_secret": WEBHOOK_SECRET,
    }
    settings.update(overrides)
    return settings


@pytest.fixture
def settings(dbengine):
    return app_settings(dbengine)


@pytest.fixture
def app(settings):
    return main({}, **settings)


@pytest.fixture
def testapp(app):
    return TestApp(app, extra_environ={"HTTP_HOST": "tickets.test"})


@pytest.fixture
def gateway(app):
    return app.registry.getUtility(IPaymentGateway)


@pytest.fixture
def mailer(app):
    return app.registry.getUtility(IEmailSender)


@pytest.fixture
def tm():
    manager = transaction.TransactionManager(explicit=True)
    manager.begin()
    yield manager
    try:
        manager.abort()
    except transaction.interfaces.NoTransaction:
        pass  # the test committed or aborted it already


@pytest.fixture
def dbsession(dbengine, tm):
    """A session joined to ``tm`` for tests of the domain below HTTP."""
    factory = sa.orm.sessionmaker(bind=dbengine, expire_on_commit=False)
    return get_tm_session(factory, tm)


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_prefix():
    """A key prefix of the test's own on the local Redis, removed afterwards. Redis is required:
    if it cannot be reached the test fails, it never skips."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        pytest.fail(f"Redis is required for this test and is not reachable: {error}")
    # Letters, digits and "_" only: Huey names its Redis keys after the queue with anything else
    # taken out, and the cleanup below (and tests) must find them by this prefix.
    prefix = f"test_{uuid.uuid4().hex[:12]}"
    yield prefix
    for key in client.scan_iter(f"*{prefix}*"):
        client.delete(key)
    client.close()
