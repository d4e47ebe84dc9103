"""Promo codes: a code an organiser hands out ("PARTNER20") for a discount on some of an event's
ticket types, and perhaps access to hidden ones, for a limited number of orders.

A discount is per ticket: a percent of the type's list price, rounded half-up to the currency's
minor unit, or an amount off; a ticket never costs less than nothing. An order with a code has
each applicable item discounted; the order's total is what its buyer pays.

``max_uses`` counts orders, not tickets: a code is handed to a buyer or a party ("one order with
the partner's discount"), and the number of tickets one order may take is already limited by
the types (``max_per_order``) and their capacity. Counting orders also means an order is
discounted whole or not at all, never half-way because the last uses ran out mid-order.

A use is taken in the same atomic step as the tickets: on PostgreSQL by a conditional UPDATE of
the code's row inside the reserving statement (``ticketing.domain.inventory``), on SQLite by the
same UPDATE in the reserving transaction (SQLite serialises writers). The code's row is locked
after the event's and its types' rows, everywhere. An order holds its use while it is reserved,
being paid, awaiting its buyer or confirmed; released, expired, failed and cancelled orders give
it back (:func:`give_back_use`, from ``inventory.release_order``).
"""

import dataclasses
import functools
import uuid

from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from zope.sqlalchemy import mark_changed

from ticketing.models import (
    WHOLE_PERCENT,
    DiscountType,
    EventStatus,
    Order,
    OrderStatus,
    PromoCode,
    PromoCodeTicketType,
    TicketType,
)

from . import events
from .errors import (
    EventReadOnly,
    InvalidPromoCode,
    MaxUsesBelowUses,
    PromoCodeAlreadyApplied,
    PromoCodeExhausted,
    PromoCodeExpired,
    PromoCodeInvalid,
    PromoCodeNotApplicable,
    PromoCodeNotFound,
    PromoCodeTaken,
    PromoCodeUsed,
)

#: fields an organiser sets; ``discount`` is {"type", "value"} with value a Decimal (a percent,
#: or an amount in the event's currency)
FIELDS = (
    "code",
    "discount",
    "max_uses",
    "valid_from",
    "valid_until",
    "ticket_type_ids",
    "unlocks_hidden",
    "disabled",
)


def code_key(text):
    """The code as codes are compared: case-insensitively, without surrounding spaces."""
    return text.strip().lower()


def unit_discount(discount_type, discount_value, unit_price_cents):
    """The discount of one ticket at ``unit_price_cents``: a percent (``discount_value`` in
    hundredths of one) rounded half-up to the minor unit, or an amount; never above the price."""
    if discount_type == DiscountType.PERCENT:
        off = (unit_price_cents * discount_value + WHOLE_PERCENT // 2) // WHOLE_PERCENT
    else:
        off = discount_value
    return min(unit_price_cents, off)


@dataclasses.dataclass(frozen=True)
class AppliedCode:
    """A promo code as a purchase looked it up, to apply it as it was then (``revision``)."""

    id: uuid.UUID
    code: str
    discount_type: DiscountType
    discount_value: int
    #: the types it applies to; empty: every type of the event
    ticket_type_ids: frozenset
    unlocks_hidden: bool
    revision: int

    def applies_to(self, ticket_type_id):
        return not self.ticket_type_ids or ticket_type_id in self.ticket_type_ids

    def unlocks(self, ticket_type_id):
        """Whether buyers with this code may take the type even if it is hidden."""
        return self.unlocks_hidden and self.applies_to(ticket_type_id)

    def unit_discount(self, ticket_type_id, unit_price_cents):
        if not self.applies_to(ticket_type_id):
            return 0
        return unit_discount(self.discount_type, self.discount_value, unit_price_cents)

    def taking_parameters(self):
        """The reserving statement's parameters for the code (:data:`TAKE_USE_CTE`)."""
        percent = self.discount_type == DiscountType.PERCENT
        return {
            "p_code_id": self.id,
            "p_code_revision": self.revision,
            "p_code_type_ids": sorted(self.ticket_type_ids),
            "p_code_unlocks_hidden": self.unlocks_hidden,
            "p_code_percent": self.discount_value if percent else None,
            "p_code_amount": None if percent else self.discount_value,
        }


#: whether the code applies to ``types`` (a ticket_types row) in the reserving statement
_APPLIES = """(cardinality(CAST(:p_code_type_ids AS uuid[])) = 0
           OR types.id = ANY(CAST(:p_code_type_ids AS uuid[])))"""

#: the hidden types a code unlocks, in the reserving statement's test of a type on sale
UNLOCKED_SQL = f"(CAST(:p_code_unlocks_hidden AS boolean) AND {_APPLIES})"

#: the columns the reserving statement's ``taken`` gains with a code: whether it applies to the
#: item, and its discount per ticket (:func:`unit_discount` in SQL)
TAKEN_COLUMNS_SQL = f""",
           {_APPLIES} AS code_applies,
           CASE WHEN {_APPLIES}
                THEN LEAST(types.price_cents, COALESCE(
                    (types.price_cents * CAST(:p_code_percent AS bigint) + {WHOLE_PERCENT // 2})
                        / {WHOLE_PERCENT},
                    CAST(:p_code_amount AS bigint)))
                ELSE 0 END AS unit_discount_cents"""

#: the use of the code, taken in the reserving statement, after the event's and the types' rows
#: are locked and only if every item can be taken and one of them is the code's: the code as
#: looked up (its revision), enabled, valid at ``:p_now`` and not used up, re-checked under its
#: row lock. The statement's ``verdict`` joins it, so without the use nothing is taken.
TAKE_USE_CTE = """
code_taken AS (
    UPDATE promo_codes SET uses = promo_codes.uses + 1
    WHERE promo_codes.id = :p_code_id AND promo_codes.revision = :p_code_revision
      AND NOT promo_codes.disabled
      AND (promo_codes.max_uses IS NULL OR promo_codes.uses < promo_codes.max_uses)
      AND (promo_codes.valid_from IS NULL OR promo_codes.valid_from <= :p_now)
      AND (promo_codes.valid_until IS NULL OR :p_now < promo_codes.valid_until)
      AND EXISTS (SELECT FROM event)
      AND (SELECT count(*) FROM taken) = :p_item_count
      AND EXISTS (SELECT FROM taken WHERE taken.code_applies)
    RETURNING promo_codes.id
),"""


def look_up(dbsession, event_id, text, *, now, items=()):
    """The event's code ``text`` as an :class:`AppliedCode`, or raise why it cannot be used:
    unknown or disabled alike (:class:`PromoCodeInvalid`), not valid at ``now``, used up, or
    (for ``items`` that name their types) applicable to none of them. One statement."""
    rows = dbsession.execute(_code_with_types(), {"p_event_id": event_id, "p_key": code_key(text)})
    rows = rows.all()
    if not rows or rows[0].disabled:
        if not rows:
            events.get_event(dbsession, event_id)  # an unknown event is not a bad code
        raise PromoCodeInvalid("No such promo code for this event.")
    first = rows[0]
    if not _valid_at(first, now):
        raise PromoCodeExpired(
            f"The promo code is valid from {_when(first.valid_from, 'the start')} until "
            f"{_when(first.valid_until, 'the event')}."
        )
    if first.max_uses is not None and first.uses >= first.max_uses:
        raise PromoCodeExhausted("The promo code's uses are all taken.")
    code = AppliedCode(
        id=first.id,
        code=first.code,
        discount_type=DiscountType(first.discount_type),
        discount_value=first.discount_value,
        ticket_type_ids=frozenset(row.ticket_type_id for row in rows if row.ticket_type_id),
        unlocks_hidden=first.unlocks_hidden,
        revision=first.revision,
    )
    named = [item.ticket_type_id for item in items if item.ticket_type_id is not None]
    if named and not any(code.applies_to(type_id) for type_id in named):
        raise PromoCodeNotApplicable("The promo code applies to none of these ticket types.")
    return code


@functools.cache
def _code_with_types():
    codes = PromoCode.__table__
    links = PromoCodeTicketType.__table__
    return (
        select(
            codes.c.id,
            codes.c.code,
            codes.c.discount_type,
            codes.c.discount_value,
            codes.c.max_uses,
            codes.c.uses,
            codes.c.valid_from,
            codes.c.valid_until,
            codes.c.unlocks_hidden,
            codes.c.disabled,
            codes.c.revision,
            links.c.ticket_type_id,
        )
        .outerjoin(links, links.c.promo_code_id == codes.c.id)
        .where(
            codes.c.event_id == bindparam("p_event_id", type_=codes.c.event_id.type),
            codes.c.code_key == bindparam("p_key"),
        )
    )


def _valid_at(code, now):
    return (code.valid_from is None or code.valid_from <= now) and (
        code.valid_until is None or now < code.valid_until
    )


def _when(moment, otherwise):
    return otherwise if moment is None else moment.isoformat().replace("+00:00", "Z")


def discounted(code, taken):
    """``taken`` (:class:`~ticketing.domain.inventory.TakenItem`) with the code's discount per
    ticket on the items it applies to; None if it applies to none."""
    if not any(code.applies_to(item.ticket_type_id) for item in taken):
        return None
    return [
        dataclasses.replace(
            item, unit_discount_cents=code.unit_discount(item.ticket_type_id, item.unit_price_cents)
        )
        for item in taken
    ]


def take_use_in_turn(dbsession, code, *, now):
    """Take one use of ``code`` (as looked up) with a conditional UPDATE, for databases whose
    reserving statement cannot (SQLite, in the reserving transaction); False when it cannot be
    taken, after which the caller aborts."""
    taken = dbsession.execute(
        _conditional_use(code.id, now).where(PromoCode.revision == code.revision)
    ).first()
    return taken is not None


def _conditional_use(code_id, now, *, check_validity=True):
    conditions = [
        PromoCode.id == code_id,
        PromoCode.max_uses.is_(None) | (PromoCode.uses < PromoCode.max_uses),
    ]
    if check_validity:
        conditions += [
            PromoCode.disabled.is_(False),
            PromoCode.valid_from.is_(None) | (PromoCode.valid_from <= now),
            PromoCode.valid_until.is_(None) | (PromoCode.valid_until > now),
        ]
    return (
        update(PromoCode)
        .where(*conditions)
        .values(uses=PromoCode.uses + 1)
        .returning(PromoCode.id)
        .execution_options(synchronize_session=False)
    )


def holds_use(order_id):
    """SQL: whether the order holds a use of a code (for
    :func:`~ticketing.domain.inventory.release_order` to ask in a statement it runs anyway)."""
    return exists().where(Order.id == order_id, Order.promo_code_id.is_not(None))


def give_back_use(dbsession, order_id):
    """The order's use goes back to its code; call it where the order's tickets go back, with
    the event's and types' rows locked first, for an order that :func:`holds_use`."""
    dbsession.execute(
        update(PromoCode)
        .where(
            PromoCode.id
            == select(Order.promo_code_id).where(Order.id == order_id).scalar_subquery()
        )
        .values(uses=PromoCode.uses - 1)
        .execution_options(synchronize_session=False)
    )
    mark_changed(dbsession)


def retake_use(dbsession, order_id, *, now):
    """An order that gave its use back takes it again (an expired hold paid after all): False,
    changing nothing, if its code is used up meanwhile. The code's discount was agreed when the
    order was made, so its validity and being disabled since do not matter; its uses do."""
    code_id = dbsession.scalar(select(Order.promo_code_id).where(Order.id == order_id))
    if code_id is None:
        return True
    return (
        dbsession.execute(_conditional_use(code_id, now, check_validity=False)).first() is not None
    )


#: how many times a purchase (or a hold's payment) tries to apply a code that its organiser
#: keeps changing meanwhile
ATTEMPTS = 3


def refuse(dbsession, event_id, text, items, *, now):
    """After the reserving statement took nothing: raise the code's reason if it has one now (it
    was used up, disabled or moved out of its validity meanwhile, or applies to none of the
    types taken); else return the code as it is now: if its revision is not the one applied, an
    organiser changed it meanwhile, and the purchase may try again with it; if it is, the
    tickets are the reason."""
    code = look_up(dbsession, event_id, text, now=now, items=items)
    if items[0].ticket_type_id is None:
        only = dbsession.scalars(
            select(TicketType.id).where(
                TicketType.event_id == event_id, TicketType.hidden.is_(False)
            )
        ).all()
        if len(only) == 1 and not code.applies_to(only[0]):
            raise PromoCodeNotApplicable("The promo code does not apply to this ticket type.")
    return code


def apply_to_hold(dbsession, order_id, text, *, now):
    """Apply a promo code to a hold that has none yet, as it is paid: the code's use is taken
    with a conditional UPDATE (the order's row locked, then the code's), and the hold's items
    and total are discounted. Returns the order. The hold's own code again changes nothing;
    another raises :class:`PromoCodeAlreadyApplied`. Only a ``reserved`` hold is changed: the
    caller's next steps answer for any other state."""
    order = dbsession.scalar(
        select(Order)
        .where(Order.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if order is None or order.status != OrderStatus.RESERVED:
        return order
    if order.promo_code_id is not None:
        if code_key(order.promo_code) != code_key(text):
            raise PromoCodeAlreadyApplied(
                f"The order was made with the promo code {order.promo_code}; it keeps it."
            )
        return order
    code = look_up(dbsession, order.event_id, text, now=now, items=order.items)
    attempts = 1
    while not take_use_in_turn(dbsession, code, now=now):
        if attempts == ATTEMPTS:
            raise PromoCodeExhausted("The promo code's uses were taken meanwhile.")
        # Used up since its look-up a moment ago (look_up raises then), or changed by its
        # organiser: again, with the code as it is now.
        code = look_up(dbsession, order.event_id, text, now=now, items=order.items)
        attempts += 1
    discount_total = 0
    for item in order.items:
        item.discount_cents = (
            code.unit_discount(item.ticket_type_id, item.unit_price_cents) * item.quantity
        )
        discount_total += item.discount_cents
    order.discount_cents = discount_total
    order.total_amount_cents = sum(item.subtotal_cents for item in order.items) - discount_total
    order.promo_code_id = code.id
    order.promo_code = code.code
    order.updated_at = now
    dbsession.flush()
    return order


def priced_types(event, types, code):
    """``types`` (the event's, as the caller may see them) with the hidden ones ``code``
    unlocks, each with its price per ticket with the code (None where it does not apply), in
    display order."""
    shown = {each.id for each in types}
    return [
        (
            each,
            each.price_cents - code.unit_discount(each.id, each.price_cents)
            if code.applies_to(each.id)
            else None,
        )
        for each in event.ticket_types
        if each.id in shown or (each.hidden and code.unlocks(each.id))
    ]


# The organisers' side: creating, listing, changing and deleting an event's codes.


def forget_ticket_type(dbsession, ticket_type_id):
    """A ticket type is being deleted: the codes that name it no longer do, and one that named
    it alone is disabled rather than left applying to every type."""
    named = select(PromoCodeTicketType.promo_code_id).where(
        PromoCodeTicketType.ticket_type_id == ticket_type_id
    )
    for code in dbsession.scalars(
        select(PromoCode).where(PromoCode.id.in_(named)).with_for_update()
    ):
        code.ticket_types = [
            link for link in code.ticket_types if link.ticket_type_id != ticket_type_id
        ]
        code.disabled = code.disabled or not code.ticket_types
        code.revision += 1
    # Before the type goes: its links are the codes' to delete, not the database's cascade.
    dbsession.flush()


def list_promo_codes(dbsession, event_id):
    """The event (for its currency) and its codes, newest last."""
    event = events.get_event(dbsession, event_id)
    codes = dbsession.scalars(
        select(PromoCode)
        .where(PromoCode.event_id == event_id)
        .order_by(PromoCode.created_at, PromoCode.id)
    ).all()
    return event, codes


def get_promo_code(dbsession, event_id, code_id, *, for_update=False):
    statement = select(PromoCode).where(PromoCode.id == code_id, PromoCode.event_id == event_id)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    found = dbsession.scalar(statement)
    if found is None:
        raise PromoCodeNotFound(f"Event {event_id} has no promo code {code_id}.")
    return found


def create_promo_code(dbsession, event_id, fields, *, now):
    """Add a code to an event; ``fields`` as in :data:`FIELDS` (code and discount required)."""
    event = _changeable_event(dbsession, event_id)
    code = PromoCode(
        id=uuid.uuid4(), event_id=event.id, uses=0, revision=1, created_at=now, updated_at=now
    )
    _set_fields(dbsession, event, code, {"unlocks_hidden": False, "disabled": False, **fields})
    dbsession.add(code)
    _flush_unique(dbsession, code)
    return event, code


def update_promo_code(dbsession, event_id, code_id, changes, *, now):
    """Change a code; its ``max_uses`` may not drop below the uses orders hold. Orders made with
    it keep the discount they got."""
    event = _changeable_event(dbsession, event_id)
    code = get_promo_code(dbsession, event_id, code_id, for_update=True)
    _set_fields(dbsession, event, code, changes)
    if code.max_uses is not None and code.max_uses < code.uses:
        raise MaxUsesBelowUses(
            f"{code.uses} orders hold a use of the code; max_uses cannot be {code.max_uses}.",
            uses=code.uses,
        )
    code.revision += 1
    code.updated_at = now
    _flush_unique(dbsession, code)
    return event, code


def delete_promo_code(dbsession, event_id, code_id):
    """Delete a code no order ever used; a used one is disabled instead (``disabled: true``)."""
    _changeable_event(dbsession, event_id)
    code = get_promo_code(dbsession, event_id, code_id, for_update=True)
    if dbsession.scalar(select(exists().where(Order.promo_code_id == code.id))):
        raise PromoCodeUsed(
            f"Orders were made with {code.code}; disable it (disabled: true) instead."
        )
    dbsession.delete(code)
    try:
        dbsession.flush()
    except IntegrityError:
        # An order took it meanwhile (SQLite, where the check above is not locked).
        raise PromoCodeUsed(f"Orders were made with {code.code}.") from None


def _changeable_event(dbsession, event_id):
    event = events.get_event(dbsession, event_id, with_types=True)
    if event.status == EventStatus.COMPLETED:
        raise EventReadOnly(f"Event {event_id} is completed; its promo codes cannot change.")
    return event


def _set_fields(dbsession, event, code, fields):
    fields = dict(fields)
    if "code" in fields:
        code.code = fields.pop("code")
        code.code_key = code_key(code.code)
    if "discount" in fields:
        discount = fields.pop("discount")
        code.discount_type = DiscountType(discount["type"])
        code.discount_value = _discount_value(code.discount_type, discount["value"], event)
    if "ticket_type_ids" in fields:
        wanted = set(fields.pop("ticket_type_ids"))
        ours = {each.id for each in event.ticket_types}
        strangers = sorted(str(each) for each in wanted - ours)
        if strangers:
            raise InvalidPromoCode(
                f"Event {event.id} has no ticket type {', '.join(strangers)}.",
                field="ticket_type_ids",
            )
        code.ticket_types = [
            PromoCodeTicketType(promo_code_id=code.id, ticket_type_id=type_id)
            for type_id in sorted(wanted)
        ]
    for name, value in fields.items():
        setattr(code, name, value)
    if code.valid_from and code.valid_until and code.valid_until <= code.valid_from:
        raise InvalidPromoCode("valid_until must come after valid_from.", field="valid_until")


def _discount_value(discount_type, value, event):
    if discount_type == DiscountType.PERCENT:
        hundredths = value * 100
        if hundredths != hundredths.to_integral_value() or not 0 < hundredths <= WHOLE_PERCENT:
            raise InvalidPromoCode(
                "A percent is above 0 and at most 100, with at most 2 decimals.",
                field="discount.value",
            )
        return int(hundredths)
    amount = events.price_in(value, event.currency, "discount.value")
    if amount <= 0:
        raise InvalidPromoCode("An amount off is above 0.", field="discount.value")
    return amount


def _flush_unique(dbsession, code):
    with dbsession.no_autoflush:
        taken = dbsession.scalar(
            select(
                exists().where(
                    PromoCode.event_id == code.event_id,
                    PromoCode.code_key == code.code_key,
                    PromoCode.id != code.id,
                )
            )
        )
    if taken:
        raise PromoCodeTaken(f"The event has a promo code {code.code} already.")
    try:
        dbsession.flush()
    except IntegrityError:
        # Another organiser's request made the same code meanwhile (the other rules are
        # checked above, so the unique constraint is the one refusing it).
        raise PromoCodeTaken(f"The event has a promo code {code.code} already.") from None


def sales_by_code(dbsession, event_id):
    """Each code's confirmed orders, tickets and discount: (code text, orders, tickets, cents)."""
    return dbsession.execute(
        select(
            Order.promo_code,
            func.count(),
            func.sum(Order.quantity),
            func.sum(Order.discount_cents),
        )
        .where(
            Order.event_id == event_id,
            Order.status == OrderStatus.CONFIRMED,
            Order.promo_code.is_not(None),
        )
        .group_by(Order.promo_code)
        .order_by(Order.promo_code)
    ).all()
