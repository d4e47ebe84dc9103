"""Email over SMTP (``ticketing.email = smtp``) with the standard library.

Not pyramid_mailer: its transactional send delivers after the database commit (a mail failure
then turns a committed request into a 500) and its backend writes bare LF line endings that
strict servers refuse. Messages are sent from a job, and a failure raises
:class:`EmailDeliveryError` for the job layer to retry.

A connection (connect, EHLO, STARTTLS, login) costs more than the message it carries, so one is
kept open and used for the next message, for as long as ``mail.idle_seconds`` allows between
two messages (one connection per thread sending at once). Servers close idle connections, and
say so only when the next command finds the connection gone: a message whose first commands
find it so is sent again on a new connection, at once. Once DATA is under way nothing is sent
again by the sender: the server may have the message, and a second copy is the job layer's call.

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
- ``mail.timeout_seconds`` (default 10): the timeout of the connection and of each exchange;
- ``mail.idle_seconds`` (default 30): how long a connection may sit unused and still carry the
  next message (then it is closed with QUIT); ``0`` opens a connection per message.
"""

import copy
import logging
import smtplib
import ssl
import threading
import time

from pyramid.exceptions import ConfigurationError
from zope.interface import implementer

from ticketing.domain.errors import EmailDeliveryError
from ticketing.interfaces import IEmailSender
from ticketing.settings import as_bool, as_float, as_int, require

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_IDLE_SECONDS = 30.0


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
        idle_seconds=DEFAULT_IDLE_SECONDS,
        ssl_context=None,
    ):
        if tls and ssl:
            raise ConfigurationError(
                "settings 'mail.tls' (STARTTLS) and 'mail.ssl' (SMTPS) exclude each other"
            )
        if not timeout_seconds > 0:
            raise ConfigurationError("setting 'mail.timeout_seconds' must be above 0")
        if not idle_seconds >= 0:
            raise ConfigurationError("setting 'mail.idle_seconds' must be 0 or more")
        self.host = host
        self.port = port or (465 if ssl else 25)
        self.username = username or None
        self._password = password or ""
        self.tls = tls
        self.ssl = ssl
        self.default_sender = default_sender
        self.timeout_seconds = timeout_seconds
        self.idle_seconds = idle_seconds
        #: open connections no thread is using, each with when it was last used (most recent last)
        self._idle = []
        self._idle_lock = threading.Lock()
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
            idle_seconds=as_float(settings, "mail.idle_seconds", DEFAULT_IDLE_SECONDS),
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
        connection = self._take_idle()
        if connection is not None:
            try:
                refused = _send_message(connection, message)
            except (OSError, smtplib.SMTPException) as error:
                _close(connection)
                if connection.reached_data or not _dropped(error):
                    raise _delivery_error(self._refused_message(), error) from error
                log.debug("mail server %s:%s closed an idle connection", self.host, self.port)
            else:
                self._delivered(connection, refused)
                return
        self._delivered(*self._send_on_new_connection(message))

    def _send_on_new_connection(self, message):
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
            step = self._refused_message()
            return connection, _send_message(connection, message)
        except (OSError, smtplib.SMTPException) as error:
            if connection is not None:
                _close(connection)
            raise _delivery_error(step, error) from error

    def _refused_message(self):
        return f"The mail server {self.host}:{self.port} did not take the message"

    def _delivered(self, connection, refused):
        if self.idle_seconds:
            with self._idle_lock:
                self._idle.append((connection, time.monotonic()))
        else:
            _quit(connection)
        if refused:
            # Others got it, so a retry would send them a second copy: only say so.
            log.warning(
                "mail server %s:%s refused some recipients: %s",
                self.host,
                self.port,
                sorted(refused),
            )

    def _take_idle(self):
        """The connection used last, unless it sat idle too long; then it and every older one
        are closed."""
        with self._idle_lock:
            if not self._idle:
                return None
            connection, since = self._idle.pop()
            if time.monotonic() - since <= self.idle_seconds:
                return connection
            stale, self._idle = [connection, *(each for each, _ in self._idle)], []
        for each in stale:
            _quit(each)
        return None

    def _connect(self):
        if self.ssl:
            return _SMTPSConnection(
                self.host, self.port, timeout=self.timeout_seconds, context=self._context()
            )
        return _SMTPConnection(self.host, self.port, timeout=self.timeout_seconds)

    def _context(self):
        return self.ssl_context or ssl.create_default_context()


class _TracksData:
    """Knows whether the message being sent has reached DATA: until then the server cannot
    have it, and sending it again on a new connection cannot make a second copy."""

    reached_data = False

    def data(self, msg):
        self.reached_data = True
        return super().data(msg)


class _SMTPConnection(_TracksData, smtplib.SMTP):
    pass


class _SMTPSConnection(_TracksData, smtplib.SMTP_SSL):
    pass


def _send_message(connection, message):
    connection.reached_data = False
    return connection.send_message(message)


def _dropped(error):
    """Whether ``error`` says that the server had closed the connection (a reused one may have
    been, while idle): it hung up, or answered 421 (closing) first. A timeout is not: the
    server is there but slow, and a new connection would only wait again."""
    if isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError):
        return False
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code == 421
    return isinstance(error, smtplib.SMTPServerDisconnected | OSError)


def _quit(connection):
    try:
        connection.quit()
    except (OSError, smtplib.SMTPException):
        _close(connection)


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
