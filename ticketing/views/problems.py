"""One error body for every error the API returns: RFC 9457 ``application/problem+json`` with a
stable ``code`` and, for validation errors, an ``errors`` list naming each field."""

import logging

import sqlalchemy.exc
from pyramid.httpexceptions import HTTPException, HTTPMethodNotAllowed, exception_response
from pyramid.view import exception_view_config, forbidden_view_config, notfound_view_config

from ticketing.domain import errors
from ticketing.security import KeyProblem

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

#: the HTTP status for each kind of domain error, most specific first
DOMAIN_ERROR_STATUS = (
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.BadRequest, 400),
    (errors.InvalidRequest, 422),
    (errors.PaymentDeclined, 402),
    (errors.PaymentUnavailable, 503),
    (errors.RefundFailed, 502),
)

#: codes for HTTP errors raised by Pyramid, Cornice or WebOb rather than by our rules
HTTP_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_content",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
}

#: seconds a client should wait before retrying when the database or the server is overwhelmed
RETRY_AFTER_SECONDS = 1


def problem(status, code, title, detail=None, errors=None, headers=None, **extra):
    body = {"type": f"urn:ticketing:problem:{code}", "title": title, "status": status, "code": code}
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    # An HTTPException, because Cornice raises what its error handler returns.
    response = exception_response(status, headers=headers)
    response.content_type = PROBLEM_CONTENT_TYPE
    response.json_body = body
    return response


def invalid_field(field, message):
    """The validation problem of one field, for a rule the schema alone cannot check (a price
    against its event's currency, say); raise it."""
    return problem(
        400,
        "validation_failed",
        "Invalid request",
        f"{field}: {message}",
        errors=[{"location": "body", "field": field, "message": message}],
    )


def cornice_error_handler(request):
    """Replace Cornice's error body with a problem document."""
    status = request.errors.status
    field_errors = [
        {
            "location": error["location"],
            "field": error["name"] or None,
            "message": _text(error["description"]),
        }
        for error in request.errors
    ]
    if status == 415:
        return problem(
            415,
            "unsupported_media_type",
            "Unsupported media type",
            "Send the body as JSON with 'Content-Type: application/json'.",
        )
    if status == 406:
        return problem(406, "not_acceptable", "Not acceptable", field_errors[0]["message"])
    if any(error["location"] == "header" and error["field"] == "Origin" for error in field_errors):
        return problem(
            400,
            "origin_not_allowed",
            "Origin not allowed",
            f"{request.headers.get('Origin')} is not one of ticketing.cors_origins.",
        )
    if any(error["message"].startswith("Invalid JSON") for error in field_errors):
        return problem(400, "malformed_json", "Malformed JSON", field_errors[0]["message"])
    detail = "; ".join(
        f"{error['field']}: {error['message']}" if error["field"] else error["message"]
        for error in field_errors
    )
    return problem(400, "validation_failed", "Invalid request", detail, errors=field_errors)


def _text(description):
    if isinstance(description, bytes):
        return description.decode("utf-8", "replace")
    return str(description)


@notfound_view_config()
def not_found(exc, request):
    return problem(404, "not_found", "Not found", f"Nothing is served at {request.path}.")


@forbidden_view_config()
def forbidden(exc, request):
    """401 without a usable key (none, or a revoked one), 403 with a key that is not valid or
    whose scope does not cover the operation."""
    authentication = request.authentication
    challenge = {"WWW-Authenticate": 'Bearer realm="ticketing"'}
    if authentication.problem is KeyProblem.MISSING:
        return problem(
            401,
            "unauthorized",
            "Unauthorized",
            "This operation needs an organiser API key: 'Authorization: Bearer <key>'.",
            headers=challenge,
        )
    if authentication.problem is KeyProblem.REVOKED:
        return problem(
            401, "key_revoked", "Key revoked", "This API key was revoked.", headers=challenge
        )
    if authentication.problem is KeyProblem.UNKNOWN:
        return problem(403, "forbidden", "Forbidden", "The API key is not valid.")
    denied = getattr(exc, "result", None)
    return problem(
        403,
        "insufficient_scope",
        "Insufficient scope",
        str(denied) if denied is not None else "This key's scope does not cover the operation.",
        scope=str(authentication.caller.scope),
    )


@exception_view_config(HTTPMethodNotAllowed)
def method_not_allowed(exc, request):
    allowed = ", ".join(exc.allow or ())
    return problem(
        405,
        "method_not_allowed",
        "Method not allowed",
        f"{request.method} is not allowed here; use {allowed}." if allowed else None,
        headers={"Allow": allowed},
    )


@exception_view_config(HTTPException)
def http_error(exc, request):
    if exc.code < 400 or exc.content_type == PROBLEM_CONTENT_TYPE:
        return exc
    code = HTTP_ERROR_CODES.get(exc.code, "http_error")
    return problem(exc.code, code, exc.title, exc.detail or None, headers=_passed_on_headers(exc))


def _passed_on_headers(exc):
    return {name: value for name, value in exc.headers.items() if name in ("Allow", "Retry-After")}


def status_of_domain_error(kind):
    """The HTTP status of a kind (class) of domain error; 500 for one not in the table."""
    return next((status for base, status in DOMAIN_ERROR_STATUS if issubclass(kind, base)), 500)


@exception_view_config(errors.TicketingError)
def domain_error(exc, request):
    status = status_of_domain_error(type(exc))
    if status == 500:
        log.error("unmapped domain error %r", exc)
    extra = dict(exc.extra)
    headers = extra.pop("headers", None)
    return problem(status, exc.code, exc.title, exc.detail, headers=headers, **extra)


def database_problem(exc, request):
    """The 503 for a database that cannot serve the request, or None for any other error.

    Down, restarting or unreachable (psycopg says OperationalError, or the connection broke
    under the statement): ``database_unavailable``. Every connection of the pool busy past
    ``sqlalchemy.pool_timeout``: ``server_busy``. Both are logged in one line, without a
    traceback: they are the database's state, not a bug, and a crash would log one per request.
    """
    if isinstance(exc, sqlalchemy.exc.TimeoutError):
        code, title = "server_busy", "Server busy"
        detail = "Every database connection is busy; retry shortly."
    elif isinstance(exc, sqlalchemy.exc.DBAPIError) and _unreachable(exc):
        code, title = "database_unavailable", "Database unavailable"
        detail = "The database does not answer; retry shortly."
    else:
        return None
    log.warning(
        "%s on %s %s [request_id=%s]: %s",
        code,
        request.method,
        request.path,
        getattr(request, "request_id", None),
        str(exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc).splitlines()[0],
    )
    return problem(503, code, title, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def _unreachable(exc):
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    # Serialization failures and deadlocks (class 40) are OperationalErrors too, but the
    # database answered: pyramid_retry replays those, and one that is left is a bug.
    return isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError) and (
        not sqlstate.startswith("40")
    )


@exception_view_config(sqlalchemy.exc.DBAPIError)
@exception_view_config(sqlalchemy.exc.TimeoutError)
def database_error(exc, request):
    return database_problem(exc, request) or unexpected_error(exc, request)


@exception_view_config(Exception)
def unexpected_error(exc, request):
    log.exception(
        "unhandled error on %s %s [request_id=%s]",
        request.method,
        request.path,
        getattr(request, "request_id", None),
    )
    return problem(500, "internal_error", "Internal server error", "The error has been logged.")


def includeme(config):
    config.scan(__name__)
