"""Property tests (hypothesis) of the money and quantity parsing and the catalog file parsers.

Each property holds for every input hypothesis can think of, not only the examples we chose:
a parser either returns a value inside its documented range or raises ``ValueError`` (never
another exception, which the CLI would report as an internal error), and what a file says is
what the import reads.
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from hub_core.errors import InvalidInput
from hub_core.services.catalog import _read_rows, check_row
from hub_core.values import MAX_PRICE, MAX_QUANTITY, parse_money, parse_quantity

anything = st.one_of(
    st.text(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
cents = st.decimals(min_value=0, max_value=MAX_PRICE, places=2, allow_nan=False)
quantities = st.integers(min_value=0, max_value=MAX_QUANTITY)


@given(anything)
@example("99999999999999999999")
@example("9" * 5000)
@example(1e300)
@example(" 12 ")
def test_parse_quantity_returns_a_quantity_or_refuses(value: Any) -> None:
    try:
        number = parse_quantity(value)
    except ValueError as exc:
        assert str(exc)
    else:
        assert isinstance(number, int) and not isinstance(number, bool)
        assert 0 <= number <= MAX_QUANTITY


@given(quantities)
def test_parse_quantity_reads_every_quantity_back(number: int) -> None:
    assert parse_quantity(str(number)) == number
    assert parse_quantity(f" +{number} ") == number
    assert parse_quantity(float(number)) == number
    assert parse_quantity(number) == number


@given(st.integers().filter(lambda n: not 0 <= n <= MAX_QUANTITY))
def test_parse_quantity_refuses_out_of_range(number: int) -> None:
    for value in (number, str(number)):
        try:
            parse_quantity(value)
        except ValueError as exc:
            assert "2,147,483,647" in str(exc)
        else:
            raise AssertionError(f"{value!r} was accepted")


@given(anything)
@example("1e30")
@example("NaN")
@example("-0")
@example("0.001")
@example(1e30)
@example(Decimal("1E+2"))
def test_parse_money_returns_cents_in_range_or_refuses(value: Any) -> None:
    try:
        amount = parse_money(value)
    except ValueError as exc:
        assert str(exc)
    else:
        assert isinstance(amount, Decimal) and amount.is_finite()
        assert 0 <= amount <= MAX_PRICE
        assert amount == amount.quantize(Decimal("0.01"))  # never more than cents


@given(cents)
def test_parse_money_reads_every_amount_back(amount: Decimal) -> None:
    assert parse_money(str(amount)) == amount
    assert parse_money(f"{amount}00") == amount  # trailing zeros are not decimals
    assert parse_money(amount) == amount
    # JSON numbers arrive as floats: 19.99 stays 19.99.
    assert parse_money(float(amount)) == amount


@given(cents, st.integers(min_value=1, max_value=9))
def test_parse_money_never_rounds_a_third_decimal(amount: Decimal, digit: int) -> None:
    text = f"{amount.quantize(Decimal('0.01'))}{digit}"
    try:
        parse_money(text)
    except ValueError as exc:
        assert "more than 2 decimals" in str(exc) or "at most" in str(exc)
    else:
        raise AssertionError(f"{text} was accepted")


@given(st.sampled_from([math.nan, math.inf, -math.inf]))
def test_parse_money_refuses_nan_and_infinity(value: float) -> None:
    for given_value in (value, str(value), json.dumps(value)):
        try:
            parse_money(given_value)
        except ValueError:
            continue
        raise AssertionError(f"{given_value!r} was accepted")


# --- catalog files ---------------------------------------------------------------------------

# Text a spreadsheet can hold: no NUL, no lone surrogates, no white space around it (the
# importer strips cells).
cell_text = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=1,
        max_size=40,
    )
    .map(str.strip)
    .filter(bool)
)
rows = st.lists(
    st.tuples(cell_text.filter(lambda s: len(s) <= 200), cell_text, quantities, cents),
    min_size=1,
    max_size=8,
    unique_by=lambda row: row[0],
)
headers = st.permutations(["sku", "title", "quantity", "price"]).flatmap(
    lambda names: st.tuples(*[st.sampled_from([n, n.upper(), n.title(), f" {n} "]) for n in names])
)


def _load(path: Path) -> list[dict[str, Any]]:
    loaded = []
    for _line, row in _read_rows(path):
        assert not isinstance(row, str), row
        values, problems = check_row(row)
        assert not problems, problems
        loaded.append(values)
    return loaded


@settings(max_examples=60, deadline=None)
@given(rows, headers, st.sampled_from([",", ";", "\t"]))
def test_a_csv_file_reads_back_what_it_says(
    products: list[tuple[str, str, int, Decimal]], header: tuple[str, ...], separator: str
) -> None:
    order = [name.strip().lower() for name in header]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "catalog.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter=separator)
            writer.writerow(header)
            for sku, title, quantity, price in products:
                values = {"sku": sku, "title": title, "quantity": quantity, "price": price}
                writer.writerow([values[name] for name in order])
        loaded = _load(path)
    assert [(r["sku"], r["title"], r["quantity"], r["price"]) for r in loaded] == products


@settings(max_examples=60, deadline=None)
@given(rows)
def test_a_json_file_reads_back_what_it_says(
    products: list[tuple[str, str, int, Decimal]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "catalog.json"
        data = [{"sku": s, "title": t, "quantity": q, "price": float(p)} for s, t, q, p in products]
        path.write_text(json.dumps(data), encoding="utf-8")
        loaded = _load(path)
    assert [(r["sku"], r["title"], r["quantity"], r["price"]) for r in loaded] == products


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([".csv", ".json"]))
def test_any_bytes_are_read_or_refused_clearly(content: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"catalog{suffix}"
        path.write_bytes(b"sku,title,quantity,price\n" + content if suffix == ".csv" else content)
        try:
            for _line, row in _read_rows(path):
                if not isinstance(row, str):
                    values, problems = check_row(row)
                    assert problems or values["sku"]
        except InvalidInput as exc:
            assert str(path) in exc.message
