"""The outermost layer of every request: a request id, a cap on body size, and a last line of
defence that turns anything that escaped the exception views into a logged problem response."""

import logging
import re
import uuid

from pyramid.tweens import INGRESS

from ticketing.settings import as_int
from ticketing.views.problems import database_problem, problem

#: environ key set by admission control (ticketing.admission) on a purchase it turned away
SHED = "ticketing.admission.shed"

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
# A client's own id is kept only if it cannot smuggle anything into logs or headers.
ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
DEFAULT_MAX_BODY_BYTES = 64 * 1024


def request_id_of(request):
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    return offered if ACCEPTABLE_REQUEST_ID.match(offered) else uuid.uuid4().hex


def body_too_large(request, max_bytes):
    length = request.content_length
    if length is not None:
        return length > max_bytes
    if request.method in ("POST", "PUT", "PATCH") and request.is_body_readable:
        # Chunked: read one byte past the limit, no more, and keep what was read for the view.
        head = request.body_file.read(max_bytes + 1)
        request.body = head
        return len(head) > max_bytes
    return False


def request_tween_factory(handler, registry):
    max_bytes = as_int(registry.settings, "ticketing.max_body_bytes", DEFAULT_MAX_BODY_BYTES)

    def request_tween(request):
        request.request_id = request_id_of(request)
        if body_too_large(request, max_bytes):
            response = problem(
                413,
                "payload_too_large",
                "Payload too large",
                f"Request bodies are limited to {max_bytes} bytes.",
            )
        else:
            try:
                response = handler(request)
            except Exception as error:
                # A commit that failed because the database went away surfaces here.
                response = database_problem(error, request)
                if response is None:
                    log.exception(
                        "unhandled error on %s %s [request_id=%s]",
                        request.method,
                        request.path,
                        request.request_id,
                    )
                    response = problem(
                        500, "internal_error", "Internal server error", "The error has been logged."
                    )
        # A purchase turned away by admission control is the server working as meant under a
        # burst: it is counted in admission control's own summary line, not logged one by one.
        if response.status_code >= 500 and not request.environ.get(SHED):
            log.error(
                "%s %s answered %s [request_id=%s]",
                request.method,
                request.path_qs,
                response.status_code,
                request.request_id,
            )
        response.headers[REQUEST_ID_HEADER] = request.request_id
        return response

    return request_tween


def includeme(config):
    config.add_tween("ticketing.tweens.request_tween_factory", under=INGRESS)
