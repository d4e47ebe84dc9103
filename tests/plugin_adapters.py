"""Adapters as a third-party package would ship them, selected in the settings by dotted path."""

from zope.interface import implementer

from ticketing.interfaces import IEmailSender


@implementer(IEmailSender)
class RecordingEmailSender:
    """A plugin email sender that keeps what it is given."""

    name = "recording"

    def __init__(self, sender_address):
        self.sender_address = sender_address
        self.sent = []

    @classmethod
    def from_settings(cls, settings):
        return cls(sender_address=settings.get("recording.sender", "tickets@example.test"))

    def send(self, message):
        self.sent.append(message)


class UndeclaredEmailSender:
    """Has the methods but does not declare the interface: not an implementation."""

    name = "undeclared"

    @classmethod
    def from_settings(cls, settings):
        return cls()

    def send(self, message):
        pass


@implementer(IEmailSender)
class IncompleteEmailSender:
    """Declares the interface but lacks ``send``."""

    name = "incomplete"

    @classmethod
    def from_settings(cls, settings):
        return cls()
