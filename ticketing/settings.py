"""Settings that come from the process environment rather than the ini file.

The ini files are the configuration; only secrets and host-specific values are read from the
environment, and an environment variable, when set, wins over the ini file in every entry point
(the app, ``initialize_ticketing_db``, ``pshell``, the worker), because they all go through
``ticketing.main``.
"""

import datetime as dt
import os

from pyramid.exceptions import ConfigurationError
from pyramid.settings import asbool

#: environment variable -> setting it overrides
ENVIRONMENT_SETTINGS = {
    "DATABASE_URL": "sqlalchemy.url",
    "TICKETING_API_KEYS": "ticketing.api_keys",
    "TICKETING_TICKET_SECRET": "ticketing.ticket_secret",
    "RATELIMIT_STORAGE_URL": "ratelimit.storage_url",
    "HUEY_URL": "huey.url",
    # Read when ticketing.payments = stripe
    "STRIPE_SECRET_KEY": "stripe.api_key",
    "STRIPE_WEBHOOK_SECRET": "stripe.webhook_secret",
    # Read when ticketing.email = smtp
    "MAIL_HOST": "mail.host",
    "MAIL_PORT": "mail.port",
    "MAIL_USERNAME": "mail.username",
    "MAIL_PASSWORD": "mail.password",
    "MAIL_DEFAULT_SENDER": "mail.default_sender",
}


def apply_environment(settings, environ=os.environ):
    for variable, key in ENVIRONMENT_SETTINGS.items():
        value = environ.get(variable)
        if value:
            settings[key] = value
    return settings


def require(settings, key, hint=""):
    """Return a non-empty setting or fail at startup, naming what is missing."""
    value = settings.get(key)
    if value is None or str(value).strip() == "":
        raise ConfigurationError(f"missing setting {key!r}{hint}")
    return value


def as_int(settings, key, default):
    return _converted(settings, key, default, int, "an integer")


def as_float(settings, key, default):
    """A number setting (a timeout, say)."""
    return _converted(settings, key, default, float, "a number")


def _converted(settings, key, default, convert, kind):
    value = settings.get(key, default)
    try:
        return convert(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"setting {key!r} must be {kind}, got {value!r}") from None


def hold_duration(settings):
    """``ticketing.hold_minutes`` (default 15): how long a hold keeps its tickets."""
    minutes = as_int(settings, "ticketing.hold_minutes", 15)
    if minutes < 1:
        raise ConfigurationError("setting 'ticketing.hold_minutes' must be 1 or more")
    return dt.timedelta(minutes=minutes)


def waitlist_offer_duration(settings):
    """``ticketing.waitlist_offer_hours`` (default 24): how long a waiting list's offer (a hold)
    keeps its tickets for the person it is made to."""
    hours = as_float(settings, "ticketing.waitlist_offer_hours", 24)
    if hours <= 0:
        raise ConfigurationError("setting 'ticketing.waitlist_offer_hours' must be above 0")
    return dt.timedelta(hours=hours)


def as_bool(settings, key, default):
    return asbool(settings.get(key, default))


def includeme(config):
    apply_environment(config.registry.settings)
