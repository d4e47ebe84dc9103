"""A tiny plugin, as a third party would write one on the plugin API (``ticketing.events``):
it refuses events named "Forbidden ..." from going on sale, purchases by buyers of
``blocked.test``, and confirmations for a buyer named "Refuse At Confirmation"; it keeps every
event it heard after commit in ``registry["gatekeeper.heard"]``; and it breaks, after commit,
on changes to events named "Flaky ...", which must neither fail those requests nor keep its
other subscribers from hearing them."""

from ticketing.events import (
    AfterCommit,
    ChangeRefused,
    EventChanged,
    EventPublished,
    OrderConfirmed,
    OrderReserved,
)


def refuse_forbidden_events(event):
    if event.data["name"].startswith("Forbidden"):
        raise ChangeRefused("The gatekeeper keeps forbidden events off sale.")


def refuse_blocked_buyers(event):
    if event.data["customer_email"].endswith("@blocked.test"):
        raise ChangeRefused("The gatekeeper refuses buyers of blocked.test.")


def refuse_some_confirmations(event):
    if event.data["customer_name"] == "Refuse At Confirmation":
        raise ChangeRefused("The gatekeeper refuses this confirmation.")


def includeme(config):
    heard = config.registry["gatekeeper.heard"] = []

    def hear(committed):
        heard.append((committed.event.type, committed.event.data["id"]))

    def break_on_flaky(committed):
        if committed.event.data["name"].startswith("Flaky"):
            raise RuntimeError("the gatekeeper's after-commit subscriber broke")

    config.add_subscriber(refuse_forbidden_events, EventPublished)
    config.add_subscriber(refuse_blocked_buyers, OrderReserved)
    config.add_subscriber(refuse_some_confirmations, OrderConfirmed)
    # Before the one that hears: its failure must not keep the others from hearing.
    config.add_subscriber(break_on_flaky, AfterCommit, domain_event=EventChanged)
    config.add_subscriber(hear, AfterCommit)
