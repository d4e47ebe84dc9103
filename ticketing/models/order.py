import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import Base
from .types import UTCDateTime, status_enum, utcnow


class OrderStatus(enum.StrEnum):
    RESERVED = "reserved"  # a hold: tickets taken until expires_at, no money
    PENDING = "pending"  # tickets reserved, payment under way
    AWAITING_ACTION = "awaiting_action"  # the buyer must authenticate (3-D Secure); still held
    CONFIRMED = "confirmed"  # paid
    EXPIRED = "expired"  # a hold not paid in time; tickets released, no money kept
    FAILED = "failed"  # payment refused or abandoned; tickets released, no money kept
    CANCELLED = "cancelled"  # refunded in full, or a hold given back; tickets released


#: the states of a hold, which keeps its tickets until ``expires_at``
HOLD_STATUSES = (OrderStatus.RESERVED, OrderStatus.AWAITING_ACTION)

#: the states whose tickets are taken but not paid for: availability shows them as ``held``
HOLDING_STATUSES = (OrderStatus.RESERVED, OrderStatus.PENDING, OrderStatus.AWAITING_ACTION)


class GatewayKeys:
    """An order's idempotency keys at the payment gateway, from its ``id`` and
    ``payment_attempt``: of :class:`Order` and of the plain records the purchase keeps of one
    (``ticketing.domain.orders.OrderRecord``)."""

    @property
    def charge_idempotency_key(self):
        """The gateway key of this order's charge of its current payment attempt: retries of any
        kind reuse it. The first attempt's is the one a one-step purchase always had."""
        if (self.payment_attempt or 1) == 1:
            return f"order-{self.id}-charge"
        return f"order-{self.id}-charge-{self.payment_attempt}"

    @property
    def refund_idempotency_key(self):
        return f"order-{self.id}-refund"


class Order(GatewayKeys, Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_cents >= 0", name="unit_price_not_negative"),
        CheckConstraint("total_amount_cents >= 0", name="total_not_negative"),
        CheckConstraint("discount_cents >= 0", name="discount_not_negative"),
        # The unit price (the list price) is there when every item has the same price; the
        # total is what the buyer pays, after the discount.
        CheckConstraint(
            "unit_price_cents IS NULL "
            "OR total_amount_cents + discount_cents = unit_price_cents * quantity",
            name="total_is_price_times_quantity",
        ),
        # Keyset pagination, alone and under each filter the API offers.
        Index("ix_orders_created_at_id", "created_at", "id"),
        Index("ix_orders_event_id_created_at_id", "event_id", "created_at", "id"),
        Index("ix_orders_customer_email_created_at_id", "customer_email", "created_at", "id"),
        Index("ix_orders_status_created_at_id", "status", "created_at", "id"),
        # The hold-expiry job's question: which holds are past their time? Partial, as the next
        # one: a one-step purchase has no expiry (nor, mostly, a code), and an entry it need not
        # have is one its insert and its confirmation (an UPDATE of ``status``, never HOT) would
        # each write; the questions asked (``expires_at <= ...``, ``promo_code_id = ...``)
        # imply the predicates, so they still use them.
        Index(
            "ix_orders_status_expires_at",
            "status",
            "expires_at",
            postgresql_where=text("expires_at IS NOT NULL"),
            sqlite_where=text("expires_at IS NOT NULL"),
        ),
        # A promo code's orders: whether it was used, and its sales.
        Index(
            "ix_orders_promo_code_id",
            "promo_code_id",
            postgresql_where=text("promo_code_id IS NOT NULL"),
            sqlite_where=text("promo_code_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # RESTRICT: an event with sales history cannot be deleted.
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="RESTRICT"))
    customer_email: Mapped[str] = mapped_column(String(254))
    customer_name: Mapped[str] = mapped_column(String(200))
    #: tickets of every item together
    quantity: Mapped[int] = mapped_column(Integer)
    #: None when the items have different prices
    unit_price_cents: Mapped[int | None] = mapped_column(BigInteger)
    #: what the buyer pays (and paid): the items' list prices less ``discount_cents``
    total_amount_cents: Mapped[int] = mapped_column(BigInteger)
    #: the items' discounts together
    discount_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: the promo code whose use the order holds (while reserved, being paid or confirmed)
    promo_code_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("promo_codes.id", ondelete="RESTRICT")
    )
    #: the code's text as the buyer's order was made with it, as on a receipt
    promo_code: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[OrderStatus] = mapped_column(
        status_enum(OrderStatus, "order_status"),
        default=OrderStatus.PENDING,
    )
    # The client's Idempotency-Key; unique, so two requests with one key can never both insert.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    payment_reference: Mapped[str | None] = mapped_column(String(255))
    refund_reference: Mapped[str | None] = mapped_column(String(255))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    #: until when a hold (reserved or awaiting_action) keeps its tickets; None: not a hold
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the payment attempt under way or last made: each has its own charge idempotency key, so
    #: that a buyer whose card was declined or failed 3-D Secure can try another one
    payment_attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: the Idempotency-Key of the pay that started the current attempt: the same key answers
    #: as that attempt did
    payment_idempotency_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    items: Mapped[list["OrderItem"]] = relationship(
        order_by="OrderItem.line", lazy="selectin", cascade="save-update, merge"
    )


class OrderItem(Base):
    """The tickets of one type in an order, at the price they were bought for (the list price,
    and the promo code's discount). The type's name is kept as it was at the purchase, as on a
    receipt."""

    __tablename__ = "order_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_cents >= 0", name="unit_price_not_negative"),
        CheckConstraint(
            "subtotal_cents = unit_price_cents * quantity", name="subtotal_is_price_times_quantity"
        ),
        CheckConstraint(
            "discount_cents >= 0 AND discount_cents <= subtotal_cents", name="discount_in_subtotal"
        ),
        # "Has this type been sold?" (a type with sales cannot be deleted)
        Index("ix_order_items_ticket_type_id", "ticket_type_id"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    # RESTRICT: a type that was sold cannot be deleted.
    ticket_type_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ticket_types.id", ondelete="RESTRICT"), primary_key=True
    )
    #: the item's place in the order, as the buyer listed it
    line: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    #: the type's list price when bought; ``subtotal_cents`` is it times the quantity
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)
    subtotal_cents: Mapped[int] = mapped_column(BigInteger)
    #: the discount of all the item's tickets (each ticket's, times the quantity); the buyer
    #: paid ``subtotal_cents - discount_cents`` for them
    discount_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    @property
    def paid_cents(self):
        return self.subtotal_cents - self.discount_cents
