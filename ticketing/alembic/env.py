"""Alembic environment.

Runs in two ways: from ``initialize_ticketing_db`` (which passes an open connection in
``config.attributes["connection"]``), or as ``alembic -c development.ini upgrade head``, where the
database URL comes from the ini's app section, overridden by ``DATABASE_URL`` as everywhere else.
"""

from alembic import context
from pyramid.paster import get_appsettings, setup_logging

# The plugins shipped in the package keep their tables in this chain of migrations.
import ticketing.plugins.webhooks.models  # noqa: E402, F401, I001
from ticketing.models import get_engine
from ticketing.models.meta import Base
from ticketing.settings import apply_environment

config = context.config


def run_migrations(connection):
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_from_ini():
    setup_logging(config.config_file_name)
    settings = apply_environment(dict(get_appsettings(config.config_file_name)))
    engine = get_engine(settings)
    try:
        with engine.connect() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    run_from_ini()
