"""Money as ISO 4217 gives it: integer minor units, shown with the currency's decimals."""

from decimal import Decimal

import pytest

from ticketing.money import AmountNotInCurrency, exponent, format_money, to_minor_units


@pytest.mark.parametrize(
    ("minor_units", "currency", "shown"),
    [
        (5000, "USD", "50.00"),
        (5, "USD", "0.05"),
        (0, "EUR", "0.00"),
        (-150, "USD", "-1.50"),
        (-5, "USD", "-0.05"),
        (5000, "JPY", "5000"),
        (-7, "JPY", "-7"),
        (12500, "KWD", "12.500"),
        (1, "CLF", "0.0001"),
        (10**20, "USD", "1000000000000000000.00"),
        (Decimal(29000), "USD", "290.00"),  # a SQL sum
    ],
)
def test_amounts_are_shown_with_their_currencys_decimals(minor_units, currency, shown):
    assert format_money(minor_units, currency) == shown
    assert to_minor_units(Decimal(shown), currency) == int(minor_units)


def test_more_decimals_than_the_currency_has_are_refused():
    with pytest.raises(AmountNotInCurrency):
        to_minor_units(Decimal("50.000"), "USD")
    with pytest.raises(AmountNotInCurrency):
        to_minor_units(Decimal("50.0"), "JPY")


@pytest.mark.parametrize("code", ["XXX", "ABC", "XAU"])
def test_codes_one_cannot_charge_in_are_refused(code):
    with pytest.raises(ValueError, match=code):
        exponent(code)
