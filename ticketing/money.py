"""Money is held as integer minor units (cents) and shown as decimal strings ("50.00")."""

from decimal import Decimal

CENT = Decimal("0.01")


def to_cents(amount: Decimal) -> int:
    return int(amount.quantize(CENT) * 100)


def format_cents(cents: int) -> str:
    return str((Decimal(cents) / 100).quantize(CENT))
