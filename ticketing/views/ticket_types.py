"""Ticket types: the kinds of ticket an event sells ("VIP", "Early bird"), and what is left."""

import colander
from cornice.validators import colander_querystring_validator

from ticketing.domain import events as events_domain
from ticketing.domain import promo_codes
from ticketing.domain import ticket_types as domain
from ticketing.domain.errors import (
    CapacityBelowSold,
    EventNotFound,
    EventReadOnly,
    LastTicketType,
    PromoCodeExhausted,
    PromoCodeExpired,
    PromoCodeInvalid,
    TicketTypeHasOrders,
    TicketTypeNotFound,
)
from ticketing.models import EventStatus
from ticketing.models.types import utcnow
from ticketing.money import format_money
from ticketing.openapi import Success, api_doc
from ticketing.security import ORGANISE, sees_everything

from . import JSON, ApiService, fields_of, uuid_from_path
from .events import LOCATION, event_id_from
from .schemas import (
    Money,
    NullableNode,
    QueryString,
    StrictBoolean,
    StrictInteger,
    StrictMappingSchema,
    StrictString,
    UTCDateTime,
    json_body_validator,
    strip,
    text_field,
)
from .serialize import (
    AvailabilityResource,
    TicketTypeResource,
    availability_json,
    ticket_type_json,
)


@colander.deferred
def per_order_range(node, kw):
    return colander.Range(1, kw["request"].registry["max_tickets_per_order"])


def _fields(optional):
    """The fields of a ticket type; for a change (``optional``) each may be left out."""

    def given(default):
        return colander.drop if optional else default

    class Fields(StrictMappingSchema):
        name = text_field(**({"missing": colander.drop} if optional else {}))
        description = NullableNode(
            StrictString(),
            preparer=strip,
            validator=colander.Length(max=2000),
            missing=given(None),
        )
        price = colander.SchemaNode(
            Money(),
            description="In the event's currency.",
            **({"missing": colander.drop} if optional else {}),
        )
        capacity = NullableNode(
            StrictInteger(),
            validator=colander.Range(0, 1_000_000),
            missing=given(None),
            description="Its own capacity inside the event's; null (the default): limited by "
            "the event's alone. Never below what it has sold.",
        )
        sales_start = NullableNode(
            UTCDateTime(), missing=given(None), description="On sale from (UTC); null: now."
        )
        sales_end = NullableNode(
            UTCDateTime(), missing=given(None), description="On sale until (UTC); null: the event."
        )
        min_per_order = colander.SchemaNode(
            StrictInteger(), validator=per_order_range, missing=given(1)
        )
        max_per_order = colander.SchemaNode(
            StrictInteger(),
            validator=per_order_range,
            missing=given(None),
            description="Default and ceiling: the per-order maximum of every order "
            "(`ticketing.max_tickets_per_order`, 10).",
        )
        hidden = colander.SchemaNode(
            StrictBoolean(),
            missing=given(False),
            description="Hidden types are seen and sold by organisers only.",
        )
        position = colander.SchemaNode(
            StrictInteger(),
            validator=colander.Range(0, 1_000_000),
            missing=given(None),
            description="Display order; by default after the event's last type.",
        )

    return Fields


class NewTicketType(_fields(optional=False)):
    pass


class TicketTypeChanges(_fields(optional=True)):
    json_schema_extra = {"minProperties": 1}

    def validator(self, node, value):
        if not value:
            raise colander.Invalid(node, "Name at least one field to change.")


class CreateTicketTypeBody(StrictMappingSchema):
    ticket_type = NewTicketType()

    example = {
        "ticket_type": {
            "name": "VIP",
            "description": "Front rows and a drink",
            "price": "120.00",
            "capacity": 20,
        }
    }


class UpdateTicketTypeBody(StrictMappingSchema):
    ticket_type = TicketTypeChanges()

    example = {"ticket_type": {"price": "35.00", "sales_end": "2030-03-01T00:00:00Z"}}


class ListTicketTypesQuery(colander.MappingSchema):
    promo_code = colander.SchemaNode(
        QueryString(),
        missing=None,
        validator=colander.Length(1, 64),
        description="A promo code of the event: the hidden types it unlocks are listed too, and "
        "each type's `discounted_price` is its price with the code. Counts against the purchase "
        "rate limit.",
    )


TYPES_PATH = "/api/events/{id}/ticket-types"

event_ticket_types = ApiService(
    name="event_ticket_types", path=TYPES_PATH, description="An event's ticket types"
)
event_ticket_type = ApiService(
    name="event_ticket_type", path=TYPES_PATH + "/{ticket_type_id}", description="One ticket type"
)
event_availability = ApiService(
    name="event_availability",
    path="/api/events/{id}/availability",
    description="What is left of an event",
)


def type_id_from(request):
    return uuid_from_path(request, TicketTypeNotFound, name="ticket_type_id")


def _visible_event(request, event):
    """Buyers see published and completed events only."""
    if event.status == EventStatus.DRAFT and not sees_everything(request):
        raise EventNotFound(f"No event has the id {event.id}.")
    return event


@event_ticket_types.get(schema=ListTicketTypesQuery(), validators=(colander_querystring_validator,))
@api_doc(
    Success(200, "The event's ticket types, in display order.", TicketTypeResource(), many=True),
    raises=(EventNotFound, PromoCodeInvalid, PromoCodeExpired, PromoCodeExhausted),
    optional_auth=True,
)
def list_ticket_types(request):
    """List an event's ticket types

    Hidden types are listed for organisers only, or with a promo code that unlocks them
    (`?promo_code=`, which also gives each type's `discounted_price`).
    """
    event_id = event_id_from(request)
    event, types = domain.list_ticket_types(
        request.dbsession, event_id, include_hidden=sees_everything(request)
    )
    _visible_event(request, event)
    now = utcnow()
    text = request.validated["promo_code"]
    if text is None:
        data = [ticket_type_json(each, event, now=now) for each in types]
    else:
        code = promo_codes.look_up(request.dbsession, event_id, text, now=now)
        data = [
            {
                **ticket_type_json(each, event, now=now, unlocked=code.unlocks(each.id)),
                "discounted_price": None if price is None else format_money(price, event.currency),
            }
            for each, price in promo_codes.priced_types(event, types, code)
        ]
    return {"data": data, "meta": {"next_cursor": None}}


@event_ticket_types.post(
    schema=CreateTicketTypeBody(),
    validators=(json_body_validator,),
    content_type=JSON,
    permission=ORGANISE,
)
@api_doc(
    Success(201, "The new ticket type.", TicketTypeResource(), headers=LOCATION),
    raises=(EventNotFound, EventReadOnly),
)
def create_ticket_type(request):
    """Add a ticket type

    At its own price, and optionally with a capacity of its own inside the event's.
    """
    with fields_of("ticket_type"):
        event, created = domain.create_ticket_type(
            request.dbsession,
            event_id_from(request),
            request.validated["ticket_type"],
            max_per_order_ceiling=request.registry["max_tickets_per_order"],
        )
    request.response.status_code = 201
    request.response.location = request.route_url(
        "event_ticket_type", id=event.id, ticket_type_id=created.id
    )
    return {"data": ticket_type_json(created, event, now=utcnow())}


@event_ticket_type.get()
@api_doc(
    Success(200, "The ticket type.", TicketTypeResource()),
    raises=(EventNotFound, TicketTypeNotFound),
    optional_auth=True,
)
def get_ticket_type(request):
    """Read a ticket type

    A hidden type is found with an organiser key only.
    """
    event_id = event_id_from(request)
    organiser = sees_everything(request)
    event = _visible_event(request, events_domain.get_event(request.dbsession, event_id))
    found = domain.get_ticket_type(
        request.dbsession, event_id, type_id_from(request), include_hidden=organiser
    )
    return {"data": ticket_type_json(found, event, now=utcnow())}


@event_ticket_type.put(
    schema=UpdateTicketTypeBody(),
    validators=(json_body_validator,),
    content_type=JSON,
    permission=ORGANISE,
)
@api_doc(
    Success(200, "The changed ticket type.", TicketTypeResource()),
    raises=(EventNotFound, TicketTypeNotFound, EventReadOnly, CapacityBelowSold),
)
def update_ticket_type(request):
    """Change a ticket type

    Any of its fields; its capacity may not drop below what it has sold. Orders keep the price
    they were bought at.
    """
    with fields_of("ticket_type"):
        event, updated = domain.update_ticket_type(
            request.dbsession,
            event_id_from(request),
            type_id_from(request),
            request.validated["ticket_type"],
            now=utcnow(),
        )
    return {"data": ticket_type_json(updated, event, now=utcnow())}


@event_ticket_type.delete(permission=ORGANISE)
@api_doc(
    Success(204, "Deleted."),
    raises=(EventNotFound, TicketTypeNotFound, EventReadOnly, TicketTypeHasOrders, LastTicketType),
)
def delete_ticket_type(request):
    """Delete a ticket type

    Only one that was never sold, and not the event's last.
    """
    domain.delete_ticket_type(request.dbsession, event_id_from(request), type_id_from(request))
    request.response.status_code = 204
    request.response.content_type = None  # a 204 has no content, so no content type either
    return request.response


@event_availability.get()
@api_doc(
    Success(200, "What is left, per ticket type and for the event.", AvailabilityResource()),
    raises=(EventNotFound,),
    optional_auth=True,
)
def get_availability(request):
    """Read an event's availability

    Capacity, sold, held, set aside for the waiting list and available, for the event and each
    of its ticket types (hidden ones for organisers only), with the waiting list's offers and
    the people in line. A type's `available` is within what is left of the event.
    """
    event, rows, totals = domain.availability(
        request.dbsession, event_id_from(request), include_hidden=sees_everything(request)
    )
    _visible_event(request, event)
    return {"data": availability_json(event, rows, totals)}
