"""Hostile input through the CLI (issue 11, deliverable 4; issue 15's catalog file messages).

Every refusal is a clear message naming what is wrong and how to fix it, with the contract's
exit code (2 for a command, 4 for the bad records of an import), no traceback, no internal
error, and nothing written but the good records.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hub_core.values import MAX_PRICE, MAX_QUANTITY

# --- numbers: hub catalog set -------------------------------------------------------------------

BAD_SET_VALUES = [
    ("--quantity", "99999999999999999999", "from 0 to 2,147,483,647"),
    ("--quantity", str(MAX_QUANTITY + 1), "from 0 to 2,147,483,647"),
    ("--quantity", "-1", "from 0 to 2,147,483,647"),
    ("--quantity", "1.5", "whole number"),
    ("--quantity", "1e3", "whole number"),
    ("--quantity", "", "is empty"),
    ("--quantity", "9" * 5000, "from 0 to 2,147,483,647"),
    ("--price", "1e30", "without an exponent"),
    ("--price", "1E2", "without an exponent"),
    ("--price", "NaN", "plain decimal number"),
    ("--price", "Infinity", "plain decimal number"),
    ("--price", "-inf", "plain decimal number"),
    ("--price", "-1", "0 or more"),
    ("--price", "100000000", "at most 99,999,999.99"),
    ("--price", "19.999", "more than 2 decimals"),
    ("--price", "0.001", "more than 2 decimals"),
    ("--price", "9,99", "write a point, e.g. 9.99"),
    ("--price", "", "is empty"),
    ("--price", "1" * 5000, "at most 99,999,999.99"),
    ("--title", "", "--title is empty"),
    ("--title", "   ", "--title is empty"),
    ("--title", "x" * 10_001, "longer than 10,000"),
]


@pytest.mark.parametrize(("flag", "value", "words"), BAD_SET_VALUES)
def test_catalog_set_refuses_bad_values_and_changes_nothing(
    hub_cli: Any, catalog_file: Callable, db_snapshot: Callable, flag: str, value: str, words: str
) -> None:
    hub_cli("catalog", "import", str(catalog_file()))
    before = db_snapshot(hub_cli.url)
    result = hub_cli("catalog", "set", "SKU-1", flag, value, code=2)
    assert words in result.stderr, result.stderr
    assert flag in result.stderr
    assert db_snapshot(hub_cli.url) == before


def test_catalog_set_names_every_bad_value_at_once(hub_cli: Any, catalog_file: Callable) -> None:
    hub_cli("catalog", "import", str(catalog_file()))
    result = hub_cli("catalog", "set", " ", "--quantity", "-3", "--price", "1e30", code=2)
    assert "SKU is empty" in result.stderr
    assert "--quantity must be from 0" in result.stderr
    assert "--price must be a plain decimal number" in result.stderr


def test_catalog_set_takes_the_limits_and_trailing_zeros(
    hub_cli: Any, catalog_file: Callable
) -> None:
    hub_cli("catalog", "import", str(catalog_file()))
    data = hub_cli.json(
        "catalog", "set", "SKU-1", "--quantity", str(MAX_QUANTITY), "--price", str(MAX_PRICE)
    )
    assert data["quantity"] == MAX_QUANTITY and data["price"] == "99999999.99"
    data = hub_cli.json("catalog", "set", "SKU-1", "--quantity", "+0", "--price", "19.9900")
    assert data["quantity"] == 0 and data["price"] == "19.99"
    assert hub_cli.json("catalog", "list")[0]["price"] == "19.99"


# --- numbers: CSV and JSON imports -----------------------------------------------------------


def test_csv_import_refuses_bad_numbers_per_line(hub_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(
        "sku,title,quantity,price,msrp,cost\n"
        "OK-1,Good,2147483647,99999999.99,,\n"  # 2
        "Q-BIG,Big,99999999999999999999,1,,\n"  # 3
        "Q-NEG,Neg,-1,1,,\n"  # 4
        "Q-FRAC,Frac,1.5,1,,\n"  # 5
        "P-EXP,Exp,1,1e30,,\n"  # 6
        "P-NAN,Nan,1,NaN,,\n"  # 7
        "P-INF,Inf,1,Infinity,,\n"  # 8
        "P-DEC,Dec,1,1.005,,\n"  # 9
        "P-MAX,Max,1,100000000,,\n"  # 10
        "P-NEG,Neg,1,-0.01,,\n"  # 11
        "M-BAD,Msrp,1,1,1e5,-1\n"  # 12
        "OK-2,Good,0,0.10,2.00,\n"  # 13
    )
    data = hub_cli.json("catalog", "import", str(path), code=4)
    failed = {r["ref"].split(" (")[0]: r["message"] for r in data["records"]}
    assert data["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "failed": 10}
    assert "quantity: must be from 0 to 2,147,483,647" in failed["line 3"]
    assert "quantity: must be from 0" in failed["line 4"]
    assert "quantity: must be a whole number" in failed["line 5"]
    assert "without an exponent" in failed["line 6"]
    assert "price: must be a plain decimal number" in failed["line 7"]
    assert "price: must be a plain decimal number" in failed["line 8"]
    assert "more than 2 decimals" in failed["line 9"]
    assert "at most 99,999,999.99" in failed["line 10"]
    assert "0 or more" in failed["line 11"]
    assert "msrp:" in failed["line 12"] and "cost:" in failed["line 12"]
    listed = {p["sku"]: p for p in hub_cli.json("catalog", "list")}
    assert set(listed) == {"OK-1", "OK-2"}
    assert listed["OK-1"]["quantity"] == MAX_QUANTITY
    assert listed["OK-1"]["price"] == "99999999.99"
    assert listed["OK-2"]["msrp"] == "2.00"


def test_json_import_refuses_bad_numbers_per_product(hub_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    # NaN and Infinity are not JSON, but Python's reader takes them: they must be refused too.
    path.write_text(
        "["
        '{"sku": "OK", "title": "t", "quantity": 3.0, "price": 19.99},'
        '{"sku": "Q1", "title": "t", "quantity": 99999999999999999999, "price": 1},'
        '{"sku": "Q2", "title": "t", "quantity": true, "price": 1},'
        '{"sku": "Q3", "title": "t", "quantity": 1e300, "price": 1},'
        '{"sku": "P1", "title": "t", "quantity": 1, "price": 1e30},'
        '{"sku": "P2", "title": "t", "quantity": 1, "price": NaN},'
        '{"sku": "P3", "title": "t", "quantity": 1, "price": -Infinity},'
        '{"sku": "P4", "title": "t", "quantity": 1, "price": {"amount": 1}},'
        '{"sku": "P5", "title": "t", "quantity": 1, "price": 0.125},'
        '{"sku": 12, "title": "t", "quantity": 1, "price": 1},'
        '{"sku": "", "title": "t", "quantity": 1, "price": 1}'
        "]"
    )
    data = hub_cli.json("catalog", "import", str(path), code=4)
    failed = {r["ref"].split(" (")[0]: r["message"] for r in data["records"]}
    assert set(failed) == {f"line {n}" for n in range(2, 12)}
    assert "from 0 to 2,147,483,647" in failed["line 2"]
    assert "whole number" in failed["line 3"]
    assert "from 0 to 2,147,483,647" in failed["line 4"]
    assert "without an exponent" in failed["line 5"]
    assert "NaN" in failed["line 6"] and "-Infinity" in failed["line 7"]
    assert "price: must be a plain decimal number" in failed["line 8"]
    assert "more than 2 decimals" in failed["line 9"]
    assert "SKU must be text, got int 12" in failed["line 10"]
    assert failed["line 11"] == "SKU is empty (line 11)"
    assert [(p["sku"], p["quantity"], p["price"]) for p in hub_cli.json("catalog", "list")] == [
        ("OK", 3, "19.99")
    ]


# --- catalog files ---------------------------------------------------------------------------


def test_csv_headers_in_any_case_are_accepted(hub_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(" SKU ,Title,QUANTITY,Price,Upc\nA,Apple,1,1.50,0001\n")
    data = hub_cli.json("catalog", "import", str(path))
    assert data["counts"]["created"] == 1
    assert hub_cli.json("catalog", "list")[0]["upc"] == "0001"
    keys = tmp_path / "catalog.json"
    keys.write_text('[{"SKU": "B", "Title": "Bean", "Quantity": 2, "PRICE": "2"}]')
    assert hub_cli.json("catalog", "import", str(keys))["counts"]["created"] == 1


def test_a_semicolon_separated_file_is_read(hub_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    # What a spreadsheet in a European locale saves as "CSV".
    path.write_text(
        "sku;title;quantity;price\nA;Mug, blue;1;1.50\nB;Bowl;2;9,99\n", encoding="utf-8"
    )
    data = hub_cli.json("catalog", "import", str(path), code=4)
    assert data["counts"]["created"] == 1
    [record] = data["records"]
    assert record["ref"] == "line 3 (B)"
    assert "comma for decimals" in record["message"] and "9.99" in record["message"]
    assert hub_cli.json("catalog", "list")[0]["title"] == "Mug, blue"


def test_a_file_with_another_separator_is_explained(
    hub_cli: Any, tmp_path: Path, db_snapshot: Callable
) -> None:
    before = db_snapshot(hub_cli.url)
    path = tmp_path / "catalog.csv"
    path.write_text("sku|title|quantity|price\nA|Apple|1|1\n")
    result = hub_cli("catalog", "import", str(path), code=2)
    assert "single column" in result.stderr and "separated by commas" in result.stderr
    path.write_text("sku,title,quantity,price,SKU\nA,Apple,1,1,B\n")
    result = hub_cli("catalog", "import", str(path), code=2)
    assert "the header names sku more than once" in result.stderr
    assert db_snapshot(hub_cli.url) == before


def test_empty_sku_says_so_with_its_line(hub_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text("sku,title,quantity,price\nA,Apple,1,1\n,Nameless,1,1\n   ,Blank,x,1\n")
    data = hub_cli.json("catalog", "import", str(path), code=4)
    messages = [r["message"] for r in data["records"]]
    assert messages[0] == "SKU is empty (line 3)"
    assert messages[1].startswith("SKU is empty (line 4); quantity: must be a whole number")
    text = hub_cli("catalog", "import", str(path), code=4).stdout
    assert "SKU is empty (line 3)" in text
    assert "Shorter than minimum length" not in text and "expected pattern" not in text


def test_missing_and_extra_values_on_a_line(hub_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text("sku,title,quantity,price\nA,Apple\nB,Bean,1,1,surplus\nC,Corn,1,1\n")
    data = hub_cli.json("catalog", "import", str(path), code=4)
    failed = {r["ref"].split(" (")[0]: r["message"] for r in data["records"]}
    assert "quantity: is empty" in failed["line 2"] and "price: is empty" in failed["line 2"]
    assert "too many values on this line (5; the header has 4)" in failed["line 3"]
    assert [p["sku"] for p in hub_cli.json("catalog", "list")] == ["C"]


def test_formula_like_values_are_kept_as_text(hub_cli: Any, tmp_path: Path) -> None:
    formula = "=cmd|' /C calc'!A0"
    path = tmp_path / "catalog.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "title", "quantity", "price", "upc"])
        writer.writerow(["+SUM(A1)", formula, "1", "1", "@HYPERLINK(1)"])
        writer.writerow(["-2+3", "=1+1", "2", "2", "=0"])
    hub_cli("catalog", "import", str(path))
    listed = {p["sku"]: p for p in hub_cli.json("catalog", "list")}
    assert listed["+SUM(A1)"]["title"] == formula
    assert listed["+SUM(A1)"]["upc"] == "@HYPERLINK(1)"
    assert listed["-2+3"]["title"] == "=1+1"
    assert formula in hub_cli("catalog", "list").stdout


def test_huge_fields(hub_cli: Any, tmp_path: Path, db_snapshot: Callable) -> None:
    long_title = tmp_path / "long.csv"
    long_title.write_text(
        f"sku,title,quantity,price,upc\nA,{'t' * 20_000},1,1,\nB,Bean,1,1,{'9' * 41}\n"
        f"{'S' * 201},Long sku,1,1,\nC,Corn,1,1,\n"
    )
    data = hub_cli.json("catalog", "import", str(long_title), code=4)
    messages = [r["message"] for r in data["records"]]
    assert "title: is longer than 10,000 characters" in messages[0]
    assert "upc: is longer than 40 characters" in messages[1]
    assert messages[2] == "SKU is longer than 200 characters (line 4)"
    before = db_snapshot(hub_cli.url)
    # Beyond the CSV reader's field limit (or a quote left open): the file is refused whole.
    huge = tmp_path / "huge.csv"
    huge.write_text(f"sku,title,quantity,price\nD,Date,1,1\nE,{'t' * 200_000},1,1\n")
    open_quote = tmp_path / "quote.csv"
    open_quote.write_text('sku,title,quantity,price\nF,"Fig,1,1\n' + "G,Grape,1,1\n" * 20_000)
    for path in (huge, open_quote):
        result = hub_cli("catalog", "import", str(path), code=2)
        assert "longer than 131,072 characters" in result.stderr, result.stderr
        assert "nothing was imported" in result.stderr
    assert db_snapshot(hub_cli.url) == before


def test_bad_encodings_and_binary_files(
    hub_cli: Any, tmp_path: Path, db_snapshot: Callable
) -> None:
    before = db_snapshot(hub_cli.url)
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("sku,title,quantity,price\nA,Caf\u00e9,1,1\n".encode("utf-16"))
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"sku,title,quantity,price\nA,Ap\x00ple,1,1\n")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    cases = {utf16: "not UTF-8 text", deep: "nested too deeply"}
    for path, words in cases.items():
        result = hub_cli("catalog", "import", str(path), code=2)
        assert words in result.stderr, (path, result.stderr)
    assert db_snapshot(hub_cli.url) == before
    data = hub_cli.json("catalog", "import", str(nul), code=4)
    assert (
        data["records"][0]["message"]
        == "line 2: title: contains a NUL character; is the file text?"
    )


def test_unknown_json_keys_are_named(hub_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps([{"sku": "A", "title": "t", "quantity": 1, "price": 1, "qty": 2}]))
    data = hub_cli.json("catalog", "import", str(path), code=4)
    assert (
        "unknown key qty (valid: sku, title, quantity, price, upc, msrp, cost)"
        in (data["records"][0]["message"])
    )


# --- CLI values -------------------------------------------------------------------------------


def test_bad_key_value_options(cli_shop: Any, db_snapshot: Callable) -> None:
    before = db_snapshot(cli_shop.url)
    for args, words in [
        (("connections", "configure", "shop", "--set", "order_days"), "--set takes KEY=VALUE"),
        (("connections", "configure", "shop", "--set", "=7"), "--set takes KEY=VALUE"),
        (
            ("connections", "configure", "shop", "--set", "order_days=99999999999999999999"),
            "order_days",
        ),
        (("connections", "configure", "shop", "--set", "order_days=3651"), "order_days"),
        (("orders", "get", "shop", "--days", "99999999999"), "--days must be from 1 to 3650"),
        (("orders", "get", "shop", "--days", "0"), "--days must be from 1 to 3650"),
        (("runs", "show", "99999999999999999999999"), "RUN_ID"),
        (("runs", "show", "0"), "RUN_ID"),
        (("listings", "link", "shop", "--sku", ""), "--sku"),
        (("listings", "unlink", "shop", "--sku", "  "), "is empty"),
    ]:
        result = cli_shop(*args, code=2)
        assert words in result.stderr, (args, result.stderr)
    assert db_snapshot(cli_shop.url) == before


# --- repeated SKUs, across chunks and hash collisions ----------------------------------------


@pytest.mark.parametrize("collide", [False, True])
def test_repeated_skus_across_chunks(
    hub_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, collide: bool
) -> None:
    from hub_core.services import catalog

    monkeypatch.setattr(catalog, "CHUNK", 2)
    if collide:  # every SKU hashes alike: only the second pass can tell repeats apart
        monkeypatch.setattr(catalog, "hash", lambda sku: 7, raising=False)
    path = tmp_path / "catalog.csv"
    path.write_text(
        "sku,title,quantity,price\n"
        "A,a,1,1\nB,b,1,1\nC,c,1,1\nA,again,2,1\nD,d,1,1\nB,again,2,1\nE,e,1,x\nE,e,1,1\n"
        "C,third,3,1\n"
    )
    data = hub_cli.json("catalog", "import", str(path), code=4)
    failed = sorted((r["ref"], r["message"]) for r in data["records"])
    assert failed == [
        ("line 10 (C)", "line 10: sku C appears already on line 4"),
        ("line 5 (A)", "line 5: sku A appears already on line 2"),
        ("line 7 (B)", "line 7: sku B appears already on line 3"),
        ("line 8 (E)", "line 8: price: must be a plain decimal number, e.g. 19.99; got 'x'"),
    ]
    assert data["counts"]["created"] == 5
    listed = {p["sku"]: (p["title"], p["quantity"]) for p in hub_cli.json("catalog", "list")}
    assert listed == {"A": ("a", 1), "B": ("b", 1), "C": ("c", 1), "D": ("d", 1), "E": ("e", 1)}


# --- the README's examples and the shipments file ----------------------------------------------


def test_readme_input_rule_examples(hub_cli: Any, tmp_path: Path) -> None:
    hub_cli(
        "catalog", "import", str(write_rows(tmp_path, "sku,title,quantity,price", "TSHIRT-M,T,1,1"))
    )
    result = hub_cli("catalog", "set", "TSHIRT-M", "--price", "19.999", code=2)
    assert result.stderr == (
        "Error: Cannot change 'TSHIRT-M':\n"
        "  - --price has more than 2 decimals (19.999); the hub keeps cents and does not round: "
        "give e.g. 20.00\n"
    )
    ship = ("orders", "ship", "shop", "4445862222", "--tracking", "1Z999", "--carrier", "UPS")
    result = hub_cli(*ship, "--class", "Ground", "--item", "TSHIRT-M", code=2)
    assert (
        result.stderr == "Error: --item takes SKU=QTY; got 'TSHIRT-M'. Example: --item TSHIRT-M=2\n"
    )
    for when in ("yesterday", "9999-12-31T23:59:59-01:00", "1999-12-31T00:00:00Z"):
        result = hub_cli(*ship, "--class", "Ground", "--shipped-at", when, code=2)
        assert "ISO 8601, e.g. 2026-11-28T14:30:00Z" in result.stderr, result.stderr


def write_rows(folder: Path, header: str, *lines: str, name: str = "catalog.csv") -> Path:
    path = folder / name
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def test_shipments_file_headers_in_any_case_and_semicolons(
    cli_shop: Any, store: Any, tmp_path: Path
) -> None:
    store.add_order([("SKU-1", 2)], order_id="O-1")
    store.add_order([("SKU-1", 1)], order_id="O-2")
    cli_shop(
        "shipping-mappings", "add", "shop", "--channel-text", "UPS - Ground", "--policy", "std"
    )
    cli_shop("orders", "get", "shop")
    path = write_rows(
        tmp_path,
        "Channel_Order_ID;TRACKING;Carrier;Class;SKU;Quantity",
        "O-1;1Z1;UPS;Ground;SKU-1;1",
        "O-2;1Z2;UPS;Ground;SKU-1;99999999999999999999",
        name="shipments.csv",
    )
    data = cli_shop.json("shipments", "import", "shop", str(path), code=4)
    [failed] = [r for r in data["records"] if r["outcome"] == "failed"]
    assert failed["message"] == (
        "line 3: quantity for sku SKU-1 must be from 1 to 2,147,483,647; got 99999999999999999999"
    )
    assert cli_shop.json("orders", "show", "shop", "O-1")["status"] == "partially_shipped"


def test_channeladvisor_connection_values_are_bounded(
    hub_cli: Any, db_snapshot: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_CHANNELADVISOR_APPLICATION_ID", "app")
    monkeypatch.setenv("HUB_CHANNELADVISOR_SHARED_SECRET", "secret-value")
    before = db_snapshot(hub_cli.url)
    add = ("connections", "add", "ca", "--channel", "channeladvisor")
    tokens = ("--set", "access_token=a", "--set", "refresh_token=r")
    for values, words in [
        (("--set", "profile_id=99999999999999999999999"), "profile_id"),
        (("--set", "profile_id=1", "--set", "distribution_center_id=2147483648"), "distribution"),
        (("--set", "profile_id=1", "--set", "access_token="), "access_token"),
        (("--set", "profile_id=1", "--set", "base_url=ftp://x"), "base_url"),
        (("--set", "profile_id=1", "--set", "order_days=0"), "order_days"),
    ]:
        result = hub_cli(*add, *tokens, *values, code=2)
        assert words in result.stderr, result.stderr
        assert "secret-value" not in result.output
    assert db_snapshot(hub_cli.url) == before
