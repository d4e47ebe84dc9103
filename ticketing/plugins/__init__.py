"""Plugins: the packages named in ``ticketing.includes`` (dotted names, whitespace-separated),
each included with ``config.include`` after the app's own parts, so that its ``includeme`` can
subscribe to the domain events (``ticketing.events``), add routes and Cornice services, register
adapters under the interfaces of ``ticketing.interfaces`` and add jobs to ``registry["jobs"]``.
``ticketing.plugins.webhooks`` is one, built on nothing but that."""

from pyramid.settings import aslist


def includeme(config):
    for name in aslist(config.get_settings().get("ticketing.includes", "")):
        config.include(name)
