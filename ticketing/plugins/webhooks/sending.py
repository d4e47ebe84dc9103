"""One delivery attempt over HTTP: signed as Standard Webhooks says, with its maintained library,
sent to the address the guard checked, with a timeout and no redirects."""

import dataclasses

import urllib3
from standardwebhooks.webhooks import Webhook as Signer

from .errors import TargetRefused

USER_AGENT = "ticketing-webhooks/1"


@dataclasses.dataclass(frozen=True)
class Answer:
    """What an attempt came to: the endpoint's HTTP ``status``, or None and why (``error``)."""

    status: int | None
    error: str | None = None

    @property
    def succeeded(self):
        return self.status is not None and 200 <= self.status < 300


def signed_headers(message_id, body, secrets, *, now):
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (one ``v1,...`` per secret,
    space-separated: a receiver holding either the old or the new secret verifies it)."""
    signatures = " ".join(Signer(secret).sign(message_id, now, body) for secret in secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


def post(guard, url, body, headers, *, timeout, ca_certs=None):
    """POST ``body`` to ``url``; never raises for what the endpoint or the network does. An
    https endpoint's certificate must be valid for the URL's host name (checked against the
    system's authorities, or ``ca_certs``), though the connection goes to the checked address."""
    try:
        target = guard.target(url)
    except TargetRefused as refused:
        return Answer(None, refused.detail)
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs,
        )
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port)
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body.encode(),
            headers={**headers, "Host": target.host_header},
            redirect=False,
            retries=False,
            timeout=urllib3.Timeout(total=timeout),
            preload_content=False,
        )
        response.close()
        return Answer(response.status)
    except urllib3.exceptions.TimeoutError:
        return Answer(None, f"no answer within {timeout:g} s")
    except urllib3.exceptions.HTTPError as error:
        return Answer(None, f"{type(error).__name__}: {error}")
    finally:
        pool.close()
