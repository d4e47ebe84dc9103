"""The HTTP layer: Cornice services that validate input with colander schemas, call the domain,
and render its results. Every error leaves as ``application/problem+json``."""

import contextlib
import uuid
from urllib.parse import unquote_to_bytes

from cornice import Service
from pyramid.exceptions import ConfigurationError
from pyramid.httpexceptions import HTTPBadRequest
from pyramid.request import Request
from pyramid.threadlocal import get_current_registry, get_current_request
from webob.multidict import GetDict

from ticketing.domain.errors import InvalidPromoCode, InvalidTicketType, PriceNotInCurrency
from ticketing.money import exponent
from ticketing.settings import as_int, hold_duration

from .problems import cornice_error_handler, invalid_field

#: hard cap on page sizes, whatever the client asks
MAX_PAGE_SIZE = 100
JSON = "application/json"


class ApiService(Service):
    """A Cornice service whose validation errors use the API's problem body."""

    def default_error_handler(self, request):
        return cornice_error_handler(request)


class BuyerService(ApiService):
    """A service buyers call from organisers' own checkout pages (3-D Secure is finished in the
    buyer's browser, with Stripe.js): Cornice's CORS support answers for the origins of the
    setting ``ticketing.cors_origins``, preflight included, and for the API's own origin (its
    documentation page). Cornice refuses a request from any other origin before the view runs
    (400 ``origin_not_allowed``), so a cross-site form cannot buy or release anything either. The
    origins are the app's, read when a request asks, since one service object serves every app
    of the process."""

    def __init__(self, *args, depth=1, **kwargs):
        # One frame deeper than Cornice expects: venusian must find the module declaring it.
        super().__init__(
            *args,
            depth=depth + 1,
            cors_enabled=True,
            cors_headers=CORS_EXPOSED_HEADERS,
            **kwargs,
        )

    def get_arguments(self, conf=None):
        arguments = super().get_arguments(conf)
        # Not frozen into each view's arguments when it is declared: always the property's.
        arguments.pop("cors_origins", None)
        return arguments

    @property
    def cors_origins(self):
        configured = get_current_registry().get("cors_origins", ())
        request = get_current_request()
        return configured if request is None else (*configured, request.host_url)

    @cors_origins.setter
    def cors_origins(self, origins):
        if origins:
            raise ConfigurationError("a buyer service's origins are ticketing.cors_origins")


#: response headers a buyer's browser may read
CORS_EXPOSED_HEADERS = ("Location", "Idempotent-Replayed", "Retry-After", "X-Request-Id")


def uuid_from_path(request, not_found, name="id"):
    """The ``{id}`` (or ``name``) of the path as a UUID; a malformed id is as unknown as a
    missing one."""
    raw = request.matchdict[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise not_found(f"No such id: {raw!r}.") from None


class ApiRequest(Request):
    """Query strings split on ``&`` only, as RFC 3986 and every client mean them, and refused
    with a 400 when they are not UTF-8. WebOb also splits on ``;``, so ``?updated_since=;`` read
    as an empty value (no filter) where the client sent a malformed timestamp, and its decoding
    error was a 500."""

    @property
    def GET(self):
        source = self.environ.get("QUERY_STRING", "")
        parsed = self.environ.get("ticketing.parsed_query")
        if parsed is None or parsed[1] != source:
            try:
                pairs = list(_query_pairs(source))
            except UnicodeDecodeError:
                raise HTTPBadRequest("The query string is not valid UTF-8.") from None
            parsed = (GetDict(pairs, self.environ), source)
            self.environ["ticketing.parsed_query"] = parsed
        return parsed[0]


def _query_pairs(source):
    for pair in source.encode("latin-1").replace(b"+", b" ").split(b"&"):
        if pair:
            name, _, value = pair.partition(b"=")
            yield (unquote_to_bytes(name).decode("utf-8"), unquote_to_bytes(value).decode("utf-8"))


@contextlib.contextmanager
def fields_of(resource):
    """Answer a domain rule that refuses one field of the body (``resource.<field>``) as that
    field's validation error, like the schema's own."""
    try:
        yield
    except (PriceNotInCurrency, InvalidTicketType, InvalidPromoCode) as error:
        raise invalid_field(f"{resource}.{error.extra['field']}", error.detail) from None


def currencies_from(settings):
    """``ticketing.currencies``: the ISO 4217 codes events may sell in, the first the default."""
    codes = settings.get("ticketing.currencies", "USD").split()
    for code in codes:
        try:
            exponent(code)
        except ValueError as error:
            raise ConfigurationError(f"ticketing.currencies: {error}") from None
    if not codes:
        raise ConfigurationError("ticketing.currencies names no currency")
    return codes


def includeme(config):
    # Our exception views in .problems answer every error; Cornice's would compete with them.
    settings = config.get_settings()
    settings["handle_exceptions"] = False
    config.registry["max_tickets_per_order"] = as_int(
        settings, "ticketing.max_tickets_per_order", 10
    )
    config.registry["currencies"] = currencies_from(settings)
    config.registry["cors_origins"] = tuple(settings.get("ticketing.cors_origins", "").split())
    config.registry["hold_for"] = hold_duration(settings)
    config.set_request_factory(ApiRequest)
    config.include("cornice")
    config.include(".problems")
    config.include(".health")
    config.scan(".events")
    config.scan(".ticket_types")
    config.scan(".promo_codes")
    config.scan(".orders")
    config.scan(".keys")
    config.scan(".stripe_webhooks")
    config.scan(".tickets")
    config.scan(".checkins")
    config.scan(".attendees")
    config.scan(".waiting_list")
    config.include(".docs")
