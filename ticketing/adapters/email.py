"""Email senders."""

import logging
import threading
import time

from pyramid.exceptions import ConfigurationError
from zope.interface import implementer

from ticketing.domain.errors import EmailDeliveryError
from ticketing.interfaces import IEmailSender
from ticketing.settings import as_int

log = logging.getLogger(__name__)


@implementer(IEmailSender)
class MockEmailSender:
    """Keeps every message it is given in ``outbox``; can be told to fail (``server_error``,
    ``timeout``) or to be slow, from tests through the registry or from the ini."""

    name = "mock"
    FAILURE_MODES = frozenset({"server_error", "timeout"})

    def __init__(self, failure_mode=None, latency_ms=0):
        self._lock = threading.Lock()
        self.outbox = []
        self.configure(failure_mode, latency_ms)

    @classmethod
    def from_settings(cls, settings):
        return cls(
            failure_mode=settings.get("email.mock.failure_mode") or None,
            latency_ms=as_int(settings, "email.mock.latency_ms", 0),
        )

    def configure(self, failure_mode=None, latency_ms=0):
        if failure_mode is not None and failure_mode not in self.FAILURE_MODES:
            raise ConfigurationError(f"unknown mock email failure mode {failure_mode!r}")
        self.failure_mode = failure_mode
        self.latency_ms = latency_ms

    def send(self, message):
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        if self.failure_mode == "server_error":
            raise EmailDeliveryError("mail server error")
        if self.failure_mode == "timeout":
            raise EmailDeliveryError("mail server timed out")
        with self._lock:
            self.outbox.append(message)


@implementer(IEmailSender)
class ConsoleEmailSender:
    """Writes each message to the log instead of sending it: for development."""

    name = "console"

    @classmethod
    def from_settings(cls, settings):
        return cls()

    def send(self, message):
        log.info("email to %s: %s\n%s", message["To"], message["Subject"], _plain_text(message))


def _plain_text(message):
    part = message.get_body(preferencelist=("plain",)) if message.is_multipart() else message
    return part.get_content() if part is not None else ""
