import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base
from .types import UTCDateTime, utcnow


class TicketType(Base):
    """A kind of ticket an event sells, at its own price, with an optional capacity of its own
    inside the event's: "VIP, 20 places at 120.00". The event's ``available_tickets`` stays the
    shared limit; ``sold`` counts the type's tickets taken: by orders held or confirmed, and
    ``set_aside`` of them for the type's waiting list (``ticketing.domain.waiting_list``)."""

    __tablename__ = "ticket_types"
    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity_not_negative"),
        CheckConstraint("sold >= 0", name="sold_not_negative"),
        CheckConstraint("capacity IS NULL OR sold <= capacity", name="sold_within_capacity"),
        CheckConstraint("set_aside >= 0 AND set_aside <= sold", name="set_aside_within_sold"),
        CheckConstraint("min_per_order >= 1", name="min_per_order_positive"),
        CheckConstraint("max_per_order >= min_per_order", name="max_per_order_not_below_min"),
        CheckConstraint(
            "sales_start IS NULL OR sales_end IS NULL OR sales_start < sales_end",
            name="sales_window_ordered",
        ),
        # An event's types in display order: the event's page and the purchase's choice.
        Index("ix_ticket_types_event_id_position", "event_id", "position"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # CASCADE: an event without sales may be deleted with its types; one with sales cannot,
    # because its orders (and their items) refer to it with RESTRICT.
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    # In minor units of the event's currency.
    price_cents: Mapped[int] = mapped_column(BigInteger)
    #: None: limited by the event's capacity alone
    capacity: Mapped[int | None] = mapped_column(Integer)
    sold: Mapped[int] = mapped_column(Integer, default=0)
    #: tickets given back while people wait for this type: kept out of public sale (out of the
    #: event's ``available_tickets``, and counted in ``sold``) until the waiting list's matching
    #: job makes offers of them
    set_aside: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sales_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sales_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    min_per_order: Mapped[int] = mapped_column(Integer, default=1)
    max_per_order: Mapped[int] = mapped_column(Integer)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def on_sale_at(self, now, *, hidden_too=False):
        """Whether buyers may take this type at ``now`` (its event being on sale); hidden or not
        with ``hidden_too`` (a promo code unlocks it)."""
        return (
            (hidden_too or not self.hidden)
            and (self.sales_start is None or self.sales_start <= now)
            and (self.sales_end is None or now < self.sales_end)
        )

    def available_within(self, event_available):
        """What is left of this type, given what is left of its event."""
        if self.capacity is None:
            return event_available
        return min(self.capacity - self.sold, event_available)
