"""``pshell development.ini``: the admin console.

The shell opens with a transaction begun on ``tm`` and a session ``dbsession`` joined to it. The
organiser operations it offers commit their own work at once (a refund cannot be taken back by an
abort); for anything else, ``tm.commit()`` keeps it and ``tm.abort()`` throws it away. pshell
lists every operation with its one-line description when it starts.
"""

import functools
import uuid

from ticketing import models
from ticketing.adapters import mock_webhooks
from ticketing.domain import (
    api_keys,
    checkins,
    events,
    holds,
    orders,
    outbox,
    tickets,
    waiting_list,
)
from ticketing.interfaces import IEmailSender, IPaymentGateway
from ticketing.models.types import utcnow
from ticketing.settings import hold_duration
from ticketing.views.serialize import key_json


def setup(env):
    request = env["request"]
    registry = env["registry"]
    tm = request.tm
    tm.begin()
    dbsession = request.dbsession
    gateway = registry.getUtility(IPaymentGateway)

    def committing(operation):
        @functools.wraps(operation)
        def run(*args, **kwargs):
            try:
                result = operation(*args, **kwargs)
            except Exception:
                tm.abort()
                tm.begin()
                raise
            tm.commit()
            tm.begin()
            return result

        return run

    @committing
    def publish_event(event_id):
        """Put a draft event on sale (commits)."""
        return events.publish_event(dbsession, uuid.UUID(str(event_id)), now=utcnow())

    @committing
    def cancel_order(order_id):
        """Cancel an order and refund it in full (commits)."""
        return orders.cancel_order(dbsession, gateway, uuid.UUID(str(order_id)), now=utcnow())

    @committing
    def resend_confirmation(order_id):
        """Send an order's confirmation email again (commits)."""
        return outbox.resend_email(dbsession, uuid.UUID(str(order_id)), now=utcnow())

    @committing
    def complete_past_events():
        """Run the daily completion job now; returns how many events it completed (commits)."""
        return events.complete_past_events(dbsession, tm, now=utcnow())

    @committing
    def settle_stale_orders():
        """Settle purchases a crash left pending (commits)."""
        return orders.settle_stale_pending_orders(
            dbsession, tm, gateway, now=utcnow(), ticket_codes=registry["ticket_codes"]
        )

    @committing
    def expire_holds():
        """Run the hold-expiry job now: holds past their time give their tickets back (commits)."""
        return holds.expire_holds(
            dbsession,
            tm,
            gateway,
            now=utcnow(),
            hold_for=hold_duration(registry.settings),
            ticket_codes=registry["ticket_codes"],
        )

    def complete_payment_action(order_id, succeed=True):
        """Mock gateway: the buyer finishes (or fails) 3-D Secure for an order awaiting it; the
        webhook Stripe would send is delivered, signed, through the app's webhook view. Returns
        the webhook's answer and the order's status."""
        order = orders.get_order(dbsession, uuid.UUID(str(order_id)))
        tm.abort()
        response = mock_webhooks.complete_payment_action(
            env["app"], gateway, order.payment_reference, succeed=succeed
        )
        tm.begin()
        status = orders.get_order(dbsession, order.id).status
        return response.json_body, str(status)

    def failed_emails():
        """Emails given up on after their last attempt: (order id, kind, last error)."""
        return [
            (str(email.order_id), str(email.kind), email.last_error)
            for email in outbox.failed_emails(dbsession)
        ]

    def sales_summary(event_id):
        """Tickets, orders and money of one event."""
        return orders.sales_summary(dbsession, uuid.UUID(str(event_id)))

    def waiting_list_of(event_id):
        """An event's waiting list in the order people joined: (entry id, email, quantity,
        status, place in line, the offer's order id)."""
        page = waiting_list.list_entries(dbsession, uuid.UUID(str(event_id)), limit=10_000)
        return [
            (str(shown.entry.id), shown.entry.email, shown.entry.quantity,
             str(shown.entry.status), shown.position,
             None if shown.entry.order_id is None else str(shown.entry.order_id))
            for shown in page.items
        ]  # fmt: skip

    @committing
    def match_waiting_lists():
        """Run the waiting list's sweep now, its matching too: what is set aside is offered to
        the people in line (a lost job's, or one queued while no worker runs); returns the
        offers made (commits)."""
        now = utcnow()
        stranded = set(waiting_list.types_to_match(dbsession, now=now))
        stranded |= dbsession.info.pop(waiting_list.MATCH_AFTER_COMMIT, set())
        return sum(
            len(waiting_list.match(
                dbsession, ticket_type_id, now=now, offer_for=registry["waitlist_offer_for"]
            ).offered)
            for ticket_type_id in sorted(stranded)
        )  # fmt: skip

    ticket_codes = registry["ticket_codes"]

    def order_tickets(order_id):
        """An order's tickets: (ticket id, type, attendee, status, code), to read one out to a
        buyer who lost the email."""
        return [
            (str(ticket.id), type_name, ticket.attendee_name, str(ticket.status),
             ticket_codes.code_of(ticket.id))
            for ticket, type_name in tickets.order_tickets(dbsession, uuid.UUID(str(order_id)))
        ]  # fmt: skip

    def check_in_stats(event_id):
        """Tickets sold and checked in, for the event and each of its ticket types."""
        return checkins.check_in_stats(dbsession, uuid.UUID(str(event_id)))

    @committing
    def undo_check_in(check_in_id):
        """Undo a mistaken scan: the ticket admits its attendee again (commits)."""
        checkins.undo_check_in(dbsession, uuid.UUID(str(check_in_id)), now=utcnow())

    @committing
    def issue_missing_tickets():
        """Issue the tickets of orders confirmed before tickets existed; returns how many
        orders got theirs (commits; initialize_ticketing_db does it too)."""
        return tickets.issue_missing_tickets(dbsession, ticket_codes, now=utcnow())

    @committing
    def create_key(name, scope, event_ids=None):
        """Make an API key (admin, read or checkin; checkin optionally for some event ids); its
        ``secret`` is shown this once (commits)."""
        ids = None if event_ids is None else [uuid.UUID(str(each)) for each in event_ids]
        key, secret = api_keys.create_key(
            dbsession, name=name, scope=scope, event_ids=ids, now=utcnow()
        )
        return key_json(key, secret)

    def list_keys():
        """Every API key, revoked ones too (never the keys themselves)."""
        return [key_json(key) for key in api_keys.list_keys(dbsession)]

    @committing
    def revoke_key(key_id):
        """Revoke an API key at once (commits)."""
        return key_json(api_keys.revoke_key(dbsession, uuid.UUID(str(key_id)), now=utcnow()))

    env.update(
        tm=tm,
        dbsession=dbsession,
        models=models,
        gateway=gateway,
        ticket_codes=ticket_codes,
        email_sender=registry.getUtility(IEmailSender),
        jobs=registry["jobs"],
        publish_event=publish_event,
        cancel_order=cancel_order,
        resend_confirmation=resend_confirmation,
        complete_past_events=complete_past_events,
        settle_stale_orders=settle_stale_orders,
        expire_holds=expire_holds,
        complete_payment_action=complete_payment_action,
        failed_emails=failed_emails,
        sales_summary=sales_summary,
        waiting_list=waiting_list_of,
        match_waiting_lists=match_waiting_lists,
        order_tickets=order_tickets,
        check_in_stats=check_in_stats,
        undo_check_in=undo_check_in,
        issue_missing_tickets=issue_missing_tickets,
        create_key=create_key,
        list_keys=list_keys,
        revoke_key=revoke_key,
    )
    try:
        yield
    finally:
        tm.abort()
