import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import Base
from .types import UTCDateTime, status_enum, utcnow


class DiscountType(enum.StrEnum):
    PERCENT = "percent"  # ``discount_value`` in hundredths of a percent: 2000 is 20%
    AMOUNT = "amount"  # ``discount_value`` in minor units of the event's currency, per ticket


#: ``discount_value`` of a percent discount: hundredths of a percent, so 100% is this
WHOLE_PERCENT = 10_000


class PromoCode(Base):
    """A code a buyer types at the checkout for a discount on some of an event's ticket types,
    and perhaps access to hidden ones. ``uses`` counts the orders holding one of its uses
    (reserved, pending, awaiting the buyer, or confirmed); an order that ends without being
    paid, or is cancelled, gives its use back."""

    __tablename__ = "promo_codes"
    __table_args__ = (
        # Codes compare case-insensitively: ``code_key`` is the code as compared.
        UniqueConstraint("event_id", "code_key"),
        CheckConstraint("uses >= 0", name="uses_not_negative"),
        CheckConstraint("max_uses IS NULL OR uses <= max_uses", name="uses_within_max"),
        CheckConstraint(
            "discount_type != 'percent' OR discount_value BETWEEN 1 AND 10000",
            name="percent_in_range",
        ),
        CheckConstraint("discount_value > 0", name="discount_positive"),
        CheckConstraint(
            "valid_from IS NULL OR valid_until IS NULL OR valid_from < valid_until",
            name="validity_ordered",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    #: as the organiser wrote it
    code: Mapped[str] = mapped_column(String(64))
    code_key: Mapped[str] = mapped_column(String(64))
    discount_type: Mapped[DiscountType] = mapped_column(status_enum(DiscountType, "discount_type"))
    discount_value: Mapped[int] = mapped_column(BigInteger)
    #: orders it may discount at once; None: any number
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the hidden types it applies to become visible and purchasable with it
    unlocks_hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    #: refused as an unknown code would be; a code that was used is disabled, not deleted
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: raised by every change an organiser makes: a purchase applies the code as it looked it
    #: up, and takes its use only if it is still that revision
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    ticket_types: Mapped[list["PromoCodeTicketType"]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def ticket_type_ids(self):
        """The types it applies to; empty: every type of the event."""
        return sorted(each.ticket_type_id for each in self.ticket_types)


class PromoCodeTicketType(Base):
    """A ticket type a promo code applies to (a code naming none applies to every type)."""

    __tablename__ = "promo_code_ticket_types"

    promo_code_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("promo_codes.id", ondelete="CASCADE"), primary_key=True
    )
    # A type can be deleted only if it was never sold; then it simply leaves its codes.
    ticket_type_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ticket_types.id", ondelete="CASCADE"), primary_key=True
    )
