"""Webhooks: admins register endpoints for the domain events, read their delivery logs and
deliver again. Every delivery is signed as Standard Webhooks says (`webhook-id`,
`webhook-timestamp`, `webhook-signature`) with the webhook's `secret`."""

import colander
from cornice.validators import colander_querystring_validator

from ticketing.domain.errors import InvalidCursor
from ticketing.events import LOGGED_TYPES
from ticketing.models.types import utcnow
from ticketing.openapi import Success, api_doc
from ticketing.representations import timestamp
from ticketing.security import ORGANISE
from ticketing.views import JSON, MAX_PAGE_SIZE, ApiService, uuid_from_path
from ticketing.views.events import LOCATION
from ticketing.views.schemas import (
    NullableNode,
    QueryString,
    StrictBoolean,
    StrictMappingSchema,
    StrictSequence,
    StrictString,
    json_body_validator,
    limit_field,
)
from ticketing.views.serialize import page_json

from . import domain
from .errors import DeliveryNotFound, TargetRefused, WebhookDisabled, WebhookNotFound

#: ``{id}`` in the paths: a UUID's characters, so that ``/api/webhooks/stripe`` (the Stripe
#: receiver's) never matches these routes
ID = "[0-9a-fA-F-]+"
EVENTS_DESCRIPTION = "The event types to receive: " + ", ".join(f"`{t}`" for t in LOGGED_TYPES)


def _text(**kwargs):
    return colander.SchemaNode(colander.String(), **kwargs)


def _time(**kwargs):
    return colander.SchemaNode(colander.DateTime(), **kwargs)


class EventTypes(colander.SequenceSchema):
    schema_type = StrictSequence
    event_type = colander.SchemaNode(StrictString(), validator=colander.OneOf(LOGGED_TYPES))
    validator = colander.Length(1, len(LOGGED_TYPES))


def url_field(**kwargs):
    return colander.SchemaNode(
        StrictString(),
        validator=colander.Length(1, 2000),
        description="Where deliveries are POSTed: https, on a public address (development and "
        "tests allow http and local addresses: `webhooks.allow_private_targets`).",
        **kwargs,
    )


def description_field(**kwargs):
    return NullableNode(
        StrictString(), validator=colander.Length(0, 500), description="What it is for.", **kwargs
    )


class WebhookFields(StrictMappingSchema):
    url = url_field()
    events = EventTypes(description=EVENTS_DESCRIPTION)
    description = description_field(missing=None)


class CreateWebhookBody(StrictMappingSchema):
    webhook = WebhookFields()

    example = {
        "webhook": {
            "url": "https://example.com/hooks/tickets",
            "events": ["order.confirmed", "order.cancelled"],
            "description": "Our CRM",
        }
    }


class WebhookChanges(StrictMappingSchema):
    url = url_field(missing=colander.drop)
    events = EventTypes(description=EVENTS_DESCRIPTION, missing=colander.drop)
    description = description_field(missing=colander.drop)
    enabled = colander.SchemaNode(
        StrictBoolean(),
        missing=colander.drop,
        description="false disables it (deliveries wait); true enables it again.",
    )

    json_schema_extra = {"minProperties": 1}

    def validator(self, node, value):
        if not value:
            raise colander.Invalid(node, "Name at least one field to change.")


class UpdateWebhookBody(StrictMappingSchema):
    webhook = WebhookChanges()

    example = {"webhook": {"events": ["order.confirmed", "order.cancelled", "order.failed"]}}


class ListDeliveriesQuery(colander.MappingSchema):
    limit = limit_field(MAX_PAGE_SIZE)
    cursor = colander.SchemaNode(
        QueryString(), missing=None, description="`meta.next_cursor` of the previous page."
    )


class WebhookResource(StrictMappingSchema):
    component_name = "Webhook"

    id = _text(validator=colander.uuid)
    url = _text(example="https://example.com/hooks/tickets")
    events = colander.SequenceSchema(StrictSequence(), _text())
    description = _text(nullable=True)
    enabled = colander.SchemaNode(colander.Boolean())
    disabled_reason = _text(
        nullable=True,
        description="Why it is disabled: by an admin, a 410 Gone, or deliveries failing for "
        "the whole retry window.",
    )
    disabled_at = _time(nullable=True)
    previous_secret_expires_at = _time(
        nullable=True,
        description="After a rotation, until when the previous secret signs too.",
    )
    created_at = _time()
    updated_at = _time()
    secret = _text(
        missing=colander.drop,
        example="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        description="The signing secret, as Standard Webhooks libraries take it: only in the "
        "answers that create it or rotate it.",
    )


class DeliveryResource(StrictMappingSchema):
    component_name = "WebhookDelivery"

    id = _text(validator=colander.uuid)
    webhook_id = _text(validator=colander.uuid)
    event_id = _text(
        validator=colander.uuid, description="The event's id, sent as `webhook-id` each attempt."
    )
    event_type = _text(example="order.confirmed")
    status = _text(
        validator=colander.OneOf(["pending", "delivered", "failed"]),
        description="pending (an attempt is due, or under way), delivered (2xx), failed "
        "(410 Gone, or the retry window is over).",
    )
    attempts = colander.SchemaNode(colander.Integer(), validator=colander.Range(min=0))
    last_status = colander.SchemaNode(
        colander.Integer(), nullable=True, description="The last attempt's HTTP status."
    )
    last_error = _text(nullable=True)
    next_attempt_at = _time(nullable=True)
    created_at = _time()
    delivered_at = _time(nullable=True)


def webhook_json(webhook, secret=None):
    shown = {
        "id": str(webhook.id),
        "url": webhook.url,
        "events": list(webhook.events),
        "description": webhook.description,
        "enabled": webhook.enabled,
        "disabled_reason": webhook.disabled_reason,
        "disabled_at": timestamp(webhook.disabled_at),
        "previous_secret_expires_at": timestamp(webhook.previous_secret_expires_at),
        "created_at": timestamp(webhook.created_at),
        "updated_at": timestamp(webhook.updated_at),
    }
    if secret is not None:
        shown["secret"] = secret
    return shown


def delivery_json(delivery):
    return {
        "id": str(delivery.id),
        "webhook_id": str(delivery.webhook_id),
        "event_id": str(delivery.event_id),
        "event_type": delivery.event_type,
        "status": str(delivery.status),
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "next_attempt_at": timestamp(delivery.next_attempt_at),
        "created_at": timestamp(delivery.created_at),
        "delivered_at": timestamp(delivery.delivered_at),
    }


webhooks = ApiService(name="webhooks", path="/api/webhooks", description="Webhooks")
webhook = ApiService(name="webhook", path=f"/api/webhooks/{{id:{ID}}}", description="A webhook")
webhook_rotation = ApiService(
    name="webhook_rotation",
    path=f"/api/webhooks/{{id:{ID}}}/rotate-secret",
    description="A webhook's secret",
)
webhook_deliveries = ApiService(
    name="webhook_deliveries",
    path=f"/api/webhooks/{{id:{ID}}}/deliveries",
    description="A webhook's delivery log",
)
webhook_delivery_retry = ApiService(
    name="webhook_delivery_retry",
    path=f"/api/webhooks/{{id:{ID}}}/deliveries/{{delivery_id:{ID}}}/retry",
    description="Deliver again",
)


def _options(request):
    return request.registry["webhooks"]


def _webhook_id(request):
    return uuid_from_path(request, WebhookNotFound)


@webhooks.post(
    schema=CreateWebhookBody(),
    validators=(json_body_validator,),
    content_type=JSON,
    permission=ORGANISE,
)
@api_doc(
    Success(
        201,
        "The new webhook, with its signing `secret`: shown this once.",
        WebhookResource(),
        headers=LOCATION,
    ),
    raises=(TargetRefused,),
)
def create_webhook(request):
    """Register a webhook

    The answer's `secret` (`whsec_...`) verifies each delivery's `webhook-signature` with any
    Standard Webhooks library; it is not shown again (rotate it to get a new one).
    """
    fields = request.validated["webhook"]
    created = domain.create_webhook(
        request.dbsession,
        _options(request).guard(),
        url=fields["url"],
        events=fields["events"],
        description=fields["description"],
        now=utcnow(),
    )
    request.response.status_code = 201
    request.response.location = request.route_url("webhook", id=created.id)
    return {"data": webhook_json(created, created.secret)}


@webhooks.get(permission=ORGANISE)
@api_doc(Success(200, "Every webhook, oldest first.", WebhookResource(), many=True))
def list_webhooks(request):
    """List webhooks

    Never their secrets.
    """
    found = domain.list_webhooks(request.dbsession)
    return {"data": [webhook_json(each) for each in found], "meta": {"next_cursor": None}}


@webhook.get(permission=ORGANISE)
@api_doc(Success(200, "The webhook.", WebhookResource()), raises=(WebhookNotFound,))
def get_webhook(request):
    """Read a webhook"""
    return {"data": webhook_json(domain.get_webhook(request.dbsession, _webhook_id(request)))}


@webhook.put(
    schema=UpdateWebhookBody(),
    validators=(json_body_validator,),
    content_type=JSON,
    permission=ORGANISE,
)
@api_doc(
    Success(200, "The changed webhook.", WebhookResource()),
    raises=(WebhookNotFound, TargetRefused),
)
def update_webhook(request):
    """Change a webhook

    Any of url, events, description and enabled (false disables it: its deliveries wait; true
    enables it again and clears `disabled_reason`).
    """
    changed = domain.update_webhook(
        request.dbsession,
        _options(request).guard(),
        _webhook_id(request),
        request.validated["webhook"],
        now=utcnow(),
    )
    return {"data": webhook_json(changed)}


@webhook.delete(permission=ORGANISE)
@api_doc(Success(204, "Deleted, with its delivery log."), raises=(WebhookNotFound,))
def delete_webhook(request):
    """Delete a webhook

    Nothing more is delivered to it; its delivery log goes with it.
    """
    domain.delete_webhook(request.dbsession, _webhook_id(request))
    request.response.status_code = 204
    request.response.content_type = None  # a 204 has no content, so no content type either
    return request.response


@webhook_rotation.post(permission=ORGANISE)
@api_doc(
    Success(200, "The webhook with its new `secret`: shown this once.", WebhookResource()),
    raises=(WebhookNotFound,),
)
def rotate_webhook_secret(request):
    """Rotate a webhook's secret

    Deliveries are signed with the new secret and, until `previous_secret_expires_at` (24 h,
    `webhooks.secret_overlap_hours`), with the previous one too: a receiver that still holds
    the old secret verifies them meanwhile.
    """
    rotated = domain.rotate_secret(
        request.dbsession,
        _webhook_id(request),
        now=utcnow(),
        overlap=_options(request).secret_overlap,
    )
    return {"data": webhook_json(rotated, rotated.secret)}


@webhook_deliveries.get(
    schema=ListDeliveriesQuery(),
    validators=(colander_querystring_validator,),
    permission=ORGANISE,
)
@api_doc(
    Success(
        200, "A page of the webhook's deliveries, oldest first.", DeliveryResource(), many=True
    ),
    raises=(WebhookNotFound, InvalidCursor),
)
def list_webhook_deliveries(request):
    """List a webhook's deliveries

    The event, the attempts, the last answer and the next attempt of each.
    """
    query = request.validated
    page = domain.list_deliveries(
        request.dbsession, _webhook_id(request), limit=query["limit"], cursor=query["cursor"]
    )
    return page_json(page, delivery_json)


@webhook_delivery_retry.post(permission=ORGANISE)
@api_doc(
    Success(202, "Owed again; it is being delivered.", DeliveryResource()),
    raises=(WebhookNotFound, DeliveryNotFound, WebhookDisabled),
)
def retry_webhook_delivery(request):
    """Deliver again now

    A delivery that failed, or waits for its next attempt, is sent again at once (after this
    request commits).
    """
    delivery = domain.retry_delivery(
        request.dbsession,
        _webhook_id(request),
        uuid_from_path(request, DeliveryNotFound, name="delivery_id"),
        now=utcnow(),
    )
    deliver = _options(request).tasks.deliver
    delivery_id = str(delivery.id)
    request.tm.get().addAfterCommitHook(lambda committed: committed and deliver(delivery_id))
    request.response.status_code = 202
    return {"data": delivery_json(delivery)}


def includeme(config):
    config.scan(__name__)
