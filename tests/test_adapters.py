"""Adapters: every implementation honours its interface, the settings choose one by short name or
by dotted path, each app gets instances of its own, and the mocks fail and lag as told."""

import importlib
import inspect
import logging
import pkgutil
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from pyramid.exceptions import ConfigurationError
from pyramid.paster import get_app, get_appsettings
from pyramid.scripting import prepare
from zope.interface.verify import verifyClass, verifyObject

import ticketing.adapters
from ticketing import main
from ticketing.adapters import EMAIL_SENDERS, PAYMENT_GATEWAYS
from ticketing.adapters.email import ConsoleEmailSender, MockEmailSender
from ticketing.adapters.payments import Charge, MockPaymentGateway
from ticketing.domain.errors import EmailDeliveryError, PaymentDeclined, PaymentUnavailable
from ticketing.interfaces import IEmailSender, IPaymentGateway

from .live_server import ini_for_tests
from .plugin_adapters import RecordingEmailSender

REPO = Path(__file__).resolve().parent.parent
INTERFACES = (IPaymentGateway, IEmailSender)

#: what an implementation needs before it can be built at all (the real ones fail fast without)
REQUIRED_SETTINGS = {
    "stripe": {"stripe.api_key": "sk_test_x", "stripe.webhook_secret": "whsec_x"},
    "smtp": {"mail.host": "smtp.example.test", "mail.default_sender": "tickets@example.test"},
}


@pytest.fixture(autouse=True)
def no_database_url(monkeypatch):
    # These apps never connect; the ini's URL (or the one given here) is the one in use.
    monkeypatch.delenv("DATABASE_URL", raising=False)


@pytest.fixture
def build_app(tmp_path):
    """Build apps that never touch a database: the engine connects lazily."""
    built = []

    def build(**overrides):
        settings = {
            "sqlalchemy.url": f"sqlite:///{tmp_path / 'unused.sqlite'}",
            "ticketing.payments": "mock",
            "ticketing.email": "mock",
            "ticketing.require_api_key": "false",
            "ticketing.ticket_secret": "test-ticket-secret",
        }
        settings.update(overrides)
        app = main({}, **settings)
        built.append(app)
        return app

    yield build
    for app in built:
        app.registry["dbengine"].dispose()


def message(to="buyer@example.test"):
    msg = EmailMessage()
    msg["From"] = "tickets@example.test"
    msg["To"] = to
    msg["Subject"] = "Your tickets"
    msg.set_content("Two tickets for the Concert.")
    return msg


# --- every implementation against its interface ---------------------------------------------------


def adapter_classes():
    """(interface, class) for every class in ticketing.adapters that declares an interface."""
    found = []
    package = ticketing.adapters
    modules = [package] + [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    ]
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            for interface in INTERFACES:
                if interface.implementedBy(cls):
                    found.append((interface, cls))
    return found


ADAPTER_CLASSES = adapter_classes()


def test_the_known_implementations_are_found():
    assert {(IPaymentGateway, MockPaymentGateway), (IEmailSender, MockEmailSender)} <= set(
        ADAPTER_CLASSES
    )
    assert (IEmailSender, ConsoleEmailSender) in ADAPTER_CLASSES


@pytest.mark.parametrize(
    ("interface", "cls"), ADAPTER_CLASSES, ids=[cls.__name__ for _, cls in ADAPTER_CLASSES]
)
def test_every_implementation_verifies_against_its_interface(interface, cls):
    assert verifyClass(interface, cls)
    instance = cls.from_settings(REQUIRED_SETTINGS.get(cls.name, {}))
    assert verifyObject(interface, instance)
    assert isinstance(instance.name, str) and instance.name


@pytest.mark.parametrize(
    ("interface", "known"), [(IPaymentGateway, PAYMENT_GATEWAYS), (IEmailSender, EMAIL_SENDERS)]
)
def test_every_short_name_names_an_implementation(interface, known):
    for short_name, dotted in known.items():
        module_name, _, class_name = dotted.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        assert (interface, cls) in ADAPTER_CLASSES
        assert cls.from_settings(REQUIRED_SETTINGS.get(short_name, {})).name == short_name


# --- choosing adapters from the settings ----------------------------------------------------------


def test_the_registry_holds_the_mocks_named_in_the_settings(build_app):
    app = build_app()
    gateway = app.registry.getUtility(IPaymentGateway)
    sender = app.registry.getUtility(IEmailSender)
    assert type(gateway) is MockPaymentGateway
    assert type(sender) is MockEmailSender
    assert (gateway.failure_mode, gateway.refund_failure_mode, gateway.latency_ms) == (
        None,
        None,
        0,
    )


def test_the_console_sender_is_chosen_by_name(build_app):
    app = build_app(**{"ticketing.email": "console"})
    assert type(app.registry.getUtility(IEmailSender)) is ConsoleEmailSender


def test_adapters_default_to_the_mocks(build_app, tmp_path):
    app = main(
        {},
        **{
            "sqlalchemy.url": f"sqlite:///{tmp_path / 'unused.sqlite'}",
            "ticketing.require_api_key": "false",
            "ticketing.ticket_secret": "test-ticket-secret",
        },
    )
    try:
        assert type(app.registry.getUtility(IPaymentGateway)) is MockPaymentGateway
        assert type(app.registry.getUtility(IEmailSender)) is MockEmailSender
    finally:
        app.registry["dbengine"].dispose()


def test_a_plugin_class_is_chosen_by_dotted_path(build_app):
    app = build_app(
        **{
            "ticketing.email": "tests.plugin_adapters.RecordingEmailSender",
            "recording.sender": "box@example.test",
        }
    )
    sender = app.registry.getUtility(IEmailSender)
    assert type(sender) is RecordingEmailSender
    assert sender.sender_address == "box@example.test"
    sent = message()
    sender.send(sent)
    assert sender.sent == [sent]


def test_the_gateway_is_reached_through_the_request(build_app):
    app = build_app()
    env = prepare(registry=app.registry)
    try:
        assert env["request"].payment_gateway is app.registry.getUtility(IPaymentGateway)
    finally:
        env["closer"]()


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("ticketing.payments", "no_such_gateway"),
        ("ticketing.payments", "ticketing.adapters.payments.NoSuchGateway"),
        ("ticketing.email", "sendgrid"),
        ("ticketing.email", "tests.plugin_adapters.NoSuchSender"),
    ],
)
def test_an_unknown_adapter_name_fails_at_startup(build_app, setting, value):
    with pytest.raises(ConfigurationError) as raised:
        build_app(**{setting: value})
    assert setting in str(raised.value)
    assert value in str(raised.value)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        # Implements the other interface.
        ("ticketing.payments", "ticketing.adapters.email.MockEmailSender"),
        ("ticketing.email", "ticketing.adapters.payments.MockPaymentGateway"),
        # Has the methods but does not declare the interface.
        ("ticketing.email", "tests.plugin_adapters.UndeclaredEmailSender"),
        # Declares the interface but does not provide it.
        ("ticketing.email", "tests.plugin_adapters.IncompleteEmailSender"),
        # Not a class at all: a function, and a module.
        ("ticketing.payments", "ticketing.settings.require"),
        ("ticketing.payments", "ticketing.adapters.payments"),
    ],
)
def test_a_class_that_does_not_implement_the_interface_fails_at_startup(build_app, setting, value):
    with pytest.raises(ConfigurationError) as raised:
        build_app(**{setting: value})
    assert setting in str(raised.value)
    interface = IPaymentGateway if setting == "ticketing.payments" else IEmailSender
    assert interface.__name__ in str(raised.value)


@pytest.mark.parametrize("setting", ["ticketing.payments", "ticketing.email"])
def test_an_empty_adapter_setting_fails_at_startup(build_app, setting):
    with pytest.raises(ConfigurationError) as raised:
        build_app(**{setting: "  "})
    assert setting in str(raised.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"payments.mock.failure_mode": "lost_in_the_post"},
        {"payments.mock.refund_failure_mode": "lost_in_the_post"},
        {"payments.mock.latency_ms": "soon"},
        {"email.mock.failure_mode": "lost_in_the_post"},
        {"email.mock.latency_ms": "soon"},
    ],
)
def test_bad_mock_settings_fail_at_startup(build_app, overrides):
    with pytest.raises(ConfigurationError):
        build_app(**overrides)


def test_two_apps_from_the_same_settings_share_no_adapter_state(build_app):
    first, second = build_app(), build_app()
    first_gateway = first.registry.getUtility(IPaymentGateway)
    second_gateway = second.registry.getUtility(IPaymentGateway)
    assert first_gateway is not second_gateway
    assert first.registry.getUtility(IEmailSender) is not second.registry.getUtility(IEmailSender)

    first_charge = first_gateway.charge(5000, "USD", "key-1", "Concert", {})
    first.registry.getUtility(IEmailSender).send(message())
    first_gateway.configure(failure_mode="card_declined")

    assert second_gateway.charges == {}
    assert second_gateway.failure_mode is None
    assert second.registry.getUtility(IEmailSender).outbox == []
    # The same key on the other app is a charge of its own: no replay of the first app's.
    second_charge = second_gateway.charge(5000, "USD", "key-1", "Concert", {})
    assert second_charge.id != first_charge.id
    assert list(second_gateway.charges) == ["key-1"]


# --- settings from an ini file reach the instances ------------------------------------------------


def test_mock_settings_in_an_ini_reach_the_instances(tmp_path):
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[app:main]\n"
        "use = egg:ticketing\n"
        "sqlalchemy.url = sqlite:///%(here)s/app.sqlite\n"
        "ticketing.require_api_key = false\n"
        "ticketing.ticket_secret = test-ticket-secret\n"
        "ticketing.payments = mock\n"
        "payments.mock.failure_mode = timeout_after_charge\n"
        "payments.mock.refund_failure_mode = server_error\n"
        "payments.mock.latency_ms = 30\n"
        "ticketing.email = mock\n"
        "email.mock.failure_mode = timeout\n"
        "email.mock.latency_ms = 7\n"
    )
    app = get_app(str(ini))
    try:
        gateway = app.registry.getUtility(IPaymentGateway)
        assert type(gateway) is MockPaymentGateway
        assert gateway.failure_mode == "timeout_after_charge"
        assert gateway.refund_failure_mode == "server_error"
        assert gateway.latency_ms == 30
        sender = app.registry.getUtility(IEmailSender)
        assert (sender.failure_mode, sender.latency_ms) == ("timeout", 7)

        # ...and the instance behaves as configured.
        started = time.perf_counter()
        with pytest.raises(PaymentUnavailable):
            gateway.charge(5000, "USD", "key-1", "Concert", {})
        assert time.perf_counter() - started >= 0.030
        assert gateway.find_charge("key-1") is not None
        with pytest.raises(EmailDeliveryError):
            sender.send(message())
    finally:
        app.registry["dbengine"].dispose()
    assert not (tmp_path / "app.sqlite").exists()


def test_a_plugin_named_in_an_ini_is_used(tmp_path):
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[app:main]\n"
        "use = egg:ticketing\n"
        "sqlalchemy.url = sqlite:///%(here)s/app.sqlite\n"
        "ticketing.require_api_key = false\n"
        "ticketing.ticket_secret = test-ticket-secret\n"
        "ticketing.email = tests.plugin_adapters.RecordingEmailSender\n"
        "recording.sender = ini@example.test\n"
    )
    app = get_app(str(ini))
    try:
        sender = app.registry.getUtility(IEmailSender)
        assert type(sender) is RecordingEmailSender
        assert sender.sender_address == "ini@example.test"
    finally:
        app.registry["dbengine"].dispose()


def test_development_ini_builds_a_quiet_mock_gateway_and_the_console_sender():
    settings = get_appsettings(str(REPO / "development.ini"))
    app = main({}, **settings)
    try:
        gateway = app.registry.getUtility(IPaymentGateway)
        assert type(gateway) is MockPaymentGateway
        # The ini's empty "payments.mock.failure_mode =" means no failure.
        assert (gateway.failure_mode, gateway.latency_ms) == (None, 0)
        assert type(app.registry.getUtility(IEmailSender)) is ConsoleEmailSender
    finally:
        app.registry["dbengine"].dispose()


def test_development_ini_keeps_one_ledger_for_the_server_the_worker_and_restarts(tmp_path):
    # The server, the worker (which settles stale orders from the gateway's books) and the next
    # start of either each build their own gateway from development.ini: one ledger for all.
    settings = get_appsettings(str(ini_for_tests(tmp_path, "development.ini")))
    server, worker = main({}, **settings), main({}, **settings)
    try:
        made = server.registry.getUtility(IPaymentGateway).charge(5000, "USD", "k", "Concert", {})
        worker_gateway = worker.registry.getUtility(IPaymentGateway)
        assert worker_gateway.shared
        assert worker_gateway.find_charge("k") == made
        worker_gateway.refund(made.id, "refund-k")
        assert server.registry.getUtility(IPaymentGateway).kept_charges() == []
    finally:
        for app in (server, worker):
            app.registry.getUtility(IPaymentGateway).dispose()
            app.registry["dbengine"].dispose()


# --- the mock payment gateway ---------------------------------------------------------------------


@pytest.fixture
def gateway():
    # A bare instance: what the registry holds is covered above.
    return MockPaymentGateway()


def charge(gateway, key="key-1", amount=5000):
    return gateway.charge(amount, "USD", key, "2 tickets for Concert", {"order_id": "o-1"})


def test_a_charge_is_kept_in_the_ledger(gateway):
    made = charge(gateway)
    assert isinstance(made, Charge)
    assert (made.amount_cents, made.currency, made.idempotency_key) == (5000, "USD", "key-1")
    assert made.metadata == {"order_id": "o-1"}
    assert not made.refunded
    assert gateway.charges == {"key-1": made}
    assert gateway.kept_charges() == [made]
    assert gateway.find_charge("key-1") is made
    assert gateway.find_charge("key-2") is None


def test_the_same_key_gives_the_same_charge(gateway):
    first = charge(gateway)
    second = charge(gateway)
    assert second is first
    assert len(gateway.charges) == 1
    assert gateway.kept_charges() == [first]
    other = charge(gateway, key="key-2")
    assert other.id != first.id
    assert len(gateway.kept_charges()) == 2


def test_a_key_reused_with_another_amount_is_refused(gateway):
    first = charge(gateway)
    with pytest.raises(PaymentUnavailable):
        charge(gateway, amount=9999)
    assert gateway.kept_charges() == [first]
    assert first.amount_cents == 5000


def test_card_declined_raises_payment_declined_and_takes_nothing(gateway):
    gateway.configure(failure_mode="card_declined")
    with pytest.raises(PaymentDeclined) as raised:
        charge(gateway)
    assert raised.value.code == "payment_declined"
    assert raised.value.extra.get("decline_code")
    assert gateway.charges == {}
    assert gateway.kept_charges() == []
    assert gateway.find_charge("key-1") is None


@pytest.mark.parametrize("mode", ["timeout", "server_error"])
def test_unavailable_before_charging_takes_nothing(gateway, mode):
    gateway.configure(failure_mode=mode)
    with pytest.raises(PaymentUnavailable) as raised:
        charge(gateway)
    assert raised.value.code == "payment_unavailable"
    assert gateway.charges == {}
    assert gateway.kept_charges() == []
    assert gateway.find_charge("key-1") is None

    # Retrying with the same key once the gateway is back charges once.
    gateway.configure()
    made = charge(gateway)
    assert gateway.kept_charges() == [made]


def test_timeout_after_charge_raises_but_keeps_the_money(gateway):
    gateway.configure(failure_mode="timeout_after_charge")
    with pytest.raises(PaymentUnavailable):
        charge(gateway)
    kept = gateway.find_charge("key-1")
    assert kept is not None
    assert kept.amount_cents == 5000
    assert gateway.kept_charges() == [kept]

    # A retry with the same key, once answers arrive again, finds the same charge.
    gateway.configure()
    assert charge(gateway) is kept
    assert len(gateway.charges) == 1


def test_a_refund_with_the_same_key_is_made_once(gateway):
    made = charge(gateway)
    first = gateway.refund(made.id, "refund-1")
    second = gateway.refund(made.id, "refund-1")
    assert first == second
    assert made.refunded and made.refund_id == first
    assert gateway.refunds == {"refund-1": first}
    assert gateway.kept_charges() == []
    # Another key cannot refund the same charge twice.
    with pytest.raises(PaymentUnavailable):
        gateway.refund(made.id, "refund-2")
    assert gateway.refunds == {"refund-1": first}


def test_a_refund_of_an_unknown_charge_is_refused(gateway):
    with pytest.raises(PaymentUnavailable):
        gateway.refund("ch_nothing", "refund-1")
    assert gateway.refunds == {}


@pytest.mark.parametrize("mode", ["timeout", "server_error"])
def test_a_refund_that_fails_before_the_gateway_acts_refunds_nothing(gateway, mode):
    made = charge(gateway)
    gateway.configure(refund_failure_mode=mode)
    with pytest.raises(PaymentUnavailable):
        gateway.refund(made.id, "refund-1")
    assert not made.refunded
    assert gateway.kept_charges() == [made]
    gateway.configure()
    assert gateway.refund(made.id, "refund-1") == made.refund_id


def test_a_refund_that_times_out_after_acting_is_found_by_its_key(gateway):
    made = charge(gateway)
    gateway.configure(refund_failure_mode="timeout_after_charge")
    with pytest.raises(PaymentUnavailable):
        gateway.refund(made.id, "refund-1")
    assert made.refunded
    gateway.configure()
    assert gateway.refund(made.id, "refund-1") == made.refund_id
    assert len(gateway.refunds) == 1


def test_an_unknown_failure_mode_is_a_configuration_error(gateway):
    with pytest.raises(ConfigurationError):
        gateway.configure(failure_mode="lost_in_the_post")
    with pytest.raises(ConfigurationError):
        MockPaymentGateway(refund_failure_mode="lost_in_the_post")


@pytest.mark.parametrize("operation", ["charge", "refund", "find_charge"])
def test_latency_delays_every_call(operation):
    gateway = MockPaymentGateway()
    made = charge(gateway)
    gateway.configure(latency_ms=40)
    calls = {
        "charge": lambda: charge(gateway, key="key-2"),
        "refund": lambda: gateway.refund(made.id, "refund-1"),
        "find_charge": lambda: gateway.find_charge("key-1"),
    }
    started = time.perf_counter()
    calls[operation]()
    elapsed = time.perf_counter() - started
    assert elapsed >= 0.040
    assert elapsed < 10  # generous: only proves the call came back


def test_no_latency_by_default():
    gateway = MockPaymentGateway()
    assert gateway.latency_ms == 0


def test_calls_are_recorded(gateway):
    made = charge(gateway)
    gateway.find_charge("key-1")
    gateway.refund(made.id, "refund-1")
    assert [call[0] for call in gateway.calls] == ["charge", "find_charge", "refund"]


def test_only_the_latest_calls_are_kept():
    # A development server or a benchmark's lives for days on the mock.
    gateway = MockPaymentGateway(kept_calls=3)
    for number in range(5):
        gateway.find_charge(f"key-{number}")
    assert gateway.calls == [("find_charge", f"key-{number}", None) for number in (2, 3, 4)]


# --- the email senders ----------------------------------------------------------------------------


def test_the_mock_sender_keeps_messages_in_its_outbox():
    sender = MockEmailSender()
    sent = message()
    sender.send(sent)
    assert sender.outbox == [sent]


@pytest.mark.parametrize("mode", ["server_error", "timeout"])
def test_the_mock_sender_fails_as_told(mode):
    sender = MockEmailSender(failure_mode=mode)
    with pytest.raises(EmailDeliveryError) as raised:
        sender.send(message())
    assert raised.value.code == "email_delivery_failed"
    assert sender.outbox == []


def test_the_mock_sender_refuses_an_unknown_failure_mode():
    with pytest.raises(ConfigurationError):
        MockEmailSender(failure_mode="lost_in_the_post")


def test_the_mock_sender_waits_as_told():
    sender = MockEmailSender(latency_ms=40)
    started = time.perf_counter()
    sender.send(message())
    elapsed = time.perf_counter() - started
    assert elapsed >= 0.040
    assert elapsed < 10
    assert len(sender.outbox) == 1


def test_the_console_sender_logs_the_message(caplog):
    sender = ConsoleEmailSender()
    with caplog.at_level(logging.INFO, logger="ticketing.adapters.email"):
        sender.send(message(to="buyer@example.test"))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "buyer@example.test" in logged
    assert "Your tickets" in logged
    assert "Two tickets for the Concert." in logged


def test_the_console_sender_logs_a_multipart_message(caplog):
    msg = message()
    msg.add_alternative("<p>Two tickets for the Concert.</p>", subtype="html")
    with caplog.at_level(logging.INFO, logger="ticketing.adapters.email"):
        ConsoleEmailSender().send(msg)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Two tickets for the Concert." in logged
    assert "<p>" not in logged


def test_a_failure_rate_fails_that_share_of_charges_only(gateway):
    gateway.configure(failure_mode="timeout_after_charge", failure_rate=0.2)
    outcomes = []
    for number in range(500):
        try:
            charge(gateway, key=f"key-{number}")
            outcomes.append("ok")
        except PaymentUnavailable:
            outcomes.append("timeout")
    # Every call took the money, as timeout_after_charge does; about one answer in five was lost.
    assert len(gateway.kept_charges()) == 500
    assert 50 <= outcomes.count("timeout") <= 150


def test_a_failure_rate_outside_zero_to_one_is_refused(gateway):
    with pytest.raises(ConfigurationError, match="failure rate"):
        gateway.configure(failure_mode="timeout", failure_rate=1.5)
