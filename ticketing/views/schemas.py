"""Colander building blocks for strict JSON input.

Colander is lenient by default: ``String`` turns 12 into "12", ``Integer`` takes "12" and true,
``Decimal`` takes NaN and floats and rounds silently, and mappings drop unknown keys. An API that
takes money must not guess, so the types here refuse what is not exactly what they expect.
"""

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

import colander
from cornice.validators import extract_cstruct

MAX_PRICE = Decimal("1000000")
#: what a price given as a string looks like: digits, and at most four decimal places (the most
#: ISO 4217 gives any currency; each event's currency then allows its own number, see
#: ticketing.money)
MONEY_PATTERN = r"^[0-9]{1,7}(\.[0-9]{1,4})?$"
_MONEY_STRING = re.compile(MONEY_PATTERN)

# Each type below describes itself for the OpenAPI document (ticketing/openapi.py) with a
# ``json_schema(node)`` method: the JSON Schema of what it accepts, before the node's validators.


class StrictMapping(colander.Mapping):
    """Refuses unknown keys, naming each, alongside the errors of the known fields (colander's
    ``unknown="raise"`` reports the unknown keys alone and hides every other error). A schema
    whose fields are required one way or another names the missing ones the same way, with an
    ``absent_fields(cstruct)`` method that yields (field, message) pairs."""

    def json_schema(self, node):
        return {"type": "object", "additionalProperties": False}

    def deserialize(self, node, cstruct):
        if cstruct is not colander.null and not isinstance(cstruct, dict):
            raise colander.Invalid(node, "Must be a JSON object.")
        error = None
        try:
            result = super().deserialize(node, cstruct)
        except colander.Invalid as invalid:
            error = invalid
        known = {child.name for child in node.children}
        unknown = (
            [key for key in cstruct if key not in known] if cstruct is not colander.null else []
        )
        if unknown:
            error = error or colander.Invalid(node)
            for key in unknown:
                field = colander.SchemaNode(colander.String(), name=str(key))
                error.add(colander.Invalid(field, "Unknown field."))
        absent = getattr(node, "absent_fields", None)
        for name, message in absent(cstruct) if absent and isinstance(cstruct, dict) else ():
            error = error or colander.Invalid(node)
            error.add(colander.Invalid(node[name], message))
        if error is not None:
            raise error
        return result


class StrictMappingSchema(colander.MappingSchema):
    schema_type = StrictMapping


NUL = "\x00"


class StrictString(colander.String):
    def json_schema(self, node):
        return {"type": "string"}

    def deserialize(self, node, cstruct):
        if cstruct is not colander.null and not isinstance(cstruct, str):
            raise colander.Invalid(node, "Must be a string.")
        if cstruct is not colander.null and NUL in cstruct:
            # PostgreSQL cannot store it (a 500 from the database otherwise).
            raise colander.Invalid(node, "Must not contain NUL characters.")
        if cstruct == "":
            # colander reads "" as absent, so an optional field given as "" would be dropped
            # silently; it is a value, and the node's validator judges it.
            return cstruct
        return super().deserialize(node, cstruct)


class QueryString(colander.String):
    """A query-string value: "" is absent, as with colander's String, and NUL is refused (it
    would reach the database in a filter, which PostgreSQL refuses with an error)."""

    def json_schema(self, node):
        return {"type": "string"}

    def deserialize(self, node, cstruct):
        if isinstance(cstruct, str) and NUL in cstruct:
            raise colander.Invalid(node, "Must not contain NUL characters.")
        return super().deserialize(node, cstruct)


class StrictInteger(colander.SchemaType):
    def json_schema(self, node):
        return {"type": "integer"}

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return colander.null
        if isinstance(cstruct, bool) or not isinstance(cstruct, int):
            raise colander.Invalid(node, "Must be an integer.")
        return cstruct


class Money(colander.SchemaType):
    """A non-negative amount, given as a decimal string ("50.00") or a whole number, with no
    more decimals than its currency has (checked where the currency is known). Floats are
    refused: their binary value is not the decimal the client meant."""

    def json_schema(self, node):
        return {
            "oneOf": [
                {"type": "string", "pattern": MONEY_PATTERN, "example": "50.00"},
                {"type": "integer", "minimum": 0, "maximum": int(MAX_PRICE)},
            ],
            "description": 'A decimal string such as "50.00" or a whole number, in the '
            "event's currency, with at most as many decimals as the currency has (ISO 4217: "
            f'2 for USD, none for JPY, so "5000"); from 0 to {MAX_PRICE}. JSON floats are '
            "refused.",
        }

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return colander.null
        if isinstance(cstruct, bool) or not isinstance(cstruct, (str, int)):
            raise colander.Invalid(node, 'Must be a decimal string such as "50.00".')
        try:
            amount = Decimal(str(cstruct).strip())
        except InvalidOperation:
            raise colander.Invalid(node, f'"{cstruct}" is not a decimal number.') from None
        if not amount.is_finite():
            raise colander.Invalid(node, "Must be a finite number.")
        if amount < 0:
            raise colander.Invalid(node, "Must not be negative.")
        if amount > MAX_PRICE:
            raise colander.Invalid(node, f"Must not exceed {MAX_PRICE}.")
        if amount != amount.quantize(Decimal("0.0001")):
            raise colander.Invalid(node, "Must have at most four decimal places.")
        if isinstance(cstruct, str) and not _MONEY_STRING.fullmatch(cstruct):
            # "5e1", " 50", "+50", ".5" or "50.000" denote a valid amount, but not in the
            # documented format, and an API that takes money does not guess.
            raise colander.Invalid(node, 'Must be a decimal string such as "50.00".')
        return amount


class StrictBoolean(colander.SchemaType):
    def json_schema(self, node):
        return {"type": "boolean"}

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return colander.null
        if not isinstance(cstruct, bool):
            raise colander.Invalid(node, "Must be true or false.")
        return cstruct


class StrictSequence(colander.Sequence):
    """A JSON array, and nothing else (colander's Sequence takes a string as its characters)."""

    def json_schema(self, node):
        return {"type": "array"}

    def deserialize(self, node, cstruct, accept_scalar=None):
        if cstruct is not colander.null and not isinstance(cstruct, list):
            raise colander.Invalid(node, "Must be a JSON array.")
        return super().deserialize(node, cstruct, accept_scalar)


class NullableNode(colander.SchemaNode):
    """A field that JSON ``null`` may clear: null deserializes to None, past the validator
    (the OpenAPI document marks it ``nullable``)."""

    nullable = True

    def deserialize(self, cstruct=colander.null):
        if cstruct is None:
            return None
        return super().deserialize(cstruct)


class UTCDateTime(colander.DateTime):
    """An ISO-8601 timestamp that states its offset, returned in UTC."""

    def __init__(self, empty_is_missing=False):
        super().__init__(default_tzinfo=None)
        # In a query string "?updated_since=" means no filter; in a JSON body "" is no timestamp.
        self.empty_is_missing = empty_is_missing

    def json_schema(self, node):
        return {"type": "string", "format": "date-time"}

    def deserialize(self, node, cstruct):
        if cstruct is not colander.null and not isinstance(cstruct, str):
            raise colander.Invalid(node, "Must be an ISO-8601 timestamp string.")
        if cstruct == "" and not self.empty_is_missing:
            raise colander.Invalid(node, "Must be an ISO-8601 timestamp string.")
        value = super().deserialize(node, cstruct)
        if value is colander.null:
            return value
        if value.tzinfo is None:
            raise colander.Invalid(node, 'Must include a UTC offset, e.g. "2026-07-15T18:00:00Z".')
        return value.astimezone(dt.UTC)


def invalid_child(node, name, message):
    """The error of a mapping's validator about one of its fields, reported at that field."""
    error = colander.Invalid(node)
    error.add(colander.Invalid(node[name], message))
    return error


def strip(value):
    return value.strip() if isinstance(value, str) else value


def in_the_future(node, value):
    if value <= dt.datetime.now(dt.UTC):
        raise colander.Invalid(node, "Must lie in the future.")


def text_field(**kwargs):
    return colander.SchemaNode(
        StrictString(), preparer=strip, validator=colander.Length(1, 200), **kwargs
    )


def limit_field(max_limit):
    return colander.SchemaNode(
        colander.Integer(), missing=20, validator=colander.Range(1, max_limit)
    )


def json_body_validator(request, schema=None, **kwargs):
    """Validate the JSON body against ``schema`` into ``request.validated``, with Cornice's
    error locations ("body", and the field's dotted path).

    Cornice's own body validator builds a new schema class for every request, and deferred
    values need the schema bound: together they were ~10% of a purchase's CPU. Here each app
    binds each schema once (deferred values may read only the app's settings) and deserializes
    the body directly.
    """
    body = _body_of(request)
    if request.errors:
        return  # not JSON, or not an object or array
    bound_schemas = request.registry.setdefault("bound_body_schemas", {})
    bound = bound_schemas.get(id(schema))
    if bound is None:
        bound = bound_schemas[id(schema)] = schema.bind(request=request)
    try:
        request.validated.update(bound.deserialize(body))
    except colander.Invalid as invalid:
        for name, message in invalid.asdict(translate=request.localizer.translate).items():
            request.errors.add("body", name, message)


json_body_validator.schema_location = "body"  # for the OpenAPI document

_JSON_CONTENT_TYPE = re.compile(r"^application/(.*?)json$")


def _body_of(request):
    """The body as Cornice's ``extract_cstruct(request)["body"]`` gives it, with its errors.

    A JSON body (or one without a content type) is parsed here as Cornice parses it, because
    ``extract_cstruct`` also copies the URL, query string, headers and cookies, which no body
    schema reads (about 80 of its 95 us per purchase request). Other content types go
    through Cornice.
    """
    content_type = request.content_type
    if content_type and not _JSON_CONTENT_TYPE.match(content_type):
        return extract_cstruct(request).get("body")
    if not request.body:
        return {}
    try:
        body = request.json_body
    except ValueError as invalid:
        request.errors.add("body", "", f"Invalid JSON: {invalid}")
        return None
    if not hasattr(body, "items") and not isinstance(body, list):
        request.errors.add("body", "", "Should be a JSON object or an array")
        return None
    return body
