from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base
from .types import UTCDateTime, utcnow


class StripeEvent(Base):
    """A Stripe event already processed: Stripe delivers each at least once, and a redelivery
    must change nothing. The id is the key, so two copies processed at once cannot both be
    recorded: the second waits for the first's transaction and then fails its INSERT."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
