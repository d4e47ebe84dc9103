"""``sqlalchemy.pool_pre_ping_idle_seconds`` on PostgreSQL: a connection that sat idle that long
is pinged and replaced when the server dropped it; one given back moments ago is used without a
ping (the round trip it saves), and when the server dropped that one, its failure retires the
pool's connections, so that the next checkout gets a live one."""

import time

import pytest
import sqlalchemy as sa

from ticketing.models import get_engine


@pytest.fixture
def engine_of(postgresql_url):
    engines = []

    def engine_of(idle_seconds):
        engine = get_engine(
            {
                "sqlalchemy.url": postgresql_url.render_as_string(hide_password=False),
                "sqlalchemy.pool_size": "1",
                "sqlalchemy.max_overflow": "0",
                "sqlalchemy.pool_pre_ping_idle_seconds": str(idle_seconds),
            }
        )
        engines.append(engine)
        return engine

    yield engine_of
    for engine in engines:
        engine.dispose()


@pytest.fixture
def admin(postgresql_url):
    engine = sa.create_engine(postgresql_url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def backend_pid(engine):
    with engine.connect() as connection:
        return connection.scalar(sa.text("SELECT pg_backend_pid()"))


def terminate(admin, pid):
    with admin.connect() as connection:
        assert connection.scalar(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    time.sleep(0.1)  # the backend's exit is asynchronous


def test_a_connection_idle_past_the_threshold_is_pinged_and_replaced(engine_of, admin):
    engine = engine_of(idle_seconds=0.2)
    dropped = backend_pid(engine)
    terminate(admin, dropped)
    time.sleep(0.2)

    # No error: the ping found the connection dead and the pool handed out a new one.
    assert backend_pid(engine) != dropped


def test_a_connection_given_back_moments_ago_is_not_pinged(engine_of, admin):
    engine = engine_of(idle_seconds=60)
    dropped = backend_pid(engine)
    terminate(admin, dropped)

    # Without a ping the dead connection is used, and its statement fails as a disconnect...
    with pytest.raises(sa.exc.OperationalError) as failure:
        backend_pid(engine)
    assert failure.value.connection_invalidated
    # ...which retires it: the next checkout connects afresh.
    assert backend_pid(engine) != dropped
