import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base
from .types import UTCDateTime, status_enum, utcnow


class EmailKind(enum.StrEnum):
    ORDER_CONFIRMATION = "order_confirmation"
    ORDER_CANCELLATION = "order_cancellation"
    #: money that arrived after its hold expired and its tickets were gone, given back
    PAYMENT_REFUNDED = "payment_refunded"
    #: tickets freed for someone on the waiting list, held for them to pay (the order's hold)
    WAITING_LIST_OFFER = "waiting_list_offer"


class EmailStatus(enum.StrEnum):
    PENDING = "pending"  # to be sent; a job is queued, or the sweep will queue one
    SENT = "sent"
    FAILED = "failed"  # gave up after the last attempt; an organiser can resend it


class OutboxEmail(Base):
    """An email owed to a customer, written in the same transaction as the change it reports, so
    that it is neither lost (the change committed) nor sent for nothing (the change did not)."""

    __tablename__ = "email_outbox"
    __table_args__ = (
        # One email of each kind per order, however often the change is retried.
        UniqueConstraint("order_id", "kind", name="uq_email_outbox_order_id_kind"),
        # The sweep's question: which pending emails are overdue?
        Index("ix_email_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    kind: Mapped[EmailKind] = mapped_column(status_enum(EmailKind, "email_kind", length=32))
    status: Mapped[EmailStatus] = mapped_column(
        status_enum(EmailStatus, "email_status"), default=EmailStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
