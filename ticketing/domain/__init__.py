"""Business rules. Functions here take a session, adapters and plain values; they know nothing of
HTTP, and report failures by raising the errors in :mod:`ticketing.domain.errors`."""
