import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base
from .types import UTCDateTime, status_enum, utcnow


class EntryStatus(enum.StrEnum):
    WAITING = "waiting"  # in line
    OFFERED = "offered"  # its offer (a hold, ``order_id``) is out until the hold expires
    PURCHASED = "purchased"  # the offer was paid
    EXPIRED = "expired"  # the offer was not paid in time (or was given back); its turn is over
    LEFT = "left"  # left the list


#: the states of an entry still in the list: one of them per email and ticket type
ACTIVE_ENTRY_STATUSES = (EntryStatus.WAITING, EntryStatus.OFFERED)


class WaitingListEntry(Base):
    """Someone waiting for ``quantity`` tickets of a sold-out type. Entries of a type are served
    in the order they joined (``created_at``, then ``id``); an offer is a hold (an order
    ``reserved``) made for the entry's email and name, paid like any hold."""

    __tablename__ = "waiting_list_entries"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        # The line of a type, in order: the matching job's and the position's question.
        Index(
            "ix_waiting_list_entries_ticket_type_id_status_created_at_id",
            "ticket_type_id",
            "status",
            "created_at",
            "id",
        ),
        # The admin's list of an event's entries, in keyset order.
        Index("ix_waiting_list_entries_event_id_created_at_id", "event_id", "created_at", "id"),
        # One entry in the list per email and type: joining twice is refused.
        Index(
            "uq_waiting_list_entries_active_email",
            "ticket_type_id",
            "email",
            unique=True,
            postgresql_where=text("status IN ('waiting', 'offered')"),
            sqlite_where=text("status IN ('waiting', 'offered')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # CASCADE: an event or a type that may be deleted (nothing sold) goes with its list.
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    ticket_type_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ticket_types.id", ondelete="CASCADE")
    )
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[EntryStatus] = mapped_column(
        status_enum(EntryStatus, "waiting_list_entry_status"), default=EntryStatus.WAITING
    )
    #: the offer: a hold made for this entry (RESTRICT: orders are never deleted)
    order_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("orders.id", ondelete="RESTRICT"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: when the entry stopped waiting for good: purchased, expired or left
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
