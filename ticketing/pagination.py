"""Keyset pagination over (created_at, id): stable under inserts, no OFFSET, no COUNT.

A cursor is opaque to clients: URL-safe base64 of the last row's sort key.
"""

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import tuple_

from ticketing.domain.errors import InvalidCursor


@dataclass
class Page:
    items: list
    next_cursor: str | None


def encode_cursor(row):
    key = [row.created_at.isoformat(), str(row.id)]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor):
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        created_at = datetime.fromisoformat(created_at)
        if created_at.tzinfo is None:
            raise ValueError("cursor timestamp has no offset")
        return created_at, uuid.UUID(row_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidCursor("The cursor is not one this API handed out.") from None


def paginate(dbsession, statement, model, limit, cursor=None):
    """Run ``statement`` (a ``select(model)`` with filters) one page at a time, oldest first."""
    if cursor:
        statement = statement.where(
            tuple_(model.created_at, model.id) > tuple_(*decode_cursor(cursor))
        )
    statement = statement.order_by(model.created_at, model.id).limit(limit + 1)
    rows = list(dbsession.scalars(statement))
    has_more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=rows, next_cursor=encode_cursor(rows[-1]) if has_more else None)
