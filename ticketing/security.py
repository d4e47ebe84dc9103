"""Who may do what: organisers hold an API key, buyers need none.

Organiser operations (creating, changing, deleting and publishing events, listing all orders)
need ``Authorization: Bearer <key>`` with one of the keys in ``ticketing.api_keys``
(whitespace-separated, so keys can be rotated by listing old and new together; production reads
them from ``TICKETING_API_KEYS``). Keys are compared in constant time. Buyers browse published
events, buy, and read or cancel their own order by its unguessable UUID.

``ticketing.require_api_key = false`` (development.ini only) makes every caller an organiser, so
the README's curl examples work as written.
"""

import hmac

from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import ISecurityPolicy
from pyramid.security import Allowed, Denied
from zope.interface import implementer

from ticketing.settings import as_bool

ORGANISE = "organise"
ORGANISER = "organiser"


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

    def identity(self, request):
        if not self.required:
            return ORGANISER
        token = bearer_token(request)
        if token is None:
            return None
        candidate = token.encode()
        # Compare with every key, without stopping early, so timing says nothing about them.
        matched = False
        for key in self.api_keys:
            matched |= hmac.compare_digest(candidate, key)
        return ORGANISER if matched else None

    def authenticated_userid(self, request):
        return self.identity(request)

    def permits(self, request, context, permission):
        if permission == ORGANISE and self.identity(request) is None:
            return Denied("an organiser API key is required")
        return Allowed("allowed")

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []


def is_organiser(request):
    return bool(request.has_permission(ORGANISE))


def includeme(config):
    settings = config.get_settings()
    required = as_bool(settings, "ticketing.require_api_key", True)
    api_keys = settings.get("ticketing.api_keys", "").split()
    if required and not api_keys:
        raise ConfigurationError(
            "missing setting 'ticketing.api_keys' (set the TICKETING_API_KEYS environment "
            "variable), or switch the check off with ticketing.require_api_key = false"
        )
    config.set_security_policy(ApiKeySecurityPolicy(api_keys, required=required))
