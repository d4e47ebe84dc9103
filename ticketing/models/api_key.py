import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base
from .types import UTCDateTime, status_enum, utcnow


class KeyScope(enum.StrEnum):
    ADMIN = "admin"  # everything an organiser does
    CHECKIN = "checkin"  # check-in at the door, optionally at listed events only
    READ = "read"  # lists, exports and stats; what organisers alone may see, nothing changed


class ApiKey(Base):
    """An organiser's API key. The key itself is shown once, when it is made; we keep only its
    SHA-256, so a leaked table admits nobody, and a short prefix in clear to find it by and to
    tell keys apart in a list."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            "scope = 'checkin' OR event_ids IS NULL", name="event_ids_only_for_checkin"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    #: hex SHA-256 of the whole key
    secret_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[KeyScope] = mapped_column(status_enum(KeyScope, "api_key_scope"))
    #: the events a checkin key may check in at, as UUID strings; NULL: every event
    event_ids: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: at most a minute behind the last use (see ticketing.domain.api_keys.record_use)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
