"""Choose the payment gateway and email sender from the settings, once, at configuration time.

``ticketing.payments`` and ``ticketing.email`` name an implementation, either by a short name
known here or by the dotted path of a class from any installed package (a plugin). The chosen
class builds itself with ``from_settings(settings)`` and the instance is registered under its
interface; everything else looks it up by interface, e.g.
``request.registry.getUtility(IPaymentGateway)`` or ``request.payment_gateway``.
"""

from pyramid.exceptions import ConfigurationError
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from ticketing.interfaces import IEmailSender, IPaymentGateway

PAYMENT_GATEWAYS = {
    "mock": "ticketing.adapters.payments.MockPaymentGateway",
    "stripe": "ticketing.adapters.stripe_gateway.StripePaymentGateway",
}

EMAIL_SENDERS = {
    "mock": "ticketing.adapters.email.MockEmailSender",
    "console": "ticketing.adapters.email.ConsoleEmailSender",
    "smtp": "ticketing.adapters.smtp.SMTPEmailSender",
}


def build_adapter(config, interface, setting, known, default):
    settings = config.get_settings()
    choice = str(settings.get(setting, default)).strip()
    if not choice:
        raise ConfigurationError(
            f"{setting} is empty; name one of {', '.join(sorted(known))} or a dotted path"
        )
    try:
        factory = config.maybe_dotted(known.get(choice, choice))
    except ImportError as error:
        known_names = ", ".join(sorted(known))
        raise ConfigurationError(
            f"{setting} = {choice!r} is neither one of {known_names} nor an importable dotted "
            f"path ({error})"
        ) from error
    # A module (e.g. an installed SDK named like the short name) is no factory at all.
    if not isinstance(factory, type) or not interface.implementedBy(factory):
        raise ConfigurationError(f"{setting} = {choice!r} does not implement {interface.__name__}")
    try:
        adapter = factory.from_settings(settings)
    except ConfigurationError as error:
        # Say which choice needs the setting: "ticketing.payments = 'stripe': missing ...".
        raise ConfigurationError(f"{setting} = {choice!r}: {error}") from error
    try:
        verifyObject(interface, adapter)
    except Invalid as error:
        raise ConfigurationError(
            f"{setting} = {choice!r} does not implement {interface.__name__}: {error}"
        ) from error
    return adapter


def includeme(config):
    gateway = build_adapter(config, IPaymentGateway, "ticketing.payments", PAYMENT_GATEWAYS, "mock")
    sender = build_adapter(config, IEmailSender, "ticketing.email", EMAIL_SENDERS, "mock")
    config.registry.registerUtility(gateway, IPaymentGateway)
    config.registry.registerUtility(sender, IEmailSender)
    config.add_request_method(
        lambda request: request.registry.getUtility(IPaymentGateway), "payment_gateway", reify=True
    )
