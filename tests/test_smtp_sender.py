"""The SMTP sender against real SMTP servers started on 127.0.0.1 with aiosmtpd: what arrives,
STARTTLS, SMTPS and login, one connection for many messages (reopened when the server drops
it), and every way delivery fails turned into EmailDeliveryError."""

import asyncio
import datetime as dt
import email
import email.policy
import socket
import ssl
import subprocess
import time
import uuid
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from pyramid.exceptions import ConfigurationError
from zope.interface.verify import verifyClass, verifyObject

from ticketing import main
from ticketing.adapters import EMAIL_SENDERS
from ticketing.adapters.smtp import SMTPEmailSender
from ticketing.domain.errors import EmailDeliveryError
from ticketing.interfaces import IEmailSender
from ticketing.models import Event, Order, OrderStatus
from ticketing.notifications import order_confirmation_message

SENDER = "Tickets <tickets@example.test>"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Recorder:
    """An aiosmtpd handler that keeps what it is given, or answers as told."""

    def __init__(self):
        self.envelopes = []
        self.rcpt_reply = None
        self.data_reply = None
        #: the client's address and port of each message's connection
        self.peers = []
        self.data_calls = 0
        #: hang up without a word: right after answering DATA, or instead of answering it
        self.hang_up_after_data = False
        self.hang_up_in_data = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_calls += 1
        if self.hang_up_in_data:
            server.transport.abort()
            return "250 Message accepted for delivery"
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        self.peers.append(session.peer)
        if self.hang_up_after_data:
            asyncio.get_running_loop().call_later(0.05, server.transport.abort)
        return "250 Message accepted for delivery"

    def messages(self):
        return [
            email.message_from_bytes(envelope.original_content, policy=email.policy.default)
            for envelope in self.envelopes
        ]


class Server:
    def __init__(self, controller, handler):
        self.controller = controller
        self.handler = handler
        self.port = controller.port


@pytest.fixture
def start_server():
    """Start aiosmtpd servers on 127.0.0.1; every one is stopped at teardown."""
    started = []

    def start(**kwargs):
        handler = Recorder()
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
        controller.start()
        started.append(controller)
        return Server(controller, handler)

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def server(start_server):
    return start_server()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def server_tls_context(certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return context


@pytest.fixture
def client_tls_context(certificate):
    # Verifies the certificate and the host name, as in production; only the authority differs.
    return ssl.create_default_context(cafile=str(certificate[0]))


def sender_for(server, **overrides):
    options = {"port": server.port, "default_sender": SENDER, "timeout_seconds": 5}
    options.update(overrides)
    return SMTPEmailSender("127.0.0.1", **options)


def message(to="buyer@example.test", sender=SENDER):
    msg = EmailMessage()
    if sender:
        msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = "Your tickets"
    msg.set_content("Two tickets for the Concert.")
    msg.add_alternative("<p>Two tickets for the <b>Concert</b>.</p>", subtype="html")
    return msg


def check_password(server, session, envelope, mechanism, auth_data):
    valid = (auth_data.login, auth_data.password) == (b"app", b"s3cret")
    # handled=False: aiosmtpd answers a failure with its "535" itself.
    return AuthResult(success=valid, handled=False)


# --- the class and its settings -------------------------------------------------------------------


def test_the_sender_implements_the_interface():
    sender = SMTPEmailSender.from_settings(
        {"mail.host": "smtp.example.test", "mail.default_sender": SENDER}
    )
    assert verifyClass(IEmailSender, SMTPEmailSender)
    assert verifyObject(IEmailSender, sender)
    assert sender.name == "smtp"
    assert EMAIL_SENDERS["smtp"] == "ticketing.adapters.smtp.SMTPEmailSender"


def test_pyramid_mailer_setting_names_reach_the_sender():
    sender = SMTPEmailSender.from_settings(
        {
            "mail.host": " smtp.example.test ",
            "mail.port": "587",
            "mail.username": "app",
            "mail.password": "s3cret",
            "mail.tls": "true",
            "mail.ssl": "false",
            "mail.default_sender": SENDER,
            "mail.timeout_seconds": "2.5",
        }
    )
    assert (sender.host, sender.port, sender.username) == ("smtp.example.test", 587, "app")
    assert (sender.tls, sender.ssl, sender.timeout_seconds) == (True, False, 2.5)
    assert sender.default_sender == SENDER
    assert "s3cret" not in repr(sender)


def test_defaults_are_port_25_without_tls_and_465_with_ssl():
    base = {"mail.host": "smtp.example.test", "mail.default_sender": SENDER}
    plain = SMTPEmailSender.from_settings(base)
    assert (plain.port, plain.tls, plain.ssl, plain.username) == (25, False, False, None)
    assert (plain.timeout_seconds, plain.idle_seconds) == (10, 30)
    assert SMTPEmailSender.from_settings({**base, "mail.ssl": "true"}).port == 465


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"mail.host": None}, "mail.host"),
        ({"mail.host": "  "}, "mail.host"),
        ({"mail.default_sender": None}, "mail.default_sender"),
        ({"mail.port": "smtp"}, "mail.port"),
        ({"mail.timeout_seconds": "soon"}, "mail.timeout_seconds"),
        ({"mail.timeout_seconds": "0"}, "mail.timeout_seconds"),
        ({"mail.tls": "true", "mail.ssl": "true"}, "mail.ssl"),
        ({"mail.idle_seconds": "-1"}, "mail.idle_seconds"),
        ({"mail.idle_seconds": "a while"}, "mail.idle_seconds"),
    ],
)
def test_bad_settings_fail_at_startup_naming_the_setting(changes, named):
    complete = {"mail.host": "smtp.example.test", "mail.default_sender": SENDER}
    settings = {k: v for k, v in {**complete, **changes}.items() if v is not None}
    with pytest.raises(ConfigurationError) as raised:
        SMTPEmailSender.from_settings(settings)
    assert named in str(raised.value)


def test_the_app_selects_the_smtp_sender_by_name(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for variable in ("MAIL_HOST", "MAIL_PORT", "MAIL_DEFAULT_SENDER"):
        monkeypatch.delenv(variable, raising=False)
    app = main(
        {},
        **{
            "sqlalchemy.url": f"sqlite:///{tmp_path / 'unused.sqlite'}",
            "ticketing.require_api_key": "false",
            "ticketing.ticket_secret": "test-ticket-secret",
            "ticketing.email": "smtp",
            "mail.host": "smtp.example.test",
            "mail.port": "2525",
            "mail.default_sender": SENDER,
        },
    )
    try:
        sender = app.registry.getUtility(IEmailSender)
        assert type(sender) is SMTPEmailSender
        assert (sender.host, sender.port) == ("smtp.example.test", 2525)
    finally:
        app.registry["dbengine"].dispose()


# --- delivery -------------------------------------------------------------------------------------


def test_a_message_arrives_with_its_headers_and_both_parts(server):
    sender_for(server).send(message())

    [envelope] = server.handler.envelopes
    assert envelope.mail_from == "tickets@example.test"
    assert envelope.rcpt_tos == ["buyer@example.test"]
    [received] = server.handler.messages()
    assert received["From"] == SENDER
    assert received["To"] == "buyer@example.test"
    assert received["Subject"] == "Your tickets"
    assert received.get_content_type() == "multipart/alternative"
    assert received.get_body(("plain",)).get_content().strip() == "Two tickets for the Concert."
    assert "<b>Concert</b>" in received.get_body(("html",)).get_content()


def test_a_notification_arrives_whole(server):
    event = Event(
        id=uuid.uuid4(),
        name="Café Concert & Friends",
        venue="Stadium",
        date=dt.datetime(2027, 3, 13, 20, 0, tzinfo=dt.UTC),
    )
    order = Order(
        id=uuid.uuid4(),
        event_id=event.id,
        customer_email="john@example.com",
        customer_name="John Doe",
        quantity=2,
        unit_price_cents=5000,
        total_amount_cents=10000,
        currency="USD",
        status=OrderStatus.CONFIRMED,
    )
    sender_for(server).send(order_confirmation_message(order, event, SENDER))

    [received] = server.handler.messages()
    assert received["To"] == "John Doe <john@example.com>"
    assert (
        received["Subject"]
        == f"Your tickets for Café Concert & Friends (order {str(order.id)[:8]})"
    )
    text = received.get_body(("plain",)).get_content()
    html = received.get_body(("html",)).get_content()
    assert str(order.id) in text and "100.00 USD" in text and "Café Concert & Friends" in text
    assert str(order.id) in html and "Café Concert &amp; Friends" in html


def test_a_message_without_from_gets_the_default_sender(server):
    original = message(sender=None)
    sender_for(server).send(original)
    [received] = server.handler.messages()
    assert received["From"] == SENDER
    assert original["From"] is None  # the caller's message is left as it was


def test_starttls_and_login(start_server, server_tls_context, client_tls_context):
    server = start_server(
        tls_context=server_tls_context,
        require_starttls=True,
        authenticator=check_password,
        auth_require_tls=True,
        auth_required=True,
    )
    sender = sender_for(
        server, tls=True, username="app", password="s3cret", ssl_context=client_tls_context
    )
    sender.send(message())
    sender.send(message(to="second@example.test"))
    first, second = server.handler.envelopes
    assert (first.rcpt_tos, second.rcpt_tos) == (["buyer@example.test"], ["second@example.test"])
    # STARTTLS and the login once, for both messages.
    assert len(set(server.handler.peers)) == 1


def test_a_refused_login_is_a_delivery_error(start_server, server_tls_context, client_tls_context):
    server = start_server(
        tls_context=server_tls_context,
        require_starttls=True,
        authenticator=check_password,
        auth_required=True,
    )
    sender = sender_for(
        server, tls=True, username="app", password="wrong", ssl_context=client_tls_context
    )
    with pytest.raises(EmailDeliveryError) as raised:
        sender.send(message())
    assert "535" in raised.value.detail
    assert "wrong" not in raised.value.detail
    assert raised.value.extra["retryable"] is True  # a configuration to fix, not the message
    assert server.handler.envelopes == []


def test_smtps(start_server, server_tls_context, client_tls_context):
    server = start_server(ssl_context=server_tls_context)
    sender_for(server, ssl=True, ssl_context=client_tls_context).send(message())
    assert len(server.handler.envelopes) == 1


def test_a_certificate_that_is_not_trusted_is_a_delivery_error(start_server, server_tls_context):
    server = start_server(tls_context=server_tls_context)
    with pytest.raises(EmailDeliveryError) as raised:
        sender_for(server, tls=True).send(message())  # the system's authorities only
    assert "certificate" in raised.value.detail.lower()
    assert server.handler.envelopes == []


def test_starttls_asked_of_a_server_without_it_is_a_delivery_error(server):
    with pytest.raises(EmailDeliveryError) as raised:
        sender_for(server, tls=True).send(message())
    assert "STARTTLS" in raised.value.detail
    assert server.handler.envelopes == []


# --- one connection for many messages ------------------------------------------------------------


def test_one_connection_carries_the_messages_sent_one_after_another(server):
    sender = sender_for(server)
    for number in range(3):
        sender.send(message(to=f"buyer{number}@example.test"))
    assert [e.rcpt_tos for e in server.handler.envelopes] == [
        [f"buyer{number}@example.test"] for number in range(3)
    ]
    assert len(set(server.handler.peers)) == 1


def test_with_idle_seconds_0_each_message_has_its_own_connection(server):
    sender = sender_for(server, idle_seconds=0)
    sender.send(message())
    sender.send(message())
    assert len(set(server.handler.peers)) == 2


def test_a_connection_idle_for_longer_than_allowed_is_not_used_again(server):
    sender = sender_for(server, idle_seconds=0.2)
    sender.send(message())
    time.sleep(0.4)
    sender.send(message())
    assert len(server.handler.envelopes) == 2
    assert len(set(server.handler.peers)) == 2


def test_a_connection_the_server_timed_out_is_reopened(start_server):
    server = start_server(timeout=0.3)  # aiosmtpd hangs up on a client idle for 0.3 s
    sender = sender_for(server)
    sender.send(message(to="before@example.test"))
    time.sleep(0.8)
    sender.send(message(to="after@example.test"))
    assert [e.rcpt_tos for e in server.handler.envelopes] == [
        ["before@example.test"],
        ["after@example.test"],
    ]
    assert len(set(server.handler.peers)) == 2


def test_a_connection_the_server_dropped_without_a_word_is_reopened(server):
    server.handler.hang_up_after_data = True
    sender = sender_for(server)
    for number in range(3):
        sender.send(message(to=f"buyer{number}@example.test"))
        time.sleep(0.2)  # the server hangs up meanwhile
    assert server.handler.data_calls == 3
    assert [e.rcpt_tos for e in server.handler.envelopes] == [
        [f"buyer{number}@example.test"] for number in range(3)
    ]
    assert len(set(server.handler.peers)) == 3


def test_a_message_cut_off_during_data_is_not_sent_again(server):
    sender = sender_for(server)
    sender.send(message())
    server.handler.hang_up_in_data = True
    with pytest.raises(EmailDeliveryError) as raised:
        sender.send(message(to="cut@example.test"))
    # The server may have it: a second copy is the job's decision (a retry), not the sender's.
    assert server.handler.data_calls == 2
    assert "did not take the message" in raised.value.detail
    assert raised.value.extra["retryable"] is True

    server.handler.hang_up_in_data = False
    sender.send(message(to="next@example.test"))
    assert [e.rcpt_tos for e in server.handler.envelopes][-1] == ["next@example.test"]


# --- failures -------------------------------------------------------------------------------------


def test_a_refused_recipient_is_a_permanent_delivery_error(server):
    server.handler.rcpt_reply = "550 5.1.1 No such mailbox here"
    with pytest.raises(EmailDeliveryError) as raised:
        sender_for(server).send(message())
    error = raised.value
    assert error.code == "email_delivery_failed"
    assert "buyer@example.test" in error.detail
    assert "550 5.1.1 No such mailbox here" in error.detail
    assert error.extra == {"retryable": False, "smtp_code": 550}


def test_a_temporary_refusal_is_a_retryable_delivery_error(server):
    server.handler.data_reply = "451 4.3.0 Try again later"
    with pytest.raises(EmailDeliveryError) as raised:
        sender_for(server).send(message())
    assert "451 4.3.0 Try again later" in raised.value.detail
    assert raised.value.extra == {"retryable": True, "smtp_code": 451}


def test_nothing_listening_is_a_delivery_error():
    sender = SMTPEmailSender("127.0.0.1", free_port(), default_sender=SENDER, timeout_seconds=5)
    with pytest.raises(EmailDeliveryError) as raised:
        sender.send(message())
    assert "connection refused" in raised.value.detail
    assert raised.value.extra == {"retryable": True}


def test_a_server_that_never_answers_times_out():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections (the kernel does) and never says a word
        port = silent.getsockname()[1]
        sender = SMTPEmailSender("127.0.0.1", port, default_sender=SENDER, timeout_seconds=0.5)
        started = time.monotonic()
        with pytest.raises(EmailDeliveryError) as raised:
            sender.send(message())
    assert time.monotonic() - started < 8  # generous: it gave up on its own
    assert "timed out" in raised.value.detail
    assert raised.value.extra["retryable"] is True
