"""Events: what organisers create and publish, and buyers browse."""

import colander
from cornice.validators import colander_body_validator, colander_querystring_validator

from ticketing.domain import events as domain
from ticketing.domain.errors import EventNotFound
from ticketing.models import EventStatus
from ticketing.models.types import utcnow
from ticketing.money import to_cents
from ticketing.security import ORGANISE, is_organiser

from . import MAX_PAGE_SIZE, ApiService, uuid_from_path
from .schemas import (
    Money,
    StrictInteger,
    StrictMappingSchema,
    UTCDateTime,
    in_the_future,
    limit_field,
    text_field,
)
from .serialize import event_json, page_json

JSON = "application/json"


class EventFields(StrictMappingSchema):
    name = text_field()
    venue = text_field()
    date = colander.SchemaNode(UTCDateTime(), validator=in_the_future)
    ticket_price = colander.SchemaNode(Money())
    total_tickets = colander.SchemaNode(StrictInteger(), validator=colander.Range(1, 1_000_000))


class CreateEventBody(StrictMappingSchema):
    event = EventFields()


class EventChanges(StrictMappingSchema):
    name = text_field(missing=colander.drop)
    venue = text_field(missing=colander.drop)
    date = colander.SchemaNode(UTCDateTime(), validator=in_the_future, missing=colander.drop)
    ticket_price = colander.SchemaNode(Money(), missing=colander.drop)
    total_tickets = colander.SchemaNode(
        StrictInteger(), validator=colander.Range(1, 1_000_000), missing=colander.drop
    )

    def validator(self, node, value):
        if not value:
            raise colander.Invalid(node, "Name at least one field to change.")


class UpdateEventBody(StrictMappingSchema):
    event = EventChanges()


class ListEventsQuery(colander.MappingSchema):
    limit = limit_field(MAX_PAGE_SIZE)
    cursor = colander.SchemaNode(colander.String(), missing=None)
    status = colander.SchemaNode(
        colander.String(), missing=None, validator=colander.OneOf([s.value for s in EventStatus])
    )
    updated_since = colander.SchemaNode(UTCDateTime(empty_is_missing=True), missing=None)


events = ApiService(name="events", path="/api/events", description="Events")
event = ApiService(name="event", path="/api/events/{id}", description="One event")
event_publish = ApiService(
    name="event_publish", path="/api/events/{id}/publish", description="Put an event on sale"
)


def event_id_from(request):
    return uuid_from_path(request, EventNotFound)


def changes_from(fields):
    """Translate API field names and units to the domain's."""
    changes = dict(fields)
    if "ticket_price" in changes:
        changes["ticket_price_cents"] = to_cents(changes.pop("ticket_price"))
    return changes


@events.get(schema=ListEventsQuery(), validators=(colander_querystring_validator,))
def list_events(request):
    query = request.validated
    page = domain.list_events(
        request.dbsession,
        limit=query["limit"],
        cursor=query["cursor"],
        status=query["status"],
        updated_since=query["updated_since"],
        include_drafts=is_organiser(request),
    )
    return page_json(page, event_json)


@events.post(
    schema=CreateEventBody(),
    validators=(colander_body_validator,),
    content_type=JSON,
    permission=ORGANISE,
)
def create_event(request):
    created = domain.create_event(request.dbsession, **changes_from(request.validated["event"]))
    request.response.status_code = 201
    request.response.location = request.route_url("event", id=created.id)
    return {"data": event_json(created)}


@event.get()
def get_event(request):
    event_id = event_id_from(request)
    found = domain.get_event(request.dbsession, event_id)
    if found.status == EventStatus.DRAFT and not is_organiser(request):
        raise EventNotFound(f"No event has the id {event_id}.")
    return {"data": event_json(found)}


@event.put(
    schema=UpdateEventBody(),
    validators=(colander_body_validator,),
    content_type=JSON,
    permission=ORGANISE,
)
def update_event(request):
    updated = domain.update_event(
        request.dbsession,
        event_id_from(request),
        changes_from(request.validated["event"]),
        now=utcnow(),
    )
    return {"data": event_json(updated)}


@event.delete(permission=ORGANISE)
def delete_event(request):
    domain.delete_event(request.dbsession, event_id_from(request))
    request.response.status_code = 204
    request.response.content_type = None  # a 204 has no content, so no content type either
    return request.response


@event_publish.post(permission=ORGANISE)
def publish_event(request):
    published = domain.publish_event(request.dbsession, event_id_from(request), now=utcnow())
    return {"data": event_json(published)}
