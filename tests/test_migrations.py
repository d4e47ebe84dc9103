"""The migrations build exactly the schema the models declare, on SQLite and on PostgreSQL, and
``initialize_ticketing_db`` applies them as often as it is run."""

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ticketing.migrations import alembic_config, upgrade_to_head
from ticketing.models import Event
from ticketing.models.meta import Base

REPO = Path(__file__).resolve().parent.parent
INITIALIZE_DB = Path(sys.executable).parent / "initialize_ticketing_db"


def head_revision():
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine):
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_the_migrated_schema_matches_the_models(dbengine):
    with dbengine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_the_database_is_at_the_newest_revision(dbengine):
    assert head_revision() is not None
    assert current_revision(dbengine) == head_revision()


def test_upgrading_again_is_harmless(dbengine):
    now = dt.datetime.now(dt.UTC)
    event_id = uuid.uuid4()
    with dbengine.begin() as connection:
        connection.execute(
            sa.insert(Event.__table__).values(
                id=event_id,
                name="Concert",
                venue="Stadium",
                date=now + dt.timedelta(days=30),
                currency="USD",
                total_tickets=100,
                available_tickets=100,
                status="draft",
                created_at=now,
                updated_at=now,
            )
        )

    upgrade_to_head(dbengine)
    upgrade_to_head(dbengine)

    assert current_revision(dbengine) == head_revision()
    with dbengine.connect() as connection:
        rows = connection.execute(sa.select(Event.__table__.c.id, Event.__table__.c.name)).all()
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [tuple(row) for row in rows] == [(event_id, "Concert")]
    assert differences == []


def file_state(path):
    return (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None


def test_initialize_db_script_uses_database_url_and_can_run_twice(tmp_path):
    target = tmp_path / "fresh.sqlite"
    repo_database = REPO / "ticketing.sqlite"
    repo_database_before = file_state(repo_database)
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{target}"}

    for _ in range(2):
        result = subprocess.run(
            [str(INITIALIZE_DB), "development.ini"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert str(target) in result.stdout

    assert target.exists()
    engine = sa.create_engine(f"sqlite:///{target}")
    try:
        assert "events" in sa.inspect(engine).get_table_names()
        assert current_revision(engine) == head_revision()
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        engine.dispose()
    # DATABASE_URL won over the ini: the ini's own database was neither created nor touched.
    assert file_state(repo_database) == repo_database_before


def test_initialize_db_script_fails_cleanly_when_the_database_is_unreachable():
    env = {**os.environ, "DATABASE_URL": "postgresql+psycopg://root@127.0.0.1:1/nothing"}
    result = subprocess.run(
        [str(INITIALIZE_DB), "development.ini"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Could not reach the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_migrated_partial_indexes_have_the_models_predicates(dbengine):
    # compare_metadata does not compare an index's WHERE clause: a migration that built an index
    # whole where the model declares it partial would pass the test above. The database
    # rewrites predicates in its own words, so the models' are put to it too, by creating their
    # schema beside the migrated one.
    migrated = _index_predicates(dbengine)
    assert migrated["ix_orders_status_expires_at"] is not None
    assert migrated["ix_orders_promo_code_id"] is not None
    assert migrated == _index_predicates_of_the_models(dbengine)


def _index_predicates(engine, schema=None):
    inspector = sa.inspect(engine)
    where = f"{engine.dialect.name}_where"
    predicates = {
        index["name"]: index.get("dialect_options", {}).get(where)
        for table in Base.metadata.tables
        for index in inspector.get_indexes(table, schema=schema)
    }
    return {name: None if where is None else str(where) for name, where in predicates.items()}


def _index_predicates_of_the_models(engine):
    if engine.dialect.name == "sqlite":
        scratch = sa.create_engine("sqlite://")
        Base.metadata.create_all(scratch)
        return _index_predicates(scratch)
    schema = f"models_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        with engine.begin() as connection:
            Base.metadata.create_all(
                connection.execution_options(schema_translate_map={None: schema})
            )
        return _index_predicates(engine, schema=schema)
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
