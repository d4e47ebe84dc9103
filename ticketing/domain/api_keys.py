"""The organisers' API keys: made, listed, revoked, and recognised when a request carries one.

A key reads ``tk_<prefix>_<secret>``: 256 random bits in its secret, and a 48-bit prefix that
is stored in clear, to find the key's row with one index look-up and to tell keys apart in a
list. Only the SHA-256 of the whole key is stored; a plain hash is enough because the key is
random, not a password that could be guessed from a dictionary.
"""

import datetime as dt
import hashlib
import hmac
import logging
import secrets

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from ticketing.models import ApiKey, Event, KeyScope

from .errors import EventIdsNeedCheckinScope, EventNotFound, KeyNotFound

log = logging.getLogger(__name__)

KEY_MARK = "tk"
#: how far ``last_used_at`` may lag behind the last use: one write a minute per key at most
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def _hash(key):
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(dbsession, *, name, scope, event_ids=None, now):
    """A new key, and the key itself (shown once: only its hash is kept). ``event_ids`` (UUIDs)
    limits a checkin key to those events; ``None``: every event."""
    scope = KeyScope(scope)
    if event_ids is not None:
        if scope != KeyScope.CHECKIN:
            raise EventIdsNeedCheckinScope(
                f"A {scope} key reaches every event; event_ids are for checkin keys."
            )
        wanted = sorted(set(event_ids))
        found = set(dbsession.scalars(select(Event.id).where(Event.id.in_(wanted))))
        missing = [each for each in wanted if each not in found]
        if missing:
            raise EventNotFound(f"No event has the id {missing[0]}.")
        # JSON holds strings; the request's check compares them as UUIDs again.
        event_ids = [str(each) for each in wanted]
    # 48 random bits: the unique constraint on prefix refuses the (vanishingly rare) repeat.
    prefix = secrets.token_hex(6)
    secret = f"{KEY_MARK}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        name=name,
        prefix=prefix,
        secret_hash=_hash(secret),
        scope=scope,
        event_ids=event_ids,
        created_at=now,
    )
    dbsession.add(key)
    dbsession.flush()
    return key, secret


def list_keys(dbsession):
    """Every key, revoked ones too, oldest first."""
    return list(dbsession.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def revoke_key(dbsession, key_id, *, now):
    """Revoke a key from now on; revoking it again changes nothing."""
    key = dbsession.get(ApiKey, key_id)
    if key is None:
        raise KeyNotFound(f"No API key has the id {key_id}.")
    if key.revoked_at is None:
        key.revoked_at = now
        dbsession.flush()
    return key


def find_key(dbsession, presented):
    """The key that ``presented`` is (revoked or not), or ``None``."""
    mark, _, rest = presented.partition("_")
    prefix, _, secret = rest.partition("_")
    if mark != KEY_MARK or not prefix or not secret:
        return None
    key = dbsession.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(presented)):
        return None
    return key


def record_use(session_factory, key, *, now):
    """Note that ``key`` was used at ``now``, at most once a ``LAST_USED_RESOLUTION``.

    In a short transaction of its own: the request's would hold the key's row locked until it
    ends (every other request with the same key would queue behind it), and would lose the
    note when the request fails. It is bookkeeping: a failure is logged, never the request's.
    """
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        return
    try:
        with session_factory.begin() as session:
            # Conditional, so that requests arriving together write once.
            session.execute(
                update(ApiKey)
                .where(
                    ApiKey.id == key.id,
                    or_(
                        ApiKey.last_used_at.is_(None),
                        ApiKey.last_used_at <= now - LAST_USED_RESOLUTION,
                    ),
                )
                .values(last_used_at=now)
            )
    except SQLAlchemyError:
        log.warning("could not record the use of API key %s", key.prefix, exc_info=True)
