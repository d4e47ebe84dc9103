"""Health: a liveness probe for load balancers that reports the database and Redis separately.

The database is what the API cannot serve without: 503 when it does not answer. Redis carries
the job queues and the shared rate-limit counts, and the API keeps selling without it (limits fail
open, emails wait in the outbox for the sweep), so Redis down is 200 with ``degraded``. Redis is
reported only when the app uses it.
"""

import logging
from urllib.parse import urlparse

import colander
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ticketing.openapi import Success, api_doc
from ticketing.settings import as_bool

from . import ApiService
from .problems import problem
from .schemas import StrictMappingSchema

log = logging.getLogger(__name__)

#: a probe answers within this, whatever state Redis is in
REDIS_PROBE_TIMEOUT_SECONDS = 0.5

health = ApiService(
    name="health", path="/api/health", description="Liveness, database and Redis check"
)


class HealthChecks(StrictMappingSchema):
    database = colander.SchemaNode(colander.String(), validator=colander.OneOf(["ok"]))
    redis = colander.SchemaNode(
        colander.String(),
        validator=colander.OneOf(["ok", "degraded"]),
        missing=colander.drop,
        description="Present when the app uses Redis (job queues, shared rate limits). "
        "`degraded`: it does not answer; the API goes on selling without it.",
    )


class HealthBody(StrictMappingSchema):
    status = colander.SchemaNode(colander.String(), validator=colander.OneOf(["ok", "degraded"]))
    checks = HealthChecks()


def redis_urls(settings):
    """The Redis servers the app depends on: the job queues' and the rate limits'."""
    urls = []
    if not as_bool(settings, "huey.immediate", False):
        urls.append(settings.get("huey.url", ""))
    if as_bool(settings, "ratelimit.enabled", True):
        urls.append(settings.get("ratelimit.storage_url", ""))
    redis_only = [url for url in urls if urlparse(url).scheme in ("redis", "rediss")]
    return list(dict.fromkeys(redis_only))


def redis_probes(settings):
    # No retries and short timeouts: a probe must say "degraded" fast, not wait for Redis.
    return [
        redis.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_PROBE_TIMEOUT_SECONDS,
            socket_timeout=REDIS_PROBE_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        for url in redis_urls(settings)
    ]


def redis_state(probes):
    for probe in probes:
        try:
            probe.ping()
        except redis.RedisError as error:
            log.warning("health check: Redis unreachable: %s", error)
            return "degraded"
    return "ok"


@health.get()
@api_doc(
    Success(
        200,
        "The database answers; `status` is `degraded` when Redis does not.",
        HealthBody(),
        wrap=False,
    ),
    problems={503: ["service_unavailable"]},
)
def get_health(request):
    """Check health

    For load balancers: 200 when the database answers, 503 when it does not. Not rate-limited.
    """
    probes = request.registry["redis_probes"]
    checks = {} if not probes else {"redis": redis_state(probes)}
    try:
        # The engine, not request.dbsession: a probe has no business in the request transaction.
        with request.registry["dbengine"].connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        log.warning("health check: database unreachable: %s", error)
        return problem(
            503,
            "service_unavailable",
            "Service unavailable",
            "The database does not answer.",
            checks={"database": "unavailable", **checks},
        )
    checks = {"database": "ok", **checks}
    status = "ok" if all(state == "ok" for state in checks.values()) else "degraded"
    return {"status": status, "checks": checks}


def includeme(config):
    config.registry["redis_probes"] = redis_probes(config.get_settings())
    config.scan(__name__)
