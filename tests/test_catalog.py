"""The catalog: import from CSV and JSON, set, list (services on SQLite and PostgreSQL; CLI)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hub_core.models import CatalogProduct
from hub_core.services import Hub
from hub_core.services.catalog import import_catalog, list_catalog, set_product


def _products(hub: Hub) -> dict[str, tuple[Any, ...]]:
    with hub.db.session() as session:
        return {
            p.sku: (p.title, p.quantity, p.price, p.upc, p.msrp, p.cost, p.change_seq, p.updated_at)
            for p in session.scalars(select(CatalogProduct))
        }


# --- services (SQLite and PostgreSQL) ---------------------------------------------------------


def test_import_csv_counts_created_updated_unchanged(hub: Hub, catalog_file: Callable) -> None:
    first = import_catalog(hub, catalog_file([("A", "Apple", 1, "1.00"), ("B", "Bean", 2, "2")]))
    assert first.status == "ok"
    assert first.counts == {"created": 2, "updated": 0, "unchanged": 0}
    assert first.records == []

    second = import_catalog(
        hub,
        catalog_file(
            [("A", "Apple", 1, "1.0000"), ("B", "Bean", 3, "2"), ("C", "Corn", 0, "0.5")],
            name="second.csv",
        ),
    )
    assert second.counts == {"created": 1, "updated": 1, "unchanged": 1}
    assert [(p["sku"], p["quantity"], p["price"]) for p in list_catalog(hub)] == [
        ("A", 1, "1.00"),
        ("B", 3, "2.00"),
        ("C", 0, "0.50"),
    ]


def test_unchanged_reimport_bumps_nothing(hub: Hub, catalog_file: Callable) -> None:
    path = catalog_file(
        [("A", "Apple", 1, "1.00", "012345678905", "2.00", "0.40")],
        header="sku,title,quantity,price,upc,msrp,cost",
    )
    import_catalog(hub, path)
    before = _products(hub)
    again = import_catalog(hub, path)
    assert again.counts == {"created": 0, "updated": 0, "unchanged": 1}
    assert _products(hub) == before


def test_import_json_list_and_products_object(
    hub: Hub, tmp_path: Path, catalog_file: Callable
) -> None:
    listed = tmp_path / "catalog.json"
    listed.write_text(
        json.dumps(
            [
                {"sku": "A", "title": "Apple", "quantity": 4, "price": "1.25", "msrp": "2"},
                {"sku": "B", "title": "Bean", "quantity": 1, "price": 3, "upc": "0001"},
            ]
        )
    )
    result = import_catalog(hub, listed)
    assert result.counts == {"created": 2, "updated": 0, "unchanged": 0}
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(
        json.dumps({"products": [{"sku": "A", "title": "Apple", "quantity": 5, "price": "1.25"}]})
    )
    result = import_catalog(hub, wrapped)
    assert result.counts == {"created": 0, "updated": 1, "unchanged": 0}
    by_sku = {p["sku"]: p for p in list_catalog(hub)}
    assert by_sku["A"]["quantity"] == 5 and by_sku["A"]["msrp"] is None
    assert by_sku["B"]["upc"] == "0001" and by_sku["B"]["price"] == "3.00"


def test_bad_rows_are_reported_with_line_numbers_and_good_rows_import(
    hub: Hub, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(
        "sku,title,quantity,price\n"
        "A,Apple,1,1.00\n"  # line 2: good
        "B,Bean,many,2.00\n"  # line 3: quantity
        ",Nameless,1,1.00\n"  # line 4: sku
        "C,Corn,1,-1\n"  # line 5: price
        "A,Apple again,2,1.00\n"  # line 6: duplicate
        "D,Date,1,1.00,extra\n"  # line 7: too many values
        "E,Egg,2,0.20\n"  # line 8: good
    )
    result = import_catalog(hub, path)
    assert result.status == "partial" and int(result.exit_code) == 4
    assert result.counts["created"] == 2 and result.counts["failed"] == 5
    messages = {r.ref.split(" (")[0]: r.message for r in result.records}
    assert set(messages) == {"line 3", "line 4", "line 5", "line 6", "line 7"}
    assert "quantity" in messages["line 3"]
    assert messages["line 4"] == "SKU is empty (line 4)"
    assert "price" in messages["line 5"]
    assert "line 2" in messages["line 6"]
    assert "too many values" in messages["line 7"]
    assert [p["sku"] for p in list_catalog(hub)] == ["A", "E"]


def test_json_values_are_checked_not_coerced(hub: Hub, tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(
        json.dumps(
            [
                {"sku": "A", "title": "Apple", "quantity": 1.5, "price": "NaN"},
                {"sku": "B", "title": "Bean", "quantity": "2", "price": 3},
                {"sku": "C", "title": "Corn", "quantity": 2.0, "price": "1"},
                ["not", "an", "object"],
                {"sku": "D", "quantity": 1, "price": 1},
            ]
        )
    )
    result = import_catalog(hub, path)
    failed = {r.ref: r.message for r in result.records}
    assert set(failed) == {"line 1 (A)", "line 4", "line 5 (D)"}
    assert "quantity" in failed["line 1 (A)"] and "price" in failed["line 1 (A)"]
    assert "not a JSON object" in failed["line 4"]
    assert "title" in failed["line 5 (D)"]
    assert [(p["sku"], p["quantity"]) for p in list_catalog(hub)] == [("B", 2), ("C", 2)]


def test_set_product_changes_and_bumps_only_on_change(hub: Hub, catalog_file: Callable) -> None:
    import_catalog(hub, catalog_file([("A", "Apple", 1, "1.00")]))
    seq = _products(hub)["A"][6]
    same = set_product(hub, "A", quantity=1)
    assert same["quantity"] == 1 and _products(hub)["A"][6] == seq
    changed = set_product(hub, "A", quantity=7, title="Green apple")
    assert changed["quantity"] == 7 and changed["title"] == "Green apple"
    assert _products(hub)["A"][6] > seq


# --- CLI --------------------------------------------------------------------------------------


def test_cli_import_json_shape(hub_cli: Any, catalog_file: Callable) -> None:
    data = hub_cli.json("catalog", "import", str(catalog_file()))
    assert set(data) >= {"run_id", "operation", "status", "counts", "records"}
    assert data["operation"] == "catalog_import" and data["status"] == "ok"
    assert data["counts"] == {"created": 2, "updated": 0, "unchanged": 0}
    assert isinstance(data["run_id"], int)
    text = hub_cli("catalog", "import", str(catalog_file())).stdout
    assert "unchanged: 2" in text


def test_cli_import_with_bad_rows_exits_4(hub_cli: Any, catalog_file: Callable) -> None:
    path = catalog_file([("A", "Apple", 1, "1.00"), ("B", "Bean", "x", "1.00")])
    data = hub_cli.json("catalog", "import", str(path), code=4)
    assert data["status"] == "partial"
    assert data["records"] == [
        {"ref": "line 3 (B)", "outcome": "failed", "message": data["records"][0]["message"]}
    ]
    assert data["records"][0]["message"].startswith("line 3: quantity")
    assert [p["sku"] for p in hub_cli.json("catalog", "list")] == ["A"]
    assert "line 3" in hub_cli("catalog", "import", str(path), code=4).stdout


def test_cli_import_refuses_bad_files(
    hub_cli: Any, tmp_path: Path, db_snapshot: Callable, catalog_file: Callable
) -> None:
    hub_cli("catalog", "import", str(catalog_file()))
    before = db_snapshot(hub_cli.url)
    unknown_column = catalog_file(
        [("A", "Apple", 1, "1", "red")], "c1.csv", "sku,title,quantity,price,colour"
    )
    missing_column = catalog_file([("A", "Apple", 1)], "c2.csv", "sku,title,quantity")
    not_json = tmp_path / "c.json"
    not_json.write_text("[{")
    not_a_list = tmp_path / "d.json"
    not_a_list.write_text('{"sku": "A"}')
    text = tmp_path / "c.txt"
    text.write_text("sku,title,quantity,price\n")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("sku,title,quantity,price\nA,Caf\u00e9,1,1\n".encode("latin-1"))
    latin1_json = tmp_path / "latin1.json"
    latin1_json.write_bytes('[{"sku": "A", "title": "Caf\u00e9"}]'.encode("latin-1"))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    cases = {
        latin1: ["UTF-8", "line 2"],
        latin1_json: ["UTF-8"],
        empty: ["missing columns"],
        unknown_column: ["colour", "Valid columns"],
        missing_column: ["price"],
        not_json: ["not valid JSON", "line 1"],
        not_a_list: ["expected a JSON list"],
        text: [".txt", ".csv"],
        tmp_path / "missing.csv": ["No such file"],
    }
    for path, words in cases.items():
        result = hub_cli("catalog", "import", str(path), code=2)
        for word in words:
            assert word in result.stderr, (path, result.stderr)
    assert db_snapshot(hub_cli.url) == before


def test_cli_set_and_list(hub_cli: Any, catalog_file: Callable, table: Callable) -> None:
    hub_cli("catalog", "import", str(catalog_file()))
    data = hub_cli.json("catalog", "set", "SKU-1", "--quantity", "3", "--price", "8.5")
    assert data["sku"] == "SKU-1" and data["quantity"] == 3 and data["price"] == "8.50"
    assert "SKU-1: quantity 4" in hub_cli("catalog", "set", "SKU-1", "--quantity", "4").stdout
    listed = hub_cli.json("catalog", "list")
    assert listed[0] == {
        "sku": "SKU-1",
        "title": "Blue mug",
        "quantity": 4,
        "price": "8.50",
        "upc": None,
        "msrp": None,
        "cost": None,
    }
    assert {"SKU": "SKU-2", "QUANTITY": "5", "PRICE": "12.50", "TITLE": "Red mug"} in table(
        hub_cli("catalog", "list").stdout
    )


def test_cli_set_refuses_bad_input(
    hub_cli: Any, catalog_file: Callable, db_snapshot: Callable
) -> None:
    hub_cli("catalog", "import", str(catalog_file()))
    before = db_snapshot(hub_cli.url)
    assert "'NOPE'" in hub_cli("catalog", "set", "NOPE", "--quantity", "1", code=2).stderr
    assert "Nothing to change" in hub_cli("catalog", "set", "SKU-1", code=2).stderr
    assert "--quantity" in hub_cli("catalog", "set", "SKU-1", "--quantity", "-1", code=2).stderr
    assert "decimal number" in hub_cli("catalog", "set", "SKU-1", "--price", "cheap", code=2).stderr
    assert "--price" in hub_cli("catalog", "set", "SKU-1", "--price", "-2", code=2).stderr
    assert db_snapshot(hub_cli.url) == before


def test_an_interrupted_import_changes_nothing(
    hub: Hub, catalog_file: Callable, monkeypatch: Any
) -> None:
    import hub_core.services.catalog as catalog

    import_catalog(hub, catalog_file([("A", "Apple", 1, "1"), ("B", "Bean", 1, "1")]))
    before = _products(hub)
    calls = {"n": 0}
    real_differs = catalog._differs

    def failing_differs(current: Any, new: Any) -> bool:
        calls["n"] += 1
        if calls["n"] > 2:  # A is changed and flushed (chunks of 1), then B breaks
            raise RuntimeError("power cut")
        return bool(real_differs(current, new))

    monkeypatch.setattr(catalog, "CHUNK", 1)
    monkeypatch.setattr(catalog, "_differs", failing_differs)
    changed = [("A", "Apple", 5, "1"), ("B", "Bean", 5, "1"), ("C", "Corn", 1, "1")]
    with pytest.raises(RuntimeError, match="power cut"):
        import_catalog(hub, catalog_file(changed, name="changed.csv"))
    assert _products(hub) == before
