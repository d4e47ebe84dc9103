import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import Base
from .ticket_type import TicketType
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
        # Keyset pagination walks (created_at, id); the status filter walks the same order.
        Index("ix_events_created_at_id", "created_at", "id"),
        Index("ix_events_status_created_at_id", "status", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    venue: Mapped[str] = mapped_column(String(200))
    date: Mapped[datetime] = mapped_column(UTCDateTime)
    # Every price of the event is in this currency, in its minor units (ticketing.money).
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    total_tickets: Mapped[int] = mapped_column(Integer)
    available_tickets: Mapped[int] = mapped_column(Integer)
    status: Mapped[EventStatus] = mapped_column(
        status_enum(EventStatus, "event_status"),
        default=EventStatus.DRAFT,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Loaded only where asked (selectinload): the purchase path never needs the objects.
    ticket_types: Mapped[list[TicketType]] = relationship(
        order_by=(TicketType.position, TicketType.created_at),
        lazy="raise_on_sql",
        cascade="save-update, merge",
        passive_deletes=True,
    )

    @property
    def tickets_sold(self):
        return self.total_tickets - self.available_tickets

    def first_type_on_sale(self, now):
        """The type whose price is the event's ``ticket_price``: the first on sale in display
        order, else the first buyers can see, else the first."""
        types = self.ticket_types
        return (
            next((t for t in types if t.on_sale_at(now)), None)
            or next((t for t in types if not t.hidden), None)
            or (types[0] if types else None)
        )
