"""Parsing of the numbers and short texts users give the hub, one rule for every entry point.

``hub catalog set``, CSV and JSON catalog imports, ``--item SKU=QTY`` and shipments files all
read quantities and money through here, so a value is refused the same way wherever it comes
from. Each parser raises :class:`ValueError` whose text says what is wrong and how to write it
instead (without naming the field: the caller knows which one it is reading).

The rules (the README states them):

* a quantity is a whole number from 0 to :data:`MAX_QUANTITY` (ChannelAdvisor's 32-bit
  integer), written with digits only (``12``; JSON ``12`` or ``12.0``);
* an amount of money is a plain decimal from 0 to :data:`MAX_PRICE` with at most
  :data:`MONEY_DECIMALS` significant decimals (ChannelAdvisor keeps cents): ``19.99``,
  ``19.9900`` and ``20`` are accepted; ``19.999``, ``1e30``, ``NaN``, ``Infinity``, ``-1``
  and ``9,99`` are refused, never rounded.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

#: The largest quantity: ChannelAdvisor's quantities are 32-bit signed integers.
MAX_QUANTITY = 2_147_483_647
#: The largest price, cost or MSRP the hub accepts.
MAX_PRICE = Decimal("99999999.99")
#: The longest order window (``--days``, ``order_days``): ten years.
MAX_DAYS = 3650
#: The largest id of a hub row (runs): SQL's 64-bit integer.
MAX_ID = 2**63 - 1
#: Significant decimals kept for money (cents).
MONEY_DECIMALS = 2
#: Longer digit strings are refused before any conversion (Python refuses ints of over 4,300
#: digits, and no valid value is anywhere near this long).
_MAX_DIGITS = 40

_WHOLE = re.compile(r"\+?[0-9]+")
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DECIMAL_COMMA = re.compile(r"[0-9]+,[0-9]{1,2}")


def _shorten(value: Any, limit: int = 30) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "…" + text[-3:]


def parse_quantity(value: Any, *, minimum: int = 0) -> int:
    """A whole number from ``minimum`` to :data:`MAX_QUANTITY`.

    :param value: text (``"12"``), an int, or a float without a fraction (JSON ``12.0``).
    :raises ValueError: anything else, with a message saying what to write.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"must be a whole number, e.g. 12; got {_shorten(value)}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"must be a whole number, e.g. 12; got {_shorten(value)}")
        if abs(value) > MAX_QUANTITY * 2:
            # Checked before int(): a huge float converts slowly to an exact integer.
            raise ValueError(_quantity_range(minimum, value))
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("is empty; give a whole number, e.g. 12")
        if text.startswith("-") and _WHOLE.fullmatch(text[1:]):
            raise ValueError(_quantity_range(minimum, _shorten(text).strip("'")))
        if not _WHOLE.fullmatch(text):
            raise ValueError(f"must be a whole number, e.g. 12; got {_shorten(text)}")
        if len(text.lstrip("+0")) > _MAX_DIGITS:
            raise ValueError(_quantity_range(minimum, _shorten(text).strip("'")))
        number = int(text)
    else:
        raise ValueError(f"must be a whole number, e.g. 12; got {_shorten(value)}")
    if not minimum <= number <= MAX_QUANTITY:
        raise ValueError(_quantity_range(minimum, number))
    return number


def _quantity_range(minimum: int, got: Any) -> str:
    return f"must be from {minimum} to {MAX_QUANTITY:,}; got {got}"


def parse_money(value: Any) -> Decimal:
    """An amount from 0 to :data:`MAX_PRICE` with at most :data:`MONEY_DECIMALS` decimals.

    :param value: text (``"19.99"``), an int, a Decimal, or a float (JSON ``19.99``; read as
        the shortest text that gives it back, so ``19.99`` stays ``19.99``).
    :raises ValueError: anything else, with a message saying what to write.
    """
    example = "a plain decimal number, e.g. 19.99"
    if isinstance(value, bool) or value is None:
        raise ValueError(f"must be {example}; got {_shorten(value)}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"must be {example}; got {value}")
        text = repr(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"must be {example}; got {value}")
        text = format(value, "f") if abs(value) <= 10**_MAX_DIGITS else "9" * (_MAX_DIGITS + 1)
    elif isinstance(value, int):
        text = str(value) if abs(value) <= 10**_MAX_DIGITS else "9" * (_MAX_DIGITS + 1)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError(f"must be {example}; got {_shorten(value)}")
    if not text:
        raise ValueError(f"is empty; give {example}")
    if _DECIMAL_COMMA.fullmatch(text):
        raise ValueError(
            f"uses a comma for decimals ({_shorten(text)}); write a point, e.g. "
            f"{text.replace(',', '.')}"
        )
    if not _PLAIN_DECIMAL.fullmatch(text):
        if re.fullmatch(r"[+-]?[0-9.]+[eE][+-]?[0-9]+", text):
            raise ValueError(f"must be {example}, without an exponent; got {_shorten(text)}")
        raise ValueError(f"must be {example}; got {_shorten(text)}")
    if len(text) > _MAX_DIGITS:
        raise ValueError(f"must be at most {MAX_PRICE:,}; got {_shorten(text)}")
    # Significant decimals, read from the text (trailing zeros do not count).
    fraction = text.partition(".")[2].rstrip("0")
    amount = Decimal(text)
    if amount < 0:
        raise ValueError(f"must be 0 or more; got {text}")
    if amount > MAX_PRICE:
        raise ValueError(f"must be at most {MAX_PRICE:,}; got {_shorten(text)}")
    if len(fraction) > MONEY_DECIMALS:
        raise ValueError(
            f"has more than {MONEY_DECIMALS} decimals ({text}); the hub keeps cents and does not "
            f"round: give e.g. {amount.quantize(Decimal('0.01'))}"
        )
    return amount if amount else abs(amount)  # "-0" is 0


def is_blank(value: Any) -> bool:
    """Whether a value is missing or only white space."""
    return value is None or (isinstance(value, str) and not value.strip())
