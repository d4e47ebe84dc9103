"""production.ini selects Stripe and SMTP, whose secrets come from the environment; without them
it refuses to start, naming the missing setting. development.ini keeps the mock and the console."""

from pathlib import Path

import pytest
from pyramid.exceptions import ConfigurationError
from pyramid.paster import get_appsettings

from ticketing import main
from ticketing.adapters.email import ConsoleEmailSender
from ticketing.adapters.payments import MockPaymentGateway
from ticketing.adapters.smtp import SMTPEmailSender
from ticketing.adapters.stripe_gateway import StripePaymentGateway
from ticketing.interfaces import IEmailSender, IPaymentGateway
from ticketing.settings import ENVIRONMENT_SETTINGS, apply_environment

REPO = Path(__file__).resolve().parent.parent

ADAPTER_VARIABLES = {
    "STRIPE_SECRET_KEY": "stripe.api_key",
    "STRIPE_WEBHOOK_SECRET": "stripe.webhook_secret",
    "MAIL_HOST": "mail.host",
    "MAIL_PORT": "mail.port",
    "MAIL_USERNAME": "mail.username",
    "MAIL_PASSWORD": "mail.password",
    "MAIL_DEFAULT_SENDER": "mail.default_sender",
}


@pytest.fixture
def environment(monkeypatch, tmp_path):
    """A production environment with a database (a local SQLite file, never connected to) and
    organiser keys, and none of the adapters' variables: each test sets those it needs."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'production.sqlite'}")
    monkeypatch.setenv("TICKETING_API_KEYS", "organiser-key-1")
    monkeypatch.setenv("TICKETING_TICKET_SECRET", "production-ticket-secret")
    for variable in ADAPTER_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def production_settings():
    return dict(get_appsettings(str(REPO / "production.ini")))


def start(settings):
    app = main({}, **settings)
    app.registry["dbengine"].dispose()
    return app


def test_the_adapters_variables_are_read_from_the_environment():
    for variable, key in ADAPTER_VARIABLES.items():
        assert ENVIRONMENT_SETTINGS[variable] == key
        assert apply_environment({key: "from-ini"}, {variable: "from-env"}) == {key: "from-env"}
        # Unset or empty, the ini stands.
        assert apply_environment({key: "from-ini"}, {variable: ""}) == {key: "from-ini"}


def test_production_selects_stripe_and_smtp():
    settings = production_settings()
    assert settings["ticketing.payments"] == "stripe"
    assert settings["ticketing.email"] == "smtp"
    # The secrets are never in the file.
    assert "stripe.api_key" not in settings
    assert "stripe.webhook_secret" not in settings
    assert "mail.password" not in settings


def test_production_without_stripe_secret_key_refuses_to_start(environment):
    environment.setenv("MAIL_HOST", "smtp.example.test")
    environment.setenv("MAIL_DEFAULT_SENDER", "tickets@example.test")
    with pytest.raises(ConfigurationError) as raised:
        start(production_settings())
    assert "stripe.api_key" in str(raised.value)
    assert "STRIPE_SECRET_KEY" in str(raised.value)


def test_production_with_an_empty_stripe_secret_key_refuses_to_start(environment):
    environment.setenv("STRIPE_SECRET_KEY", "")
    with pytest.raises(ConfigurationError) as raised:
        start(production_settings())
    assert "stripe.api_key" in str(raised.value)


def test_production_without_stripe_webhook_secret_refuses_to_start(environment):
    environment.setenv("STRIPE_SECRET_KEY", "sk_live_from_env")
    environment.setenv("MAIL_HOST", "smtp.example.test")
    environment.setenv("MAIL_DEFAULT_SENDER", "tickets@example.test")
    with pytest.raises(ConfigurationError) as raised:
        start(production_settings())
    assert "stripe.webhook_secret" in str(raised.value)
    assert "STRIPE_WEBHOOK_SECRET" in str(raised.value)


def test_production_without_mail_host_refuses_to_start(environment):
    environment.setenv("STRIPE_SECRET_KEY", "sk_live_from_env")
    environment.setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_env")
    environment.setenv("MAIL_DEFAULT_SENDER", "tickets@example.test")
    with pytest.raises(ConfigurationError) as raised:
        start(production_settings())
    assert "mail.host" in str(raised.value)
    assert "MAIL_HOST" in str(raised.value)
    assert "sk_live_from_env" not in str(raised.value)


def test_production_without_a_sender_address_refuses_to_start(environment):
    environment.setenv("STRIPE_SECRET_KEY", "sk_live_from_env")
    environment.setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_env")
    environment.setenv("MAIL_HOST", "smtp.example.test")
    with pytest.raises(ConfigurationError) as raised:
        start(production_settings())
    assert "mail.default_sender" in str(raised.value)
    assert "MAIL_DEFAULT_SENDER" in str(raised.value)


def test_the_database_is_still_checked_first(environment):
    environment.delenv("DATABASE_URL")
    with pytest.raises(ConfigurationError) as raised:
        start(production_settings())
    assert "DATABASE_URL" in str(raised.value)
    assert "stripe" not in str(raised.value)


def test_production_starts_with_its_secrets_in_the_environment(environment):
    environment.setenv("STRIPE_SECRET_KEY", "sk_live_from_env")
    environment.setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_env")
    environment.setenv("MAIL_HOST", "smtp.example.test")
    environment.setenv("MAIL_PORT", "2525")
    environment.setenv("MAIL_USERNAME", "app")
    environment.setenv("MAIL_PASSWORD", "s3cret")
    environment.setenv("MAIL_DEFAULT_SENDER", "Tickets <tickets@example.test>")

    app = start(production_settings())

    gateway = app.registry.getUtility(IPaymentGateway)
    assert type(gateway) is StripePaymentGateway
    assert gateway.api_base == "https://api.stripe.com"
    assert (gateway.timeout_seconds, gateway.max_network_retries) == (10.0, 2)
    assert app.registry.settings["stripe.api_key"] == "sk_live_from_env"
    sender = app.registry.getUtility(IEmailSender)
    assert type(sender) is SMTPEmailSender
    assert (sender.host, sender.port, sender.username) == ("smtp.example.test", 2525, "app")
    assert (sender.tls, sender.ssl, sender.timeout_seconds) == (True, False, 10.0)
    assert sender.default_sender == "Tickets <tickets@example.test>"


def test_development_keeps_the_mock_gateway_and_the_console(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    # Even with production's secrets around, development.ini does not use them.
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_from_env")
    app = start(dict(get_appsettings(str(REPO / "development.ini"))))
    assert type(app.registry.getUtility(IPaymentGateway)) is MockPaymentGateway
    assert type(app.registry.getUtility(IEmailSender)) is ConsoleEmailSender
