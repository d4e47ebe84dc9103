"""Health: a liveness and database check for load balancers."""

import logging

import colander
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ticketing.openapi import Success, api_doc

from . import ApiService
from .problems import problem
from .schemas import StrictMappingSchema

log = logging.getLogger(__name__)

health = ApiService(name="health", path="/api/health", description="Liveness and database check")


class HealthChecks(StrictMappingSchema):
    database = colander.SchemaNode(colander.String(), validator=colander.OneOf(["ok"]))


class HealthBody(StrictMappingSchema):
    status = colander.SchemaNode(colander.String(), validator=colander.OneOf(["ok"]))
    checks = HealthChecks()


@health.get()
@api_doc(
    Success(200, "The API and its database answer.", HealthBody(), wrap=False),
    problems={503: ["service_unavailable"]},
)
def get_health(request):
    """Check health

    For load balancers: 200 when the database answers, 503 when it does not. Not rate-limited.
    """
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
            checks={"database": "unavailable"},
        )
    return {"status": "ok", "checks": {"database": "ok"}}
