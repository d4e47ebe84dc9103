"""Rate limits per client, on the ``limits`` library's moving window.

Every request under ``/api`` but the health check counts against the general limit; a purchase
also counts against the purchase limit, and so does every request that may carry a promo code
(a hold, a hold's payment, a listing of ticket types with ``?promo_code=``), so that guessing
codes is limited per client as buying is. Counts live in ``ratelimit.storage_url`` (``memory://``
for one process, ``redis://...`` so that every process and host shares them). Responses carry
the IETF RateLimit draft headers of the tightest policy, and a request over a limit gets 429 with
``Retry-After``. If the storage cannot be reached the API keeps serving: limits fail open, the
outage is logged when it starts and when it ends, and the storage is tried again every second.
"""

import ipaddress
import logging
import math
import re
import time
from dataclasses import dataclass

import limits
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from ticketing.settings import as_bool
from ticketing.views.problems import problem

log = logging.getLogger(__name__)

PURCHASE_PATH = re.compile(r"^/api/events/[^/]+/purchase/?$")
#: POSTs that take tickets or pay for them, and may carry a promo code: counted as purchases
PURCHASE_LIKE_PATHS = re.compile(r"^/api/(events/[^/]+/(purchase|orders)|orders/[^/]+/pay)/?$")
TICKET_TYPES_PATH = re.compile(r"^/api/events/[^/]+/ticket-types/?$")
#: a query string naming a promo code (read raw: the tween parses no query)
PROMO_CODE_QUERY = re.compile(r"(^|&)promo_code=")
EXEMPT_PATHS = frozenset({"/api/health"})
STORAGE_TIMEOUT_SECONDS = 0.5
#: while the storage is down, how long requests go unlimited before one tries it again
STORAGE_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Policy:
    name: str
    item: limits.RateLimitItem

    @property
    def window_seconds(self):
        return self.item.get_expiry()

    def header(self):
        return f'"{self.name}";q={self.item.amount};w={self.window_seconds}'


class RateLimiter:
    def __init__(self, storage, policies, trusted_proxies, key_prefix=""):
        self.limiter = MovingWindowRateLimiter(storage)
        self.general = policies["general"]
        self.purchase = policies["purchase"]
        self.trusted_proxies = trusted_proxies
        self.key_prefix = key_prefix

    @classmethod
    def from_settings(cls, settings):
        url = settings.get("ratelimit.storage_url", "memory://")
        options = {"wrap_exceptions": True}
        if url.startswith(("redis://", "rediss://")):
            options.update(
                socket_connect_timeout=STORAGE_TIMEOUT_SECONDS,
                socket_timeout=STORAGE_TIMEOUT_SECONDS,
            )
        policies = {
            name: Policy(name, limits.parse(settings.get(f"ratelimit.{name}", default)))
            for name, default in (("general", "100/minute"), ("purchase", "10/minute"))
        }
        trusted = [
            ipaddress.ip_network(entry, strict=False)
            for entry in settings.get("ratelimit.trusted_proxies", "").split()
        ]
        return cls(
            storage_from_string(url, **options),
            policies,
            trusted,
            key_prefix=settings.get("ratelimit.key_prefix", ""),
        )

    def policies_for(self, request):
        if request.path in EXEMPT_PATHS or not request.path.startswith("/api/"):
            return []
        if request.method == "POST" and PURCHASE_LIKE_PATHS.match(request.path):
            return [self.general, self.purchase]
        if TICKET_TYPES_PATH.match(request.path) and PROMO_CODE_QUERY.search(
            request.environ.get("QUERY_STRING", "")
        ):
            return [self.general, self.purchase]
        return [self.general]

    def client_of(self, request):
        """The peer address, or, behind trusted proxies, the nearest address they vouch for."""
        peer = request.remote_addr or "unknown"
        if not self._is_trusted(peer):
            return peer
        forwarded = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed([hop for hop in forwarded if hop]):
            if not self._is_trusted(hop):
                return hop
        return peer

    def _is_trusted(self, address):
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)

    def check(self, request):
        """Count the request; return (the policy it broke or None, headers to add)."""
        policies = self.policies_for(request)
        if not policies:
            return None, {}
        client = self.client_of(request)
        broken = None
        tightest = None
        for policy in policies:
            identifiers = (self.key_prefix, policy.name, client)
            allowed = self.limiter.hit(policy.item, *identifiers)
            stats = self.limiter.get_window_stats(policy.item, *identifiers)
            if not allowed and broken is None:
                broken = (policy, stats)
            if tightest is None or stats.remaining < tightest[1].remaining:
                tightest = (policy, stats)
        policy, stats = broken or tightest
        reset_in = max(0, math.ceil(stats.reset_time - time.time()))
        headers = {
            "RateLimit-Policy": ", ".join(p.header() for p in policies),
            "RateLimit": f'"{policy.name}";r={stats.remaining};t={reset_in}',
        }
        if broken is not None:
            headers["Retry-After"] = str(max(1, reset_in))
            return policy, headers
        return None, headers


class StorageOutage:
    """Whether the storage is known to be down. While it is, requests skip the limiter for
    :data:`STORAGE_RETRY_SECONDS` at a time instead of each paying for a failed connection, and
    the outage is logged once when it starts and once when it ends, not once per request."""

    def __init__(self):
        self.since = None
        self.retry_at = 0.0

    def skipping(self, now):
        return now < self.retry_at

    def failed(self, now, error):
        if self.since is None:
            self.since = now
            log.warning(
                "rate limit storage unavailable, serving without limits until it answers: %s",
                error,
            )
        self.retry_at = now + STORAGE_RETRY_SECONDS

    def answered(self, now):
        if self.since is not None:
            log.warning(
                "rate limit storage answers again after %.1fs; limits apply", now - self.since
            )
            self.since = None


def rate_limit_tween_factory(handler, registry):
    limiter = registry["rate_limiter"]
    outage = StorageOutage()

    def rate_limit_tween(request):
        now = time.monotonic()
        if outage.skipping(now):
            return handler(request)
        try:
            broken, headers = limiter.check(request)
        except StorageError as error:
            outage.failed(now, error)
            return handler(request)
        outage.answered(now)
        if broken is not None:
            return problem(
                429,
                "rate_limited",
                "Too many requests",
                f"The {broken.name} limit of {broken.item.amount} requests per "
                f"{broken.window_seconds} seconds is used up; retry after "
                f"{headers['Retry-After']} seconds.",
                headers=headers,
            )
        response = handler(request)
        response.headers.update(headers)
        return response

    return rate_limit_tween


def includeme(config):
    settings = config.get_settings()
    if not as_bool(settings, "ratelimit.enabled", True):
        return
    config.registry["rate_limiter"] = RateLimiter.from_settings(settings)
    # Outermost: a refused request opens no transaction and touches no database.
    config.add_tween(
        "ticketing.ratelimit.rate_limit_tween_factory", over="pyramid_tm.tm_tween_factory"
    )
