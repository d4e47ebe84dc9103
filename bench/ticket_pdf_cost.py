"""CPU of the tickets' PDF, as a confirmation email attaches it (`make bench` prints it):

    .venv/bin/python bench/ticket_pdf_cost.py [--repeat 200] [--json]

ms of CPU (this process's user + system time) for an order of one ticket, and for each further
ticket (the slope between 1 and 10 tickets), with every piece of the page as production fills
it: names, venue, date, the code and its QR code. Targets: at most 5 ms for one ticket and 1 ms
for each further one.
"""

import argparse
import datetime as dt
import json
import sys
import time
import types
import uuid

from ticketing.domain.tickets import TicketCodes
from ticketing.ticket_pdf import PrintedTicket, tickets_pdf

ONE_TICKET_MS = 5.0
FURTHER_TICKET_MS = 1.0


def sample_event():
    return types.SimpleNamespace(
        name="Summer Festival",
        venue="Riverside Park",
        date=dt.datetime(2027, 7, 14, 20, 0, tzinfo=dt.UTC),
    )


def sample_tickets(count):
    codes = TicketCodes("bench-only-ticket-secret")
    order_id = str(uuid.uuid4())
    tickets = []
    for _ in range(count):
        ticket_id = uuid.uuid4()
        tickets.append(
            PrintedTicket(
                ticket_id=str(ticket_id),
                order_id=order_id,
                ticket_type="General admission",
                attendee_name="Zoë Brontë",
                attendee_email="zoe@example.com",
                code=codes.code_of(ticket_id),
            )
        )
    return tickets


def cpu_ms(count, repeat):
    """ms of CPU per PDF of ``count`` tickets (new tickets each time: new codes to encode)."""
    event = sample_event()
    batches = [sample_tickets(count) for _ in range(repeat)]
    tickets_pdf(event, batches[0])  # imports and font metrics, once per process
    started = time.process_time()
    for tickets in batches:
        tickets_pdf(event, tickets)
    return (time.process_time() - started) * 1000 / repeat


def measure(repeat=200):
    one = cpu_ms(1, repeat)
    ten = cpu_ms(10, max(repeat // 5, 10))
    further = (ten - one) / 9
    return {
        "one_ticket_ms": round(one, 2),
        "ten_tickets_ms": round(ten, 2),
        "further_ticket_ms": round(further, 2),
        "targets_met": one <= ONE_TICKET_MS and further <= FURTHER_TICKET_MS,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures = measure(args.repeat)
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"tickets' PDF: {figures['one_ticket_ms']:.2f} ms of CPU for one ticket "
            f"(target <= {ONE_TICKET_MS:g}), {figures['further_ticket_ms']:.2f} ms for each "
            f"further one (target <= {FURTHER_TICKET_MS:g}): "
            + ("met" if figures["targets_met"] else "NOT met")
        )
    return 0 if figures["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
