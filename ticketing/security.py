"""Who may do what: organisers hold an API key with a scope, buyers need none.

A key is sent as ``Authorization: Bearer <key>``. Its scope says what it may do:

- ``admin``: everything an organiser does (``ORGANISE``, and ``READ`` and ``CHECK_IN`` too);
- ``read``: lists, exports and stats, and what buyers may not see (drafts, hidden ticket
  types), changing nothing (``READ``);
- ``checkin``: check-in at the door only (``CHECK_IN``, and its figures, ``SEE_CHECK_INS``,
  which read keys see too), optionally at listed events only.

Views declare the permission they need (``permission=ORGANISE``, ``READ`` or ``CHECK_IN``);
those that show organisers more than buyers ask :func:`sees_everything`. A view that checks in
at one event declares ``CHECK_IN`` with a context that has an ``event_id`` (:class:`EventContext`,
as the service's factory or in ``request.has_permission(CHECK_IN, EventContext(event_id))``),
so a checkin key limited to other events is refused.

Keys live in the database (``ticketing.domain.api_keys``), and are looked up on every request
that carries one, so a revoked key is refused at once; buyers carry none and cost nothing. The
keys in ``ticketing.api_keys`` (whitespace-separated, so that keys can be rotated by listing old
and new together; production reads them from ``TICKETING_API_KEYS``) are admin keys, compared
in constant time without a query.

``ticketing.require_api_key = false`` (development.ini only) makes every caller an admin, so the
README's curl examples work as written.
"""

import enum
import hmac
import uuid
from dataclasses import dataclass

from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import ISecurityPolicy
from pyramid.security import Allowed, Denied
from zope.interface import implementer

from ticketing.domain import api_keys
from ticketing.models import KeyScope
from ticketing.models.types import utcnow
from ticketing.settings import as_bool

ORGANISE = "organise"
READ = "read"
CHECK_IN = "check_in"
#: the door's figures: what read keys see, and what a checkin key sees of its events
SEE_CHECK_INS = "see_check_ins"

#: the scopes that hold each permission
SCOPES_OF = {
    ORGANISE: (KeyScope.ADMIN,),
    READ: (KeyScope.ADMIN, KeyScope.READ),
    CHECK_IN: (KeyScope.ADMIN, KeyScope.CHECKIN),
    SEE_CHECK_INS: (KeyScope.ADMIN, KeyScope.READ, KeyScope.CHECKIN),
}


@dataclass(frozen=True)
class Caller:
    """Who holds the request's key: its scope, and for a checkin key limited to some events,
    their ids. ``key_id`` is ``None`` for the keys of the settings."""

    name: str
    scope: KeyScope
    key_id: uuid.UUID | None = None
    event_ids: frozenset | None = None


SETTINGS_KEY = Caller(name="ticketing.api_keys", scope=KeyScope.ADMIN)
DEVELOPMENT = Caller(name="ticketing.require_api_key = false", scope=KeyScope.ADMIN)


class KeyProblem(enum.Enum):
    MISSING = "missing"
    UNKNOWN = "unknown"
    REVOKED = "revoked"


@dataclass(frozen=True)
class Authentication:
    """What the request's key turned out to be: a caller, or the problem with the key."""

    caller: Caller | None = None
    problem: KeyProblem | None = None


@dataclass(frozen=True)
class EventContext:
    """The context of an operation on one event, for permissions limited to some events."""

    event_id: uuid.UUID


def event_context(request):
    """The route factory of operations on the event ``{id}`` of the path (a malformed id: an
    event no limited key may reach; the view answers 404 to the others)."""
    try:
        return EventContext(uuid.UUID(request.matchdict["id"]))
    except ValueError:
        return EventContext(None)


def bearer_token(request):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@implementer(ISecurityPolicy)
class ApiKeySecurityPolicy:
    def __init__(self, api_keys, required=True):
        self.api_keys = [key.encode() for key in api_keys]
        self.required = required

    def authenticate(self, request):
        """The request's :class:`Authentication` (once per request: ``request.authentication``)."""
        if not self.required:
            return Authentication(DEVELOPMENT)
        token = bearer_token(request)
        if token is None:
            return Authentication(problem=KeyProblem.MISSING)
        if self._is_a_settings_key(token):
            return Authentication(SETTINGS_KEY)
        key = api_keys.find_key(request.dbsession, token)
        if key is None:
            return Authentication(problem=KeyProblem.UNKNOWN)
        if key.revoked_at is not None:
            return Authentication(problem=KeyProblem.REVOKED)
        # Once the request is done and its connection back in the pool: recording it now would
        # hold a second connection while the request holds its first, and requests arriving
        # together with a key not used for a minute (a door's scanners) would exhaust the pool,
        # each waiting for a second connection that none gives back.
        session_factory = request.registry["dbsession_factory"]
        used_at = utcnow()
        request.add_finished_callback(
            lambda request: api_keys.record_use(session_factory, key, now=used_at)
        )
        event_ids = None if key.event_ids is None else frozenset(map(uuid.UUID, key.event_ids))
        return Authentication(Caller(key.name, key.scope, key.id, event_ids))

    def _is_a_settings_key(self, token):
        candidate = token.encode()
        # Compare with every key, without stopping early, so timing says nothing about them.
        matched = False
        for key in self.api_keys:
            matched |= hmac.compare_digest(candidate, key)
        return matched

    def identity(self, request):
        return request.authentication.caller

    def authenticated_userid(self, request):
        caller = self.identity(request)
        return None if caller is None else caller.name

    def permits(self, request, context, permission):
        scopes = SCOPES_OF.get(permission)
        if scopes is None:
            return Allowed("no key needed")
        caller = self.identity(request)
        if caller is None:
            return Denied("an API key is required")
        if caller.scope not in scopes:
            return Denied(
                "This operation needs a key with the scope %s; this key's scope is %s.",
                " or ".join(scopes),
                caller.scope,
            )
        event_id = getattr(context, "event_id", None)
        if caller.event_ids is not None and event_id not in caller.event_ids:
            return Denied("This key may check in at other events only.")
        return Allowed("allowed")

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []


def sees_everything(request):
    """Whether the caller may see what buyers may not (drafts, hidden ticket types): an admin
    or a read key. Anyone else, a checkin key too, is shown what buyers are."""
    return bool(request.has_permission(READ))


def includeme(config):
    settings = config.get_settings()
    required = as_bool(settings, "ticketing.require_api_key", True)
    api_keys = settings.get("ticketing.api_keys", "").split()
    if required and not api_keys:
        raise ConfigurationError(
            "missing setting 'ticketing.api_keys' (set the TICKETING_API_KEYS environment "
            "variable), or switch the check off with ticketing.require_api_key = false"
        )
    policy = ApiKeySecurityPolicy(api_keys, required=required)
    config.set_security_policy(policy)
    config.add_request_method(policy.authenticate, "authentication", reify=True)
