import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base
from .types import UTCDateTime, status_enum, utcnow


class TicketStatus(enum.StrEnum):
    VALID = "valid"  # admits its attendee (once: see checked_in_at)
    VOID = "void"  # its order was cancelled; admits nobody


class Ticket(Base):
    """One admission, issued when its order is confirmed, one per unit of each item.

    Its code is not stored: it is derived from the id with the server's secret
    (``ticketing.domain.tickets.TicketCodes``), so it can be shown again at any time, and only
    its SHA-256 is kept to find the ticket a scanner read; a leaked table admits nobody.
    """

    __tablename__ = "tickets"
    __table_args__ = (
        # A ticket belongs to its order, and its type is one of the order's items (the
        # confirmation issues the tickets from them). Its one reference is to the order's row,
        # which the confirming statement itself updates: a foreign key to a row some other
        # transaction wrote locks that row (FOR KEY SHARE) for every ticket inserted, and the
        # hot event and type rows, or the order's items on the pages reservations insert into,
        # are all such rows (`make bench`, hot event: 162 us per ticket under load for a key
        # to the items). ``event_id`` is the order's, written with it.
        UniqueConstraint("code_hash", name="uq_tickets_code_hash"),
        # An order's tickets, in the order they were issued.
        Index("ix_tickets_order_id_created_at_id", "order_id", "created_at", "id"),
        # An event's attendee list, in keyset pages and batches.
        Index("ix_tickets_event_id_created_at_id", "event_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    ticket_type_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    #: the buyer's until the buyer names someone else
    attendee_name: Mapped[str] = mapped_column(String(200))
    attendee_email: Mapped[str] = mapped_column(String(254))
    status: Mapped[TicketStatus] = mapped_column(
        status_enum(TicketStatus, "ticket_status"), default=TicketStatus.VALID
    )
    #: hex SHA-256 of the normalised code
    code_hash: Mapped[str] = mapped_column(String(64))
    #: set by the check-in that admitted it, cleared when that check-in is undone
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CheckIn(Base):
    """A scan that admitted a ticket, kept when it is undone (``undone_at``), with the key that
    made it and the scanner's nonce, whose retry replays this answer."""

    __tablename__ = "check_ins"
    __table_args__ = (
        # A scanner's nonce names one scan per event, so its retry finds the first answer.
        UniqueConstraint("event_id", "nonce", name="uq_check_ins_event_id_nonce"),
        Index("ix_check_ins_ticket_id", "ticket_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="RESTRICT"))
    nonce: Mapped[str | None] = mapped_column(String(100))
    #: the database key that scanned it; None for the keys of the settings (see key_name)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    key_name: Mapped[str] = mapped_column(String(200))
    checked_in_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
