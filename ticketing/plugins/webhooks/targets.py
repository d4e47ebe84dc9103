"""Where deliveries may go: the guard against server-side request forgery.

In production a webhook's URL must be https, and every address its host resolves to must be a
public one: not loopback, private, link-local (the clouds' metadata service, 169.254.169.254,
is one), shared, reserved or multicast. The check runs when the URL is registered and again at
each delivery, and the delivery connects to the very address it checked, so a name that resolves
elsewhere later (DNS rebinding) is refused rather than followed. Redirects are never followed.
``webhooks.allow_private_targets = true`` (development and tests only) lets http and local
addresses through, for receivers on the same machine.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from zope.interface import Interface, implementer

from .errors import TargetRefused


class IHostResolver(Interface):
    """Turns a host name into addresses; tests register one of their own."""

    def resolve(host, port):
        """The IP addresses (strings) ``host`` resolves to; raise ``OSError`` if none."""


@implementer(IHostResolver)
class SystemResolver:
    """The operating system's resolver (``getaddrinfo``)."""

    def resolve(self, host, port):
        return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class Target:
    """A checked URL: where to connect (``address``) and what to ask for."""

    def __init__(self, url, address):
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.address = address
        self.host_header = parts.netloc.rpartition("@")[2]
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class TargetGuard:
    def __init__(self, resolver, *, allow_private):
        self.resolver = resolver
        self.allow_private = allow_private

    def check_url(self, url):
        """Refuse a URL that can never be delivered to; resolve it too in production."""
        parts = self._parts(url)
        if not self.allow_private:
            self._public_address(parts.hostname, parts.port or 443)

    def target(self, url):
        """The :class:`Target` to deliver ``url`` to now, or :class:`TargetRefused`."""
        parts = self._parts(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if self.allow_private:
            return Target(url, self._addresses(parts.hostname, port)[0])
        return Target(url, self._public_address(parts.hostname, port))

    def _parts(self, url):
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (a port that is not a number raises here)
        except ValueError as error:
            raise TargetRefused(f"Not a URL: {error}.") from None
        allowed = ("https", "http") if self.allow_private else ("https",)
        if parts.scheme not in allowed:
            raise TargetRefused(f"The URL must be {' or '.join(allowed)}.")
        if not parts.hostname:
            raise TargetRefused("The URL names no host.")
        return parts

    def _addresses(self, host, port):
        try:
            addresses = self.resolver.resolve(host, port)
        except OSError as error:
            raise TargetRefused(f"{host} does not resolve ({error}).") from None
        if not addresses:
            raise TargetRefused(f"{host} does not resolve.")
        return addresses

    def _public_address(self, host, port):
        addresses = self._addresses(host, port)
        for address in addresses:
            if not is_public(address):
                raise TargetRefused(
                    f"{host} resolves to {address}, which is not a public address; deliveries "
                    "go to public addresses only."
                )
        return addresses[0]


def is_public(address):
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast
