"""The webhooks plugin's tables: endpoints, the deliveries owed to them, and which logged
events were already turned into deliveries."""

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.models.meta import Base
from ticketing.models.types import UTCDateTime, status_enum, utcnow


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # to be sent: a job is queued, waits for its retry, or the sweep's
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # given up: 410 Gone, the retry window is over, or the endpoint went


class Webhook(Base):
    """An endpoint an integrator registered, with the event types it wants. Its secrets sign
    every delivery (Standard Webhooks); after a rotation the previous one signs too, until
    ``previous_secret_expires_at``."""

    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(500))
    #: the event types it receives (``ticketing.events.LOGGED_TYPES``)
    events: Mapped[list[str]] = mapped_column(JSON)
    #: ``whsec_<base64>``, as Standard Webhooks libraries take it: kept to sign, never shown again
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: why it was disabled: by an admin, by a 410 Gone, or after failing for the whole window
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    """One logged event owed to one webhook, with its attempts. Unique per (webhook, event):
    however often the event is fanned out, it is owed once; every attempt sends the event's id
    as ``webhook-id``, so the receiver deduplicates."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_webhook_event"),
        # The sweep's question: which pending deliveries are overdue?
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        # The delivery log of one webhook, newest first.
        Index("ix_webhook_deliveries_webhook_id_created_at", "webhook_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("event_log.id", ondelete="RESTRICT"))
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[DeliveryStatus] = mapped_column(
        status_enum(DeliveryStatus, "webhook_delivery_status"), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: the HTTP status of the last attempt; None when it got no answer
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: an attempt is under way until then (a worker killed mid-attempt lets it lapse)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookFanout(Base):
    """A logged event that was turned into its deliveries (or needed none): the sweep looks for
    recent events without one."""

    __tablename__ = "webhook_fanouts"

    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("event_log.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
