"""Money is held as integer minor units of its currency and shown as a decimal string with as
many decimals as ISO 4217 gives the currency: "50.00" USD, "5000" JPY, "12.500" KWD.

The number of decimals (the currency's exponent) comes from the ISO 4217 table of the
``iso4217`` package; nothing here assumes two.
"""

import functools
from decimal import Decimal

from iso4217 import Currency


class AmountNotInCurrency(ValueError):
    """An amount with more decimals than its currency has minor units."""


@functools.cache
def exponent(currency):
    """How many decimals ``currency`` (an ISO 4217 code) has; ``ValueError`` for a code that is
    not a currency one can charge in (unknown, or without minor units, such as gold)."""
    try:
        digits = Currency(currency).exponent
    except ValueError:
        raise ValueError(f"{currency!r} is not an ISO 4217 currency code") from None
    if digits is None:
        raise ValueError(f"{currency!r} has no minor unit: prices cannot be given in it")
    return digits


def to_minor_units(amount: Decimal, currency) -> int:
    """``amount`` in minor units of ``currency``; AmountNotInCurrency when it is written with
    more decimals than the currency has ("50.000" USD, "50.0" JPY), even trailing zeros: an API
    that takes money does not guess."""
    digits = exponent(currency)
    if -amount.as_tuple().exponent > digits:
        allowed = f"at most {digits} decimal places" if digits else "no decimal places"
        raise AmountNotInCurrency(f"Must have {allowed} in {currency}.")
    return int(amount.scaleb(digits))


def from_minor_units(minor_units: int, currency) -> Decimal:
    digits = exponent(currency)
    return Decimal(minor_units).scaleb(-digits).quantize(Decimal(1).scaleb(-digits))


def format_money(minor_units: int, currency) -> str:
    """``minor_units`` (an integer, or an integral Decimal such as a SQL sum) as a decimal
    string with the currency's decimals: integer arithmetic, as every order the API shows
    formats a dozen amounts."""
    minor_units = int(minor_units)
    digits = exponent(currency)
    if not digits:
        return str(minor_units)
    whole, part = divmod(abs(minor_units), 10**digits)
    return f"{'-' if minor_units < 0 else ''}{whole}.{part:0{digits}d}"
