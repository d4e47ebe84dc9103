"""api keys with scopes

Organisers' keys in the database: a name, a scope (admin, checkin, read), for checkin keys
optionally the events they may check in at, and the key's SHA-256 with a short prefix in clear.
The keys of ``ticketing.api_keys`` stay where they are, as admin keys.

Revision ID: 0005_api_keys
Revises: 0004_ticket_types
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from ticketing.models.types import UTCDateTime

revision = "0005_api_keys"
down_revision = "0004_ticket_types"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "scope",
            sa.Enum(
                "admin",
                "checkin",
                "read",
                name="api_key_scope",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("event_ids", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "scope = 'checkin' OR event_ids IS NULL",
            name=op.f("ck_api_keys_event_ids_only_for_checkin"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )


def downgrade():
    op.drop_table("api_keys")
