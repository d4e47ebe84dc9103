import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from . import ApiService
from .problems import problem

log = logging.getLogger(__name__)

health = ApiService(name="health", path="/api/health", description="Liveness and database check")


@health.get()
def get_health(request):
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
