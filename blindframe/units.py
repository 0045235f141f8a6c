"""ETH amounts as people type and read them (``0.001`` ETH), exact to the wei; shared by every
command that takes or shows an amount."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from blindframe.errors import BlindframeError

__all__ = ["WEI_PER_ETH", "AmountError", "format_eth", "parse_eth"]

WEI_PER_ETH = 10**18


class AmountError(BlindframeError, ValueError):
    """An amount of ETH that cannot be used."""


def parse_eth(
    text: str | int | float | Decimal,
    what: str = "amount",
    *,
    error: type[BlindframeError] = AmountError,
) -> int:
    """ETH (decimal, at most 18 places) -> wei; refuses negatives, non-finite values and dust
    with ``error`` (each package passes its own option error)."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise error(f"{what} must be an amount of ETH such as 0.001 (not {text!r})") from None
    if not value.is_finite() or value < 0:
        raise error(f"{what} must be a positive amount of ETH (not {text!r})")
    wei = value * WEI_PER_ETH
    if wei != wei.to_integral_value():
        raise error(f"{what} {text!r} has more than 18 decimals (1 wei = 1e-18 ETH)")
    return int(wei)


def format_eth(wei: int) -> str:
    """Wei as ETH text, exact, without trailing zeros (``0.0001 ETH``)."""
    value = (Decimal(int(wei)) / WEI_PER_ETH).normalize()
    return f"{format(value, 'f')} ETH"
