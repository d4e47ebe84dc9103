import uuid
from datetime import datetime

from sqlalchemy import JSON, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base
from .types import UTCDateTime


class EventLogEntry(Base):
    """A domain event (``ticketing.events``), written in the same transaction as the change it
    reports: an entry exists exactly for the changes that committed. Plugins read it to act on
    events durably (the webhooks plugin delivers from it); entries are never changed."""

    __tablename__ = "event_log"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    #: e.g. ``order.confirmed`` (``DomainEvent.type``)
    type: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    #: the resource as the API shows it, when the event happened
    data: Mapped[dict] = mapped_column(JSON)
