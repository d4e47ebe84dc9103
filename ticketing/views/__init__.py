"""The HTTP layer: Cornice services that validate input with colander schemas, call the domain,
and render its results. Every error leaves as ``application/problem+json``."""

import uuid

from cornice import Service

from .problems import cornice_error_handler

#: hard cap on page sizes, whatever the client asks
MAX_PAGE_SIZE = 100


class ApiService(Service):
    """A Cornice service whose validation errors use the API's problem body."""

    def default_error_handler(self, request):
        return cornice_error_handler(request)


def uuid_from_path(request, not_found):
    """The ``{id}`` of the path as a UUID; a malformed id is as unknown as a missing one."""
    raw = request.matchdict["id"]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise not_found(f"No such id: {raw!r}.") from None


def includeme(config):
    # Our exception views in .problems answer every error; Cornice's would compete with them.
    config.get_settings()["handle_exceptions"] = False
    config.include("cornice")
    config.include(".problems")
    config.include(".health")
    config.scan(".events")
    config.include(".orders")
    config.include(".docs")
