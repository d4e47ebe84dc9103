"""Promo codes: an event's discount and access codes, managed by organisers."""

import uuid

import colander

from ticketing.domain import events as events_domain
from ticketing.domain import promo_codes as domain
from ticketing.domain.errors import (
    EventNotFound,
    EventReadOnly,
    MaxUsesBelowUses,
    PromoCodeNotFound,
    PromoCodeTaken,
    PromoCodeUsed,
)
from ticketing.models import DiscountType
from ticketing.models.types import utcnow
from ticketing.openapi import Success, api_doc
from ticketing.security import ORGANISE, READ

from . import JSON, ApiService, fields_of, uuid_from_path
from .events import LOCATION, event_id_from
from .schemas import (
    Money,
    NullableNode,
    StrictBoolean,
    StrictInteger,
    StrictMappingSchema,
    StrictSequence,
    StrictString,
    UTCDateTime,
    json_body_validator,
    strip,
)
from .serialize import PromoCodeResource, promo_code_json

#: what an organiser may write as a code: no spaces or look-alike punctuation to mistype
CODE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class Discount(StrictMappingSchema):
    type = colander.SchemaNode(
        StrictString(), validator=colander.OneOf([each.value for each in DiscountType])
    )
    value = colander.SchemaNode(
        Money(),
        description="percent: of each ticket's price, above 0 and at most 100, with at most 2 "
        "decimals (rounded half-up to the currency's minor unit); amount: off each ticket, in "
        "the event's currency. A ticket never costs less than 0; 100 percent makes it free.",
    )


class TicketTypeIds(colander.SequenceSchema):
    schema_type = StrictSequence
    ticket_type_id = colander.SchemaNode(StrictString(), validator=colander.uuid)


def _fields(optional):
    """The fields of a promo code; for a change (``optional``) each may be left out."""

    def given(default):
        return colander.drop if optional else default

    class Fields(StrictMappingSchema):
        code = colander.SchemaNode(
            StrictString(),
            preparer=strip,
            validator=colander.Regex(CODE_PATTERN, "Letters, digits, - and _; 1 to 64."),
            description="What buyers type; compared case-insensitively, unique in the event.",
            **({"missing": colander.drop} if optional else {}),
        )
        discount = Discount(**({"missing": colander.drop} if optional else {}))
        max_uses = NullableNode(
            StrictInteger(),
            validator=colander.Range(1, 1_000_000),
            missing=given(None),
            description="How many orders it may discount (one use per order, whatever its "
            "tickets); null: any number. An order holds its use while it is held, being paid "
            "or confirmed; released, expired, failed and cancelled orders give it back.",
        )
        valid_from = NullableNode(UTCDateTime(), missing=given(None))
        valid_until = NullableNode(UTCDateTime(), missing=given(None))
        ticket_type_ids = TicketTypeIds(
            missing=given([]), description="The types it applies to; empty: every type."
        )
        unlocks_hidden = colander.SchemaNode(
            StrictBoolean(),
            missing=given(False),
            description="The hidden types it applies to become visible and purchasable with it.",
        )
        disabled = colander.SchemaNode(
            StrictBoolean(),
            missing=given(False),
            description="Refused as an unknown code is; a code that was used is disabled, not "
            "deleted.",
        )

    return Fields


class NewPromoCode(_fields(optional=False)):
    pass


class PromoCodeChanges(_fields(optional=True)):
    json_schema_extra = {"minProperties": 1}

    def validator(self, node, value):
        if not value:
            raise colander.Invalid(node, "Name at least one field to change.")


class CreatePromoCodeBody(StrictMappingSchema):
    promo_code = NewPromoCode()

    example = {
        "promo_code": {
            "code": "PARTNER20",
            "discount": {"type": "percent", "value": "20"},
            "max_uses": 50,
        }
    }


class UpdatePromoCodeBody(StrictMappingSchema):
    promo_code = PromoCodeChanges()

    example = {"promo_code": {"disabled": True}}


CODES_PATH = "/api/events/{id}/promo-codes"

event_promo_codes = ApiService(
    name="event_promo_codes", path=CODES_PATH, description="An event's promo codes"
)
event_promo_code = ApiService(
    name="event_promo_code", path=CODES_PATH + "/{code_id}", description="One promo code"
)


def code_id_from(request):
    return uuid_from_path(request, PromoCodeNotFound, name="code_id")


def _domain_fields(fields):
    fields = dict(fields)
    if "ticket_type_ids" in fields:
        fields["ticket_type_ids"] = [uuid.UUID(each) for each in fields["ticket_type_ids"]]
    return fields


@event_promo_codes.get(permission=READ)
@api_doc(
    Success(
        200,
        "The event's promo codes, oldest first, with their uses.",
        PromoCodeResource(),
        many=True,
    ),
    raises=(EventNotFound,),
)
def list_promo_codes(request):
    """List an event's promo codes

    Each with `uses`: the orders holding one of its uses now.
    """
    event, codes = domain.list_promo_codes(request.dbsession, event_id_from(request))
    return {
        "data": [promo_code_json(each, event) for each in codes],
        "meta": {"next_cursor": None},
    }


@event_promo_codes.post(
    schema=CreatePromoCodeBody(),
    validators=(json_body_validator,),
    content_type=JSON,
    permission=ORGANISE,
)
@api_doc(
    Success(201, "The new promo code.", PromoCodeResource(), headers=LOCATION),
    raises=(EventNotFound, EventReadOnly, PromoCodeTaken),
)
def create_promo_code(request):
    """Add a promo code

    A discount in percent of each ticket's price or an amount off each ticket, on the types it
    names (or all), for at most `max_uses` orders, perhaps unlocking hidden types.
    """
    with fields_of("promo_code"):
        event, created = domain.create_promo_code(
            request.dbsession,
            event_id_from(request),
            _domain_fields(request.validated["promo_code"]),
            now=utcnow(),
        )
    request.response.status_code = 201
    request.response.location = request.route_url(
        "event_promo_code", id=event.id, code_id=created.id
    )
    return {"data": promo_code_json(created, event)}


@event_promo_code.get(permission=READ)
@api_doc(
    Success(200, "The promo code.", PromoCodeResource()),
    raises=(EventNotFound, PromoCodeNotFound),
)
def get_promo_code(request):
    """Read a promo code"""
    event_id = event_id_from(request)
    event = events_domain.get_event(request.dbsession, event_id)
    found = domain.get_promo_code(request.dbsession, event_id, code_id_from(request))
    return {"data": promo_code_json(found, event)}


@event_promo_code.put(
    schema=UpdatePromoCodeBody(),
    validators=(json_body_validator,),
    content_type=JSON,
    permission=ORGANISE,
)
@api_doc(
    Success(200, "The changed promo code.", PromoCodeResource()),
    raises=(EventNotFound, PromoCodeNotFound, EventReadOnly, PromoCodeTaken, MaxUsesBelowUses),
)
def update_promo_code(request):
    """Change a promo code

    Any of its fields; `max_uses` may not drop below its uses. Orders made with it keep the
    discount they got.
    """
    with fields_of("promo_code"):
        event, updated = domain.update_promo_code(
            request.dbsession,
            event_id_from(request),
            code_id_from(request),
            _domain_fields(request.validated["promo_code"]),
            now=utcnow(),
        )
    return {"data": promo_code_json(updated, event)}


@event_promo_code.delete(permission=ORGANISE)
@api_doc(
    Success(204, "Deleted."),
    raises=(EventNotFound, PromoCodeNotFound, EventReadOnly, PromoCodeUsed),
)
def delete_promo_code(request):
    """Delete a promo code

    Only one that no order was ever made with; disable a used one instead
    (`"disabled": true`), 409 `promo_code_used` says so.
    """
    domain.delete_promo_code(request.dbsession, event_id_from(request), code_id_from(request))
    request.response.status_code = 204
    request.response.content_type = None  # a 204 has no content, so no content type either
    return request.response
