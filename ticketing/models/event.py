import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base
from .types import UTCDateTime, status_enum, utcnow


class EventStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    COMPLETED = "completed"


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("available_tickets >= 0", name="available_not_negative"),
        CheckConstraint("available_tickets <= total_tickets", name="available_within_total"),
        CheckConstraint("ticket_price_cents >= 0", name="price_not_negative"),
        # Keyset pagination walks (created_at, id); the status filter walks the same order.
        Index("ix_events_created_at_id", "created_at", "id"),
        Index("ix_events_status_created_at_id", "status", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    venue: Mapped[str] = mapped_column(String(200))
    date: Mapped[datetime] = mapped_column(UTCDateTime)
    # Money is kept in integer minor units (cents): exact on every database, never a float.
    ticket_price_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    total_tickets: Mapped[int] = mapped_column(Integer)
    available_tickets: Mapped[int] = mapped_column(Integer)
    status: Mapped[EventStatus] = mapped_column(
        status_enum(EventStatus, "event_status"),
        default=EventStatus.DRAFT,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def tickets_sold(self):
        return self.total_tickets - self.available_tickets
