"""The OpenAPI 3 document of the API, generated from what the app really serves.

It walks the Cornice services registered in the app (their paths, methods, permissions, content
types and colander schemas) and turns the colander schemas into JSON Schema. What Cornice cannot
know is declared next to each view with :func:`api_doc`: the success responses (with colander
schemas of their own, in ``ticketing.views.serialize``) and the domain errors the view can raise,
whose HTTP status comes from the same table that renders them (``views.problems``). Statuses that
follow from the service itself are added here: 400 for a schema, 415 for a content type, 401/403
for a permission (with the key scopes that hold it, as ``x-scopes``), 413 for a body, 429 for
rate-limited paths, 500 everywhere.

cornice_swagger was not used: it emits Swagger 2.0 only and does not know our strict types.
"""

import re
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

import colander

from ticketing.ratelimit import EXEMPT_PATHS
from ticketing.security import READ, SCOPES_OF

OPENAPI_VERSION = "3.0.3"
SECURITY_SCHEME = "organiserKey"
PROBLEM_MEDIA_TYPE = "application/problem+json"
JSON_MEDIA_TYPE = "application/json"
BODY_METHODS = ("POST", "PUT", "PATCH")
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
PATH_PARAMETER = re.compile(r"\{(\w+)(?::[^}]*)?\}")
#: a path parameter with a pattern of its own, e.g. ``{id:[0-9a-fA-F-]+}``
CONSTRAINED_PARAMETER = re.compile(r"\{\w+:[^}]*\}")

#: titles of the problems that the framework (not a domain rule) answers with
FRAMEWORK_PROBLEMS = {
    "validation_failed": "The request does not match the schema; `errors` names each field.",
    "malformed_json": "The body is not JSON.",
    "unauthorized": "No API key (`Authorization: Bearer <key>`) was sent.",
    "key_revoked": "The API key was revoked.",
    "forbidden": "The API key is not valid.",
    "insufficient_scope": "The key's scope does not cover this operation; `scope` is the key's.",
    "payload_too_large": "The body is over the size limit (64 KiB by default).",
    "unsupported_media_type": "The body was not sent as `application/json`.",
    "rate_limited": "Too many requests; `Retry-After` says when to try again.",
    "origin_not_allowed": "A browser's `Origin` that is not one of `ticketing.cors_origins` (nor "
    "the API's own): refused before anything is done.",
    "internal_error": "An unexpected error; it was logged under the response's `X-Request-Id`.",
    "database_unavailable": "The database does not answer (down, restarting, unreachable); "
    "nothing was changed. Retry after `Retry-After` seconds.",
    "server_busy": "The server is at capacity (every database connection busy, or, on the "
    "purchase, admission control's limits reached); nothing was started. Retry after "
    "`Retry-After` seconds.",
}

#: the views of the plugins shipped in the package, listed in both ini files' ticketing.includes
SHIPPED_PLUGIN_VIEWS = ("ticketing.plugins.webhooks.views",)

#: paths that answer without the database (health reports it: its 503 is its own)
NO_DATABASE_PATHS = ("/api/health",)


@dataclass(frozen=True)
class Success:
    """A success response of a view. ``schema`` is a colander schema of the resource, rendered
    as ``{"data": resource}``, or as ``{"data": [resource...], "meta": {...}}`` when ``many``;
    with ``wrap=False`` the schema is the whole body; ``None`` means no body, unless
    ``media_type`` names the body's own (non-JSON) type."""

    status: int
    description: str
    schema: colander.SchemaNode | None = None
    many: bool = False
    wrap: bool = True
    headers: dict = field(default_factory=dict)
    #: a body that is not JSON (a PDF, a CSV), described as a string of that media type: the
    #: only one without ``schema``, else another the client may ask for
    media_type: str | None = None


@dataclass(frozen=True)
class ApiDoc:
    responses: tuple = ()
    raises: tuple = ()
    problems: dict = field(default_factory=dict)
    optional_auth: bool = False
    request_headers: tuple = ()


def api_doc(*responses, raises=(), problems=None, optional_auth=False, request_headers=()):
    """Declare what the OpenAPI document cannot learn from Cornice: the view's success
    ``responses`` (:class:`Success`), the domain errors it ``raises``, other ``problems`` it
    answers with ({status: [code, ...]}), whether an organiser key is optional (it shows more),
    and the ``request_headers`` it reads (OpenAPI parameter objects)."""

    def decorate(view):
        view.__api_doc__ = ApiDoc(
            responses=responses,
            raises=tuple(raises),
            problems=dict(problems or {}),
            optional_auth=optional_auth,
            request_headers=tuple(request_headers),
        )
        return view

    return decorate


def standalone_document(settings=None):
    """The same document, from the views alone: no database, no adapters, no jobs (for scripts
    and for test collection)."""
    from pyramid.config import Configurator

    config = Configurator(settings=dict(settings or {}))
    config.include("ticketing.views")
    for views in SHIPPED_PLUGIN_VIEWS:
        config.include(views)
    config.commit()
    return build_document(config.registry)


class _DocRequest:
    """Enough of a request to bind deferred schema values (they read settings from it)."""

    def __init__(self, registry):
        self.registry = registry


# --- colander to JSON Schema ----------------------------------------------------------------


def json_schema(node):
    """The JSON Schema (OpenAPI 3.0 dialect) of a bound colander node."""
    typ = node.typ
    schema = dict(typ.json_schema(node)) if hasattr(typ, "json_schema") else _standard(typ)
    if isinstance(typ, colander.Mapping):
        schema["type"] = "object"
        schema["properties"] = {child.name: json_schema(child) for child in node.children}
        required = [child.name for child in node.children if child.required]
        if required:
            schema["required"] = required
        if typ.unknown == "raise":
            schema["additionalProperties"] = False
    elif isinstance(typ, colander.Sequence):
        schema["items"] = json_schema(node.children[0])
    _apply_validator(schema, node.validator)
    if getattr(node, "nullable", False):
        schema["nullable"] = True
    if node.description:
        schema["description"] = str(node.description)
    if node.missing not in (colander.required, colander.drop, colander.null, None):
        schema["default"] = node.missing
    example = getattr(node, "example", None)
    if example is not None:
        schema["example"] = example
    schema.update(getattr(node, "json_schema_extra", {}))
    return schema


def _standard(typ):
    for kind, schema in (
        (colander.Mapping, {"type": "object"}),
        (colander.Sequence, {"type": "array"}),
        (colander.Boolean, {"type": "boolean"}),
        (colander.Integer, {"type": "integer"}),
        (colander.Float, {"type": "number"}),
        (colander.DateTime, {"type": "string", "format": "date-time"}),
        (colander.Date, {"type": "string", "format": "date"}),
        (colander.String, {"type": "string"}),
    ):
        if isinstance(typ, kind):
            return dict(schema)
    raise TypeError(f"no JSON Schema for the colander type {typ!r}; give it a json_schema()")


def _apply_validator(schema, validator):
    if validator is None:
        return
    if isinstance(validator, colander.All):
        for each in validator.validators:
            _apply_validator(schema, each)
    elif isinstance(validator, colander.Length):
        prefix = "Items" if schema.get("type") == "array" else "Length"
        if validator.min is not None:
            schema[f"min{prefix}"] = validator.min
        if validator.max is not None:
            schema[f"max{prefix}"] = validator.max
    elif isinstance(validator, colander.Range):
        if validator.min is not None:
            schema["minimum"] = validator.min
        if validator.max is not None:
            schema["maximum"] = validator.max
    elif isinstance(validator, colander.OneOf):
        schema["enum"] = list(validator.choices)
    elif isinstance(validator, colander.Email):
        schema["format"] = "email"
    elif validator is colander.uuid:
        schema["format"] = "uuid"
    elif isinstance(validator, colander.Regex):
        schema["pattern"] = validator.match_object.pattern
    # Other validators are functions (e.g. "in the future"): the node's description says them.


# --- the document ---------------------------------------------------------------------------


def build_document(registry):
    """The OpenAPI document of every Cornice service registered in ``registry``."""
    # The services this app registered (cornice.service.get_services() lists every service
    # ever defined in the process; this is the same objects, limited to the app's own).
    services = sorted(registry.cornice_services.values(), key=lambda service: service.path)
    request = _DocRequest(registry)
    paths = {}
    tags = {}
    resources = {}
    for service in services:
        path = PATH_PARAMETER.sub(r"{\1}", service.path)
        item = paths.setdefault(path, {})
        for method, view, args in _definitions(service):
            operation = _operation(service, method, view, args, request)
            item[method.lower()] = operation
            tags.setdefault(operation["tags"][0], _tag_description(view))
            resources.update(_resources_of(view))
    return {
        "openapi": OPENAPI_VERSION,
        "info": _info(),
        "tags": [{"name": name, "description": text} for name, text in sorted(tags.items())],
        "paths": paths,
        "components": _components(resources.values()),
    }


def _resources_of(view):
    """The resource schemas a view answers with, by component name (a plugin's views bring
    their own)."""
    doc = getattr(view, "__api_doc__", None) or ApiDoc()
    return {
        _component_name(success.schema): success.schema
        for success in doc.responses
        if success.schema is not None and success.wrap
    }


def _definitions(service):
    seen = {}
    for method, view, args in service.definitions:
        if method == "OPTIONS":
            continue  # Cornice's CORS preflight, which browsers send themselves: no operation
        seen.setdefault(method, (method, view, args))  # the first view of a method answers
    return sorted(seen.values(), key=lambda d: METHOD_ORDER.index(d[0]))


def _info():
    try:
        package_version = version("ticketing")
    except PackageNotFoundError:  # pragma: no cover - the package is always installed
        package_version = "0.0.0"
    return {
        "title": "Ticketing API",
        "version": package_version,
        "description": (
            "Organisers create and publish events and sell several ticket types per event, "
            "each at its own price and optionally within a capacity of its own inside the "
            "event's; buyers purchase tickets of one type or several (at most 10 per order, "
            "safely retried with an idempotency key), and read or cancel their orders.\n\n"
            "* Responses wrap the resource in `data`; lists add `meta.next_cursor`, to pass "
            "back as `cursor` (`null` on the last page).\n"
            "* Money is a decimal string in the event's currency, with the decimals ISO 4217 "
            'gives it (`"50.00"` USD, `"5000"` JPY); times are ISO-8601 in UTC with a `Z`.\n'
            "* Every error is `application/problem+json` (RFC 9457) with a stable `code`.\n"
            "* Organiser operations need `Authorization: Bearer <key>`, with a key whose scope "
            "covers them (`x-scopes`): `admin` for everything, `read` for lists and what "
            "buyers may not see, `checkin` for check-in.\n"
            "* Rate limits: 100 requests a minute per client, 10 purchases a minute; every "
            "response under `/api` but the health check carries `RateLimit` and "
            "`RateLimit-Policy` headers, and a request over a limit gets 429 with "
            "`Retry-After`.\n"
            "* Every response carries an `X-Request-Id` (the client's own, if it sent a sane "
            "one)."
        ),
    }


def _tag_of(view):
    return view.__module__.rsplit(".", 1)[-1].replace("_", " ").title()


def _tag_description(view):
    import sys

    doc = sys.modules[view.__module__].__doc__ or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def _operation(service, method, view, args, request):
    doc = getattr(view, "__api_doc__", None) or ApiDoc()
    summary, description = _docstring(view)
    operation = {
        "operationId": view.__name__ + ("_head" if method == "HEAD" else ""),
        "tags": [_tag_of(view)],
        "summary": summary if method != "HEAD" else f"{summary} (headers only)",
    }
    if description:
        operation["description"] = description

    parameters = [_path_parameter(name) for name in PATH_PARAMETER.findall(service.path)]
    schema = args.get("schema")
    bound = schema.bind(request=request) if schema is not None else None
    location = _schema_location(args) if schema is not None else None
    if location == "querystring":
        parameters += [_query_parameter(child) for child in bound.children]
    parameters += [dict(header) for header in doc.request_headers]
    if parameters:
        operation["parameters"] = parameters

    content_types = [value for value in _as_list(args.get("content_type")) if value]
    if location == "body":
        body_schema = json_schema(bound)
        example = body_schema.pop("example", None)
        media = {"schema": body_schema}
        if example is not None:
            media["example"] = example
        operation["requestBody"] = {
            "required": True,
            "content": {
                content_type: dict(media) for content_type in content_types or [JSON_MEDIA_TYPE]
            },
        }

    problems = _problem_codes(service, method, args, doc, location, content_types)
    responses = {}
    for success in doc.responses or (Success(200, "OK"),):
        responses[str(success.status)] = _success_response(success, request)
    for status, codes in sorted(problems.items()):
        responses[str(status)] = _problem_response(status, codes)
    if method == "HEAD":
        for response in responses.values():
            response.pop("content", None)
    operation["responses"] = responses

    permission = args.get("permission")
    if permission in SCOPES_OF:
        operation["security"] = [{SECURITY_SCHEME: []}]
        operation["x-scopes"] = [str(scope) for scope in SCOPES_OF[permission]]
    elif doc.optional_auth:
        # Such views show more to those who may read everything (drafts, hidden types).
        operation["security"] = [{}, {SECURITY_SCHEME: []}]
        operation["x-scopes"] = [str(scope) for scope in SCOPES_OF[READ]]
    else:
        operation["security"] = []
    return operation


def _docstring(view):
    text = (view.__doc__ or view.__name__.replace("_", " ").capitalize()).strip()
    summary, _, rest = text.partition("\n\n")
    return " ".join(summary.split()), " ".join(rest.split()) if rest else ""


def _as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _schema_location(args):
    """Where the operation's schema applies: what its Cornice validator validates."""
    from cornice.validators import colander_body_validator, colander_querystring_validator

    known = {colander_body_validator: "body", colander_querystring_validator: "querystring"}
    for validator in args.get("validators", ()):
        location = known.get(validator) or getattr(validator, "schema_location", None)
        if location:
            return location
    raise ValueError(f"cannot tell where the schema {args.get('schema')!r} applies")


def _path_parameter(name):
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": "The resource's id (a UUID; an unknown or malformed id answers 404).",
        "schema": {"type": "string", "format": "uuid"},
    }


def _query_parameter(node):
    schema = json_schema(node)
    parameter = {"name": node.name, "in": "query", "required": bool(node.required)}
    if not node.required:
        # colander reads "" as absent: "?status=" is the same as no status.
        parameter["allowEmptyValue"] = True
    description = schema.pop("description", None)
    if description:
        parameter["description"] = description
    parameter["schema"] = schema
    return parameter


def _problem_codes(service, method, args, doc, location, content_types):
    """{status: {code: description}} of the problems the operation can answer with."""
    codes = {}

    def add(status, code, text=None):
        codes.setdefault(status, {}).setdefault(code, text or FRAMEWORK_PROBLEMS.get(code))

    if location is not None:
        add(400, "validation_failed")
    if location == "body":
        add(400, "malformed_json")
    if args.get("permission") in SCOPES_OF:
        add(401, "unauthorized")
        add(401, "key_revoked")
        add(403, "forbidden")
        add(403, "insufficient_scope")
    if method in BODY_METHODS:
        add(413, "payload_too_large")
    if content_types:
        add(415, "unsupported_media_type")
    if service.cors_enabled:
        add(400, "origin_not_allowed")
    if service.path not in EXEMPT_PATHS:
        add(429, "rate_limited")
    if CONSTRAINED_PARAMETER.search(service.path):
        # Such a route does not match other ids at all (``/api/webhooks/stripe`` is another's).
        add(404, "not_found", "The path's id is not of a UUID's characters: nothing is served.")
    add(500, "internal_error")
    if service.path not in NO_DATABASE_PATHS:
        add(503, "database_unavailable")
        add(503, "server_busy")
    from ticketing.views.problems import status_of_domain_error

    for error in doc.raises:
        add(status_of_domain_error(error), error.code, error.title + ".")
    for status, extra in doc.problems.items():
        for code in extra:
            add(status, code)
    return codes


def _success_response(success, request):
    response = {"description": success.description}
    headers = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    headers.update({name: dict(header) for name, header in success.headers.items()})
    response["headers"] = headers
    content = {}
    if success.media_type is not None:
        raw = {"type": "string"}
        if not success.media_type.startswith("text/"):
            raw["format"] = "binary"
        content[success.media_type] = {"schema": raw}
    if success.schema is None:
        if content:
            response["content"] = content
        return response
    node = success.schema.bind(request=request)
    if not success.wrap:
        schema = json_schema(node)
    else:
        item = {"$ref": f"#/components/schemas/{_component_name(node)}"}
        if success.many:
            schema = {"$ref": f"#/components/schemas/{_component_name(node)}Page"}
        else:
            schema = {
                "type": "object",
                "required": ["data"],
                "properties": {"data": item},
                "additionalProperties": False,
            }
    response["content"] = {JSON_MEDIA_TYPE: {"schema": schema}, **content}
    return response


def _component_name(node):
    return getattr(node, "component_name", type(node).__name__)


def _problem_response(status, codes):
    described = [f"- `{code}`" + (f": {text}" if text else "") for code, text in codes.items()]
    headers = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    if status == 401:
        headers["WWW-Authenticate"] = {
            "description": 'Always `Bearer realm="ticketing"`.',
            "required": True,
            "schema": {"type": "string"},
        }
    if status == 429 or "request_in_progress" in codes or "server_busy" in codes:
        only = {409: "`request_in_progress`", 503: "`database_unavailable` and `server_busy`"}
        headers["Retry-After"] = {
            "description": "Seconds to wait before retrying"
            + (f" (with {status} for {only[status]})." if status in only else "."),
            "required": status == 429,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    schema = {
        "allOf": [
            {"$ref": "#/components/schemas/Problem"},
            {"type": "object", "properties": {"code": {"type": "string", "enum": list(codes)}}},
        ]
    }
    return {
        "description": "\n".join(described),
        "headers": headers,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
    }


def _components(resources=()):
    from ticketing.views.serialize import RESOURCE_SCHEMAS

    schemas = {}
    known = {_component_name(node) for node in RESOURCE_SCHEMAS}
    extra = [node for node in resources if _component_name(node) not in known]
    for node in (*RESOURCE_SCHEMAS, *extra):
        name = _component_name(node)
        schemas[name] = json_schema(node)
        schemas[f"{name}Page"] = {
            "type": "object",
            "required": ["data", "meta"],
            "properties": {
                "data": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
                "meta": {"$ref": "#/components/schemas/PageMeta"},
            },
            "additionalProperties": False,
        }
    schemas["PageMeta"] = {
        "type": "object",
        "required": ["next_cursor"],
        "properties": {
            "next_cursor": {
                "type": "string",
                "nullable": True,
                "description": "Pass it back as `cursor` for the next page; `null` on the last.",
            }
        },
        "additionalProperties": False,
    }
    schemas["Problem"] = {
        "type": "object",
        "description": "An RFC 9457 problem document.",
        "required": ["type", "title", "status", "code"],
        "properties": {
            "type": {"type": "string", "example": "urn:ticketing:problem:validation_failed"},
            "title": {"type": "string", "example": "Invalid request"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599, "example": 400},
            "code": {
                "type": "string",
                "description": "Stable and machine-readable; `type` is `urn:ticketing:problem:` "
                "followed by it.",
                "example": "validation_failed",
            },
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "description": "With `validation_failed`: one entry per refused field.",
                "items": {"$ref": "#/components/schemas/FieldError"},
            },
        },
        "additionalProperties": True,
    }
    schemas["FieldError"] = {
        "type": "object",
        "required": ["location", "field", "message"],
        "properties": {
            "location": {"type": "string", "example": "body"},
            "field": {"type": "string", "nullable": True, "example": "event.ticket_price"},
            "message": {
                "type": "string",
                "example": "Must have at most 2 decimal places in USD.",
            },
        },
        "additionalProperties": False,
    }
    return {
        "schemas": schemas,
        "headers": {
            "X-Request-Id": {
                "description": "The request's id, as logged (the client's own if it sent one).",
                "required": True,
                "schema": {"type": "string"},
            }
        },
        "securitySchemes": {
            SECURITY_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "description": "An organiser API key: one made with `POST /api/keys` (or "
                "`ticketing_keys`), whose scope (admin, read or checkin) must cover the "
                "operation (its `x-scopes`), or one of the setting `ticketing.api_keys` (in "
                "production `TICKETING_API_KEYS`), which are admin keys. Without one: 401 "
                "`unauthorized`; a revoked one: 401 `key_revoked`; a wrong one: 403 "
                "`forbidden`; one of another scope: 403 `insufficient_scope`.",
            }
        },
    }
