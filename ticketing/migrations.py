"""Bring a database to the newest schema with the migrations shipped inside the package."""

from alembic import command
from alembic.config import Config


def alembic_config(connection=None):
    config = Config()
    config.set_main_option("script_location", "ticketing:alembic")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_to_head(engine):
    """Apply every pending migration; running it again on an up-to-date database does nothing."""
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
