"""Email over SMTP (``ticketing.email = smtp``) with the standard library.

Not pyramid_mailer: its transactional send delivers after the database commit (a mail failure
then turns a committed request into a 500) and its backend writes bare LF line endings that
strict servers refuse. Messages are sent from a job, one connection per message, and a failure
raises :class:`EmailDeliveryError` for the job layer to retry.

Settings keep pyramid_mailer's names (production reads the ones in capitals from the
environment):

- ``mail.host`` (``MAIL_HOST``, required) and ``mail.port`` (``MAIL_PORT``; default 25, or 465
  with ``mail.ssl``);
- ``mail.username`` (``MAIL_USERNAME``) and ``mail.password`` (``MAIL_PASSWORD``): log in when a
  username is set;
- ``mail.tls``: upgrade the connection with STARTTLS; ``mail.ssl``: connect over TLS from the
  start (SMTPS); not both;
- ``mail.default_sender`` (``MAIL_DEFAULT_SENDER``, required): the ``From`` of messages that
  have none, and the address notifications are sent from;
- ``mail.timeout_seconds`` (default 10): the timeout of the connection and of each exchange.
"""

import copy
import logging
import smtplib
import ssl

from pyramid.exceptions import ConfigurationError
from zope.interface import implementer

from ticketing.domain.errors import EmailDeliveryError
from ticketing.interfaces import IEmailSender
from ticketing.settings import as_bool, as_float, as_int, require

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0


@implementer(IEmailSender)
class SMTPEmailSender:
    """Hands each message to an SMTP server; see the module's documentation."""

    name = "smtp"

    def __init__(
        self,
        host,
        port=None,
        *,
        username=None,
        password=None,
        tls=False,
        ssl=False,
        default_sender=None,
        timeout_seconds=DEFAULT_TIMEOUT_SECONDS,
        ssl_context=None,
    ):
        if tls and ssl:
            raise ConfigurationError(
                "settings 'mail.tls' (STARTTLS) and 'mail.ssl' (SMTPS) exclude each other"
            )
        if not timeout_seconds > 0:
            raise ConfigurationError("setting 'mail.timeout_seconds' must be above 0")
        self.host = host
        self.port = port or (465 if ssl else 25)
        self.username = username or None
        self._password = password or ""
        self.tls = tls
        self.ssl = ssl
        self.default_sender = default_sender
        self.timeout_seconds = timeout_seconds
        #: verifies the server's certificate; the system's trusted authorities by default
        self.ssl_context = ssl_context

    @classmethod
    def from_settings(cls, settings):
        use_ssl = as_bool(settings, "mail.ssl", False)
        return cls(
            host=require(
                settings, "mail.host", " (set the MAIL_HOST environment variable)"
            ).strip(),
            port=as_int(settings, "mail.port", 465 if use_ssl else 25),
            username=str(settings.get("mail.username") or "").strip() or None,
            password=settings.get("mail.password") or "",
            tls=as_bool(settings, "mail.tls", False),
            ssl=use_ssl,
            default_sender=require(
                settings,
                "mail.default_sender",
                " (set the MAIL_DEFAULT_SENDER environment variable)",
            ).strip(),
            timeout_seconds=as_float(settings, "mail.timeout_seconds", DEFAULT_TIMEOUT_SECONDS),
        )

    def __repr__(self):
        return f"<SMTPEmailSender {self.host}:{self.port}>"  # never the password

    def send(self, message):
        if message["From"] is None:
            if not self.default_sender:
                raise EmailDeliveryError(
                    "The message has no From and no mail.default_sender is set."
                )
            message = copy.deepcopy(message)  # the caller's message stays as it was
            message["From"] = self.default_sender
        where = f"{self.host}:{self.port}"
        connection = None
        step = f"Could not connect to the mail server {where}"
        try:
            connection = self._connect()
            if self.tls:
                step = f"Could not start TLS with the mail server {where}"
                connection.starttls(context=self._context())
            if self.username:
                step = f"The mail server {where} refused the login"
                connection.login(self.username, self._password)
            step = f"The mail server {where} did not take the message"
            refused = connection.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            if connection is not None:
                _close(connection)
            raise _delivery_error(step, error) from error
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            # Delivered: raising now would make a retry send it twice.
            _close(connection)
        if refused:
            # Others got it, so a retry would send them a second copy: only say so.
            log.warning("mail server %s refused some recipients: %s", where, sorted(refused))

    def _connect(self):
        if self.ssl:
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout_seconds, context=self._context()
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds)

    def _context(self):
        return self.ssl_context or ssl.create_default_context()


def _close(connection):
    try:
        connection.close()
    except OSError:
        pass


def _delivery_error(what, error):
    """An :class:`EmailDeliveryError` that says what failed and whether a retry may help.

    ``extra["retryable"]`` is False only for a permanent (5xx) answer from the server about the
    message itself; timeouts, refused connections and temporary (4xx) answers are worth a retry.
    ``extra["smtp_code"]`` is the server's reply code, where it gave one.
    """
    code = _smtp_code(error)
    if isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError):
        # smtplib turns a timeout while reading a reply into SMTPServerDisconnected.
        reason = "timed out"
    elif isinstance(error, ConnectionRefusedError):
        reason = "connection refused"
    elif isinstance(error, smtplib.SMTPRecipientsRefused):
        reason = "recipients refused: " + "; ".join(
            f"{address} ({_reply(reply_code, reply)})"
            for address, (reply_code, reply) in error.recipients.items()
        )
    elif code is not None:
        reason = _reply(code, getattr(error, "smtp_error", b""))
    else:
        reason = str(error) or type(error).__name__
    # A refused login is this server's configuration, not the message: worth a retry once fixed.
    permanent = (
        code is not None
        and 500 <= code < 600
        and not isinstance(error, smtplib.SMTPAuthenticationError)
    )
    extra = {"retryable": not permanent}
    if code is not None:
        extra["smtp_code"] = code
    return EmailDeliveryError(f"{what}: {reason}.", **extra)


def _smtp_code(error):
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [reply_code for reply_code, _ in error.recipients.values()]
        return min(codes) if codes else None
    return getattr(error, "smtp_code", None)


def _reply(code, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(str(text).split())}".strip()
