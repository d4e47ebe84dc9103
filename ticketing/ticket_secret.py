"""The server's ticket secret (``ticketing.ticket_secret``; production reads it from
``TICKETING_TICKET_SECRET``), which every ticket's code is derived from. Startup fails without
it: a secret made up per process would give every process, and every restart, other codes."""

from ticketing.domain.tickets import TicketCodes
from ticketing.settings import require


def includeme(config):
    secret = require(
        config.get_settings(),
        "ticketing.ticket_secret",
        " (set the TICKETING_TICKET_SECRET environment variable)",
    )
    codes = TicketCodes(secret)
    config.registry["ticket_codes"] = codes
    config.add_request_method(lambda request: codes, "ticket_codes", reify=True)
