"""API keys: admins make them for organisers and door staff, list them and revoke them."""

import uuid

import colander

from ticketing.domain import api_keys as domain
from ticketing.domain.errors import EventIdsNeedCheckinScope, EventNotFound, KeyNotFound
from ticketing.models import KeyScope
from ticketing.models.types import utcnow
from ticketing.openapi import Success, api_doc
from ticketing.security import ORGANISE

from . import JSON, ApiService, uuid_from_path
from .events import LOCATION
from .schemas import (
    StrictMappingSchema,
    StrictSequence,
    StrictString,
    json_body_validator,
    text_field,
)
from .serialize import KeyResource, key_json

#: more events than a door needs, few enough to check in one query
MAX_KEY_EVENTS = 100


class KeyEventIds(colander.SequenceSchema):
    """The events a checkin key is limited to; JSON ``null`` or absent: every event."""

    schema_type = StrictSequence
    nullable = True
    event_id = colander.SchemaNode(StrictString(), validator=colander.uuid)
    validator = colander.Length(1, MAX_KEY_EVENTS)

    def deserialize(self, cstruct=colander.null):
        if cstruct is None:
            return None
        return super().deserialize(cstruct)


class KeyFields(StrictMappingSchema):
    name = text_field(description="What the key is for, e.g. who holds it.")
    scope = colander.SchemaNode(
        StrictString(),
        validator=colander.OneOf([s.value for s in KeyScope]),
        description="admin (everything an organiser does), read (lists, exports and stats, "
        "drafts and hidden types; changes nothing) or checkin (check-in only).",
    )
    event_ids = KeyEventIds(
        missing=None,
        description="checkin keys only: the events it may check in at; null (the default): "
        "every event.",
    )


class CreateKeyBody(StrictMappingSchema):
    key = KeyFields()

    example = {"key": {"name": "Door scanners", "scope": "checkin"}}


api_keys = ApiService(name="keys", path="/api/keys", description="API keys")
api_key = ApiService(name="key", path="/api/keys/{id}", description="One API key")


@api_keys.post(
    schema=CreateKeyBody(),
    validators=(json_body_validator,),
    content_type=JSON,
    permission=ORGANISE,
)
@api_doc(
    Success(
        201, "The new key, with its `secret`: shown this once.", KeyResource(), headers=LOCATION
    ),
    raises=(EventNotFound, EventIdsNeedCheckinScope),
)
def create_key(request):
    """Make an API key

    The answer's `secret` is the key itself; only its hash is kept, so it cannot be shown again.
    """
    fields = request.validated["key"]
    event_ids = fields["event_ids"]
    created, secret = domain.create_key(
        request.dbsession,
        name=fields["name"],
        scope=fields["scope"],
        event_ids=None if event_ids is None else [uuid.UUID(each) for each in event_ids],
        now=utcnow(),
    )
    request.response.status_code = 201
    request.response.location = request.route_url("key", id=created.id)
    return {"data": key_json(created, secret)}


@api_keys.get(permission=ORGANISE)
@api_doc(Success(200, "Every key, revoked ones too, oldest first.", KeyResource(), many=True))
def list_keys(request):
    """List API keys

    Their names, prefixes, scopes and use; never the keys themselves. The keys of the setting
    `ticketing.api_keys` are not listed.
    """
    return {
        "data": [key_json(each) for each in domain.list_keys(request.dbsession)],
        "meta": {"next_cursor": None},
    }


@api_key.delete(permission=ORGANISE)
@api_doc(Success(204, "Revoked."), raises=(KeyNotFound,))
def revoke_key(request):
    """Revoke an API key

    It is refused from the next request on (401 `key_revoked`), and stays listed, with its
    `revoked_at`. Revoking it again changes nothing.
    """
    domain.revoke_key(request.dbsession, uuid_from_path(request, KeyNotFound), now=utcnow())
    request.response.status_code = 204
    request.response.content_type = None  # a 204 has no content, so no content type either
    return request.response
