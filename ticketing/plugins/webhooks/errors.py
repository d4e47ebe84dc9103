"""The webhooks plugin's refusals, as domain errors (the core maps their kinds to statuses)."""

from ticketing.domain.errors import BadRequest, Conflict, NotFound


class WebhookNotFound(NotFound):
    code = "webhook_not_found"
    title = "Webhook not found"


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"
    title = "Webhook delivery not found"


class TargetRefused(BadRequest):
    """The URL is not one deliveries may go to: not https (in production), or its host resolves
    to a loopback, private, link-local or metadata address, or not at all."""

    code = "webhook_url_refused"
    title = "Deliveries cannot go to this URL"


class WebhookDisabled(Conflict):
    code = "webhook_disabled"
    title = "The webhook is disabled; enable it first"
