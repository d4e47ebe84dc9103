"""Events: what organisers create and publish, and buyers browse."""

import colander
from cornice.validators import colander_querystring_validator

from ticketing.domain import events as domain
from ticketing.domain.errors import (
    ChangeRefused,
    CurrencyLocked,
    EventDatePassed,
    EventHasOrders,
    EventNotDraft,
    EventNotFound,
    EventReadOnly,
    InvalidCursor,
    TicketTypeRequired,
    TotalBelowSold,
)
from ticketing.models import EventStatus
from ticketing.models.types import utcnow
from ticketing.money import AmountNotInCurrency, to_minor_units
from ticketing.openapi import Success, api_doc
from ticketing.security import ORGANISE, sees_everything

from . import JSON, MAX_PAGE_SIZE, ApiService, fields_of, uuid_from_path
from .schemas import (
    Money,
    QueryString,
    StrictInteger,
    StrictMappingSchema,
    StrictString,
    UTCDateTime,
    in_the_future,
    invalid_child,
    json_body_validator,
    limit_field,
    text_field,
)
from .serialize import EventResource, event_json, page_json

DATE_DESCRIPTION = (
    'ISO-8601 with a UTC offset (e.g. "2030-07-15T18:00:00Z"); must lie in the future.'
)


@colander.deferred
def configured_currency(node, kw):
    return colander.OneOf(kw["request"].registry["currencies"])


@colander.deferred
def default_currency(node, kw):
    return kw["request"].registry["currencies"][0]


CURRENCY_DESCRIPTION = (
    "ISO 4217 code, one of the setting `ticketing.currencies` (the first is the default); every "
    "price of the event is in it."
)


def currency_field(description=CURRENCY_DESCRIPTION, **kwargs):
    return colander.SchemaNode(
        StrictString(), validator=configured_currency, description=description, **kwargs
    )


class EventFields(StrictMappingSchema):
    name = text_field()
    venue = text_field()
    date = colander.SchemaNode(UTCDateTime(), validator=in_the_future, description=DATE_DESCRIPTION)
    ticket_price = colander.SchemaNode(
        Money(), description='The price of the event\'s first ticket type, "General admission".'
    )
    currency = currency_field(missing=default_currency)
    total_tickets = colander.SchemaNode(
        StrictInteger(),
        validator=colander.Range(1, 1_000_000),
        description="The event's capacity, shared by all its ticket types.",
    )

    def validator(self, node, value):
        # The price has no more decimals than its currency.
        try:
            to_minor_units(value["ticket_price"], value["currency"])
        except AmountNotInCurrency as error:
            raise invalid_child(node, "ticket_price", str(error)) from None


class CreateEventBody(StrictMappingSchema):
    event = EventFields()

    example = {
        "event": {
            "name": "Concert",
            "venue": "Stadium",
            "date": "2030-07-15T18:00:00Z",
            "ticket_price": "50.00",
            "total_tickets": 100,
        }
    }


class EventChanges(StrictMappingSchema):
    name = text_field(missing=colander.drop)
    venue = text_field(missing=colander.drop)
    date = colander.SchemaNode(
        UTCDateTime(), validator=in_the_future, missing=colander.drop, description=DATE_DESCRIPTION
    )
    ticket_price = colander.SchemaNode(
        Money(),
        missing=colander.drop,
        description="The price of the event's only ticket type (with several, change each).",
    )
    currency = currency_field(
        missing=colander.drop, description=CURRENCY_DESCRIPTION + " Only while it has no orders."
    )
    total_tickets = colander.SchemaNode(
        StrictInteger(), validator=colander.Range(1, 1_000_000), missing=colander.drop
    )

    json_schema_extra = {"minProperties": 1}

    def validator(self, node, value):
        if not value:
            raise colander.Invalid(node, "Name at least one field to change.")


class UpdateEventBody(StrictMappingSchema):
    event = EventChanges()

    example = {"event": {"venue": "Arena", "ticket_price": "60.00"}}


class ListEventsQuery(colander.MappingSchema):
    limit = limit_field(MAX_PAGE_SIZE)
    cursor = colander.SchemaNode(
        QueryString(), missing=None, description="`meta.next_cursor` of the previous page."
    )
    status = colander.SchemaNode(
        QueryString(), missing=None, validator=colander.OneOf([s.value for s in EventStatus])
    )
    updated_since = colander.SchemaNode(
        UTCDateTime(empty_is_missing=True),
        missing=None,
        description="Only events changed at or after this time (ISO-8601 with an offset).",
    )


events = ApiService(name="events", path="/api/events", description="Events")
event = ApiService(name="event", path="/api/events/{id}", description="One event")
event_publish = ApiService(
    name="event_publish", path="/api/events/{id}/publish", description="Put an event on sale"
)


def event_id_from(request):
    return uuid_from_path(request, EventNotFound)


def shown(event, request):
    return event_json(event, now=utcnow(), include_hidden=sees_everything(request))


LOCATION = {
    "Location": {
        "description": "The URL of the resource.",
        "required": True,
        "schema": {"type": "string", "format": "uri"},
    }
}


@events.get(schema=ListEventsQuery(), validators=(colander_querystring_validator,))
@api_doc(
    Success(200, "A page of events, oldest first.", EventResource(), many=True),
    raises=(InvalidCursor,),
    optional_auth=True,
)
def list_events(request):
    """List events

    Buyers see published and completed events; with an organiser key, drafts too.
    """
    query = request.validated
    page = domain.list_events(
        request.dbsession,
        limit=query["limit"],
        cursor=query["cursor"],
        status=query["status"],
        updated_since=query["updated_since"],
        include_drafts=sees_everything(request),
    )
    return page_json(page, lambda each: shown(each, request))


@events.post(
    schema=CreateEventBody(),
    validators=(json_body_validator,),
    content_type=JSON,
    permission=ORGANISE,
)
@api_doc(Success(201, "The new draft event.", EventResource(), headers=LOCATION))
def create_event(request):
    """Create a draft event

    It goes on sale when it is published.
    """
    created = domain.create_event(
        request.dbsession,
        **request.validated["event"],
        max_per_order=request.registry["max_tickets_per_order"],
    )
    request.response.status_code = 201
    request.response.location = request.route_url("event", id=created.id)
    return {"data": shown(created, request)}


@event.get()
@api_doc(Success(200, "The event.", EventResource()), raises=(EventNotFound,), optional_auth=True)
def get_event(request):
    """Read an event

    A draft is found with an organiser key only.
    """
    event_id = event_id_from(request)
    found = domain.get_event(request.dbsession, event_id, with_types=True)
    if found.status == EventStatus.DRAFT and not sees_everything(request):
        raise EventNotFound(f"No event has the id {event_id}.")
    return {"data": shown(found, request)}


@event.put(
    schema=UpdateEventBody(),
    validators=(json_body_validator,),
    content_type=JSON,
    permission=ORGANISE,
)
@api_doc(
    Success(200, "The changed event.", EventResource()),
    raises=(
        EventNotFound,
        EventReadOnly,
        EventDatePassed,
        TotalBelowSold,
        CurrencyLocked,
        TicketTypeRequired,
        ChangeRefused,
    ),
)
def update_event(request):
    """Change an event

    Any of name, venue, date, ticket_price (of its only ticket type), currency (while it has no
    orders) and total_tickets; the tickets already sold stay sold.
    """
    with fields_of("event"):
        updated = domain.update_event(
            request.dbsession, event_id_from(request), request.validated["event"], now=utcnow()
        )
    return {"data": shown(updated, request)}


@event.delete(permission=ORGANISE)
@api_doc(Success(204, "Deleted."), raises=(EventNotFound, EventHasOrders))
def delete_event(request):
    """Delete an event

    An event with sales history cannot be deleted.
    """
    domain.delete_event(request.dbsession, event_id_from(request))
    request.response.status_code = 204
    request.response.content_type = None  # a 204 has no content, so no content type either
    return request.response


@event_publish.post(permission=ORGANISE)
@api_doc(
    Success(200, "The published event.", EventResource()),
    raises=(EventNotFound, EventNotDraft, EventDatePassed, ChangeRefused),
)
def publish_event(request):
    """Publish an event

    A draft whose date lies in the future goes on sale.
    """
    published = domain.publish_event(request.dbsession, event_id_from(request), now=utcnow())
    return {"data": shown(published, request)}
