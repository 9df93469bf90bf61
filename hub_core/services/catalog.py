"""The merchant's catalog: import from CSV/JSON, set values, list.

Every change bumps the ``catalog`` counter once per transaction and stamps the changed
products with it (``change_seq``), so sync listings finds changes through an index, growing
with the number of changes rather than with the catalog.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from hub_core.channel import Outcome
from hub_core.errors import InvalidInput, NotFound
from hub_core.models import CatalogProduct, Counter
from hub_core.services.context import Hub, OperationResult
from hub_core.services.runs import RunRecorder
from hub_core.values import is_blank, parse_money, parse_quantity

CATALOG_COUNTER = "catalog"
REQUIRED_COLUMNS = ("sku", "title", "quantity", "price")
OPTIONAL_COLUMNS = ("upc", "msrp", "cost")
CHUNK = 2000
MAX_SKU = 200
MAX_TITLE = 10000
MAX_UPC = 40
EMPTY_SKU = "SKU is empty"


def _text(value: Any, *, limit: int, required: bool) -> str | None:
    """A text cell: refused when it is not text, holds NUL, or is too long."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValueError("is empty")
        return None
    if not isinstance(value, str):
        raise ValueError(f"must be text, got {type(value).__name__} {value!r:.30}")
    if "\x00" in value:
        # PostgreSQL cannot store NUL; in a catalog it means a binary file.
        raise ValueError("contains a NUL character; is the file text?")
    if len(value) > limit:
        raise ValueError(f"is longer than {limit:,} characters")
    return value


def _sku(value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(EMPTY_SKU)
    if not isinstance(value, str):
        raise ValueError(f"SKU must be text, got {type(value).__name__} {value!r:.30}")
    if value != value.strip():
        raise ValueError("SKU has spaces at its start or end; remove them")
    if "\x00" in value:
        raise ValueError("SKU contains a NUL character; is the file text?")
    if len(value) > MAX_SKU:
        raise ValueError(f"SKU is longer than {MAX_SKU} characters")
    return value


def _optional_money(value: Any) -> Decimal | None:
    return None if is_blank(value) else parse_money(value)


#: Each column's check, in the order problems are reported (one row reports them all).
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "sku": _sku,
    "title": lambda v: _text(v, limit=MAX_TITLE, required=True),
    "quantity": parse_quantity,
    "price": parse_money,
    "upc": lambda v: _text(v, limit=MAX_UPC, required=False),
    "msrp": _optional_money,
    "cost": _optional_money,
}


def check_row(row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Check one catalog row: ``(values, problems)``, problems by column (all of them)."""
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for column, check in _CHECKS.items():
        try:
            values[column] = check(row.get(column))
        except ValueError as exc:
            problems[column] = str(exc)
    return values, problems


def bump_counter(session: Session, name: str = CATALOG_COUNTER) -> int:
    """Take the next change number (holding the counter's row lock until commit)."""
    updated = session.execute(
        update(Counter).where(Counter.name == name).values(value=Counter.value + 1)
    )
    if updated.rowcount == 0:
        session.add(Counter(name=name, value=1))
        session.flush()
        return 1
    return int(session.scalar(select(Counter.value).where(Counter.name == name)) or 0)


def current_counter(session: Session, name: str = CATALOG_COUNTER) -> int:
    """The last change number given out."""
    return int(session.scalar(select(Counter.value).where(Counter.name == name)) or 0)


def not_utf8(path: Path) -> InvalidInput:
    """The error for a file that is not UTF-8 text, naming its first bad line."""
    number = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):  # noqa: B007
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                break
    return InvalidInput(
        f"{path}: line {number} is not UTF-8 text. Save the file as UTF-8 "
        '("CSV UTF-8" in spreadsheet programs) and import it again.'
    )


#: Separators a CSV file may use; the header line decides which (spreadsheets set to a
#: European locale save ``;``-separated "CSV").
SEPARATORS = {",": "commas", ";": "semicolons", "\t": "tabs"}


class CsvTable:
    """A CSV file read as rows of lower-case column names, with line numbers.

    The separator is detected from the header line: the one that splits it into the most
    known columns (``,`` when none does better). Column names are compared without case and
    surrounding spaces. A line with more values than the header has, or a field too large to
    be a value (often a quote left open), is reported instead of read wrongly.
    """

    def __init__(self, path: Path, handle: TextIO, known: Sequence[str]) -> None:
        self.path = path
        header = handle.readline()
        handle.seek(0)
        self.separator = max(
            SEPARATORS, key=lambda sep: (_known_count(header, sep, known), sep == ",")
        )
        self.reader = csv.DictReader(handle, delimiter=self.separator, restval="")
        try:
            names = self.reader.fieldnames or []
        except csv.Error as exc:
            raise self.broken(exc) from None
        self.columns = [name.strip().lower() for name in names]
        self.reader.fieldnames = self.columns

    def check_columns(self, required: Sequence[str], optional: Sequence[str]) -> None:
        """Refuse a file whose header lacks a required column or names an unknown one."""
        layout = f"{','.join(required)}[,{','.join(optional)}]"
        missing = [c for c in required if c not in self.columns]
        if missing:
            hint = ""
            if self.columns and len(self.columns) == 1:
                hint = f" (the header {self.columns[0]!r} has a single column: are the columns "
                hint += "separated by commas?)"
            raise InvalidInput(
                f"{self.path}: missing column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}{hint}. The first line must name the columns {layout}, "
                "separated by commas (or semicolons)."
            )
        twice = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if twice:
            raise InvalidInput(
                f"{self.path}: the header names {', '.join(twice)} more than once; keep one "
                "column of each name."
            )
        unknown = [c for c in self.columns if c not in (*required, *optional)]
        if unknown:
            raise InvalidInput(
                f"{self.path}: unknown column{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(c) for c in unknown)}. Valid columns: "
                f"{', '.join((*required, *optional))}."
            )

    def rows(self) -> Iterator[tuple[int, dict[str, str] | str]]:
        """Yield ``(line number, row)``; the row is a problem's text for a malformed line."""
        reader = self.reader
        try:
            for raw in reader:
                if None in raw:
                    count = len(self.columns) + len(raw[None])  # type: ignore[index, arg-type]
                    yield (
                        reader.line_num,
                        f"too many values on this line ({count}; the header has "
                        f"{len(self.columns)}): a value holding a "
                        f'{SEPARATORS[self.separator][:-1]} must be quoted, e.g. "Mug, blue"',
                    )
                    continue
                yield reader.line_num, {k: (v or "").strip() for k, v in raw.items()}
        except csv.Error as exc:
            raise self.broken(exc) from None

    def broken(self, exc: csv.Error) -> InvalidInput:
        """The error for a file the CSV reader cannot go on with; nothing is imported."""
        line = self.reader.line_num
        text = str(exc)
        if "field larger than field limit" in text:
            text = (
                f"a value longer than {csv.field_size_limit():,} characters (a quote left "
                "open makes the rest of the file one value)"
            )
        return InvalidInput(
            f"{self.path}: line {line}: {text}. Fix the file and import it again; nothing was "
            "imported."
        )


def _known_count(header: str, separator: str, known: Sequence[str]) -> int:
    names = [name.strip().strip('"').lower() for name in header.strip("\r\n").split(separator)]
    return sum(1 for name in names if name in known)


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yield ``(line number, row)`` from a .csv or .json file; a problem's text for a bad row."""
    try:
        yield from _read_text_rows(path)
    except UnicodeDecodeError:
        raise not_utf8(path) from None


def _read_text_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            table = CsvTable(path, handle, REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
            table.check_columns(REQUIRED_COLUMNS, OPTIONAL_COLUMNS)
            yield from table.rows()
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
            ) from None
        except RecursionError:
            raise InvalidInput(f"{path}: the JSON is nested too deeply to be a catalog.") from None
        if isinstance(data, dict) and isinstance(data.get("products"), list):
            data = data["products"]
        if not isinstance(data, list):
            raise InvalidInput(
                f'{path}: expected a JSON list of products (or {{"products": [...]}}).'
            )
        for index, row in enumerate(data, start=1):
            if not isinstance(row, dict):
                yield index, "not a JSON object"
                continue
            keys = {str(k).strip().lower(): v for k, v in row.items()}
            valid = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
            unknown = sorted(k for k in keys if k not in valid)
            if unknown:
                plural = "s" if len(unknown) > 1 else ""
                yield index, f"unknown key{plural} {', '.join(unknown)} (valid: {', '.join(valid)})"
                continue
            yield index, keys
    else:
        raise InvalidInput(
            f"{path}: unsupported file type {suffix or '(none)'!r}; use a .csv or .json file."
        )


def _no_constant(name: str) -> str:
    # JSON has no NaN or Infinity, but Python's reader turns them into floats: keep them as
    # text, which the number checks refuse with their usual message.
    return name


def _row_message(problems: dict[str, str], line: int) -> str:
    """One message naming every problem of a row; a SKU problem leads, with the line."""
    rest = [f"{column}: {text}" for column, text in problems.items() if column != "sku"]
    if "sku" in problems:
        return "; ".join([f"{problems['sku']} (line {line})", *rest])
    return f"line {line}: " + ", ".join(rest)


def import_catalog(hub: Hub, file: str | Path) -> OperationResult:
    """Import products from a file: good rows are applied, each bad row is reported.

    A row is bad when a value is missing or invalid, or its SKU appeared earlier in the file.
    The file is read in chunks and the good rows are written in one transaction, so an
    interrupted import changes nothing and memory does not grow with the file: only the
    hashes of the SKUs seen are kept. A row whose SKU hash was seen in an earlier chunk is
    set aside and decided after a second pass (run only then) finds each SKU's first line.
    """
    path = Path(file)
    if not path.is_file():
        raise InvalidInput(f"No such file: {path}. Give the path of a .csv or .json catalog.")
    seen: set[int] = set()
    set_aside: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    totals = {"created": 0, "updated": 0, "unchanged": 0}
    with RunRecorder(hub, "catalog_import") as run, hub.db.session() as session:
        seq: int | None = None
        chunk: dict[str, dict[str, Any]] = {}
        first_line: dict[str, int] = {}  # of the SKUs in the current chunk
        for line, row in _read_rows(path):
            if isinstance(row, str):
                run.record(f"line {line}", Outcome.FAILED, f"line {line}: {row}")
                continue
            values, problems = check_row(row)
            if problems:
                sku = row.get("sku")
                ref = f"line {line}" + (f" ({sku})" if isinstance(sku, str) and sku else "")
                run.record(ref, Outcome.FAILED, _row_message(problems, line))
                continue
            sku = values["sku"]
            if sku in chunk:
                _record_repeat(run, sku, line, first_line[sku])
                continue
            key = hash(sku)
            if key in seen:
                set_aside.setdefault(sku, []).append((line, values))
                continue
            seen.add(key)
            chunk[sku] = values
            first_line[sku] = line
            if len(chunk) >= CHUNK:
                seq = seq or bump_counter(session)
                _count(totals, _apply_chunk(session, chunk, seq))
                chunk, first_line = {}, {}
        if set_aside:
            for sku, (line, values) in _decide_set_aside(path, set_aside, run).items():
                if sku in chunk:
                    _record_repeat(run, sku, line, first_line[sku])
                else:
                    chunk[sku] = values
        if chunk:
            seq = seq or bump_counter(session)
            _count(totals, _apply_chunk(session, chunk, seq))
        for key, amount in totals.items():
            run.count(key, amount)
    return run.result()


def _record_repeat(run: RunRecorder, sku: str, line: int, first: int) -> None:
    run.record(
        f"line {line} ({sku})",
        Outcome.FAILED,
        f"line {line}: sku {sku} appears already on line {first}",
    )


def _decide_set_aside(
    path: Path, set_aside: dict[str, list[tuple[int, dict[str, Any]]]], run: RunRecorder
) -> dict[str, tuple[int, dict[str, Any]]]:
    """Record the set-aside rows that repeat an earlier line; return the others (their SKU's
    hash merely matched another SKU's), to be written."""
    first: dict[str, int] = {}
    for line, row in _read_rows(path):
        sku = row.get("sku") if isinstance(row, dict) else None
        if sku in set_aside and sku not in first and not check_row(row)[1]:  # type: ignore[arg-type]
            first[sku] = line  # type: ignore[index]
            if len(first) == len(set_aside):
                break
    writable: dict[str, tuple[int, dict[str, Any]]] = {}
    for sku, rows in set_aside.items():
        for line, values in rows:
            if first.get(sku, line) < line:
                _record_repeat(run, sku, line, first[sku])
            elif sku in writable:
                _record_repeat(run, sku, line, writable[sku][0])
            else:
                writable[sku] = (line, values)
    return writable


def _count(totals: dict[str, int], counts: tuple[int, int, int]) -> None:
    for key, amount in zip(("created", "updated", "unchanged"), counts, strict=True):
        totals[key] += amount


_COMPARED = ("title", "quantity", "price", "upc", "msrp", "cost")


def _apply_chunk(
    session: Session, rows: dict[str, dict[str, Any]], seq: int
) -> tuple[int, int, int]:
    """Write one chunk of checked rows (in the import's transaction): created, updated,
    unchanged. Plain table statements, not ORM objects: a large file is mostly this."""
    table = CatalogProduct.__table__
    columns = [table.c.id, table.c.sku, *(table.c[k] for k in _COMPARED)]
    existing = {
        row.sku: row for row in session.execute(select(*columns).where(table.c.sku.in_(list(rows))))
    }
    new_rows = []
    changed = []
    for sku, values in rows.items():
        current = existing.get(sku)
        if current is None:
            new_rows.append({**values, "change_seq": seq})
        elif any(_differs(getattr(current, k), values.get(k)) for k in _COMPARED):
            changed.append({"row_id": current.id, **{k: values.get(k) for k in _COMPARED}})
    connection = session.connection()
    if new_rows:
        connection.execute(insert(table), new_rows)
    if changed:
        connection.execute(
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values(**{k: bindparam(k) for k in _COMPARED}, change_seq=seq),
            changed,
        )
    return len(new_rows), len(changed), len(rows) - len(new_rows) - len(changed)


def _differs(current: Any, new: Any) -> bool:
    if isinstance(current, Decimal) or isinstance(new, Decimal):
        if current is None or new is None:
            return current is not new
        return Decimal(current) != Decimal(new)
    return current != new


def set_product(
    hub: Hub,
    sku: str,
    *,
    quantity: int | str | None = None,
    price: Decimal | str | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Change one product's quantity, price or title.

    Values follow the rules of :mod:`hub_core.values`; every bad one is named at once and
    nothing is changed.
    """
    if quantity is None and price is None and title is None:
        raise InvalidInput("Nothing to change: give --quantity, --price or --title.")
    problems = []
    if not sku.strip():
        problems.append(f"{EMPTY_SKU}: give the SKU of a catalog product")
    if quantity is not None:
        try:
            quantity = parse_quantity(quantity)
        except ValueError as exc:
            problems.append(f"--quantity {exc}")
    if price is not None:
        try:
            price = parse_money(price)
        except ValueError as exc:
            problems.append(f"--price {exc}")
    if title is not None and not title.strip():
        problems.append("--title is empty; give the product's title")
    elif title is not None and len(title) > MAX_TITLE:
        problems.append(f"--title is longer than {MAX_TITLE:,} characters")
    if problems:
        raise InvalidInput(f"Cannot change {sku!r}:", errors=problems)
    with hub.db.session() as session:
        product = session.scalar(select(CatalogProduct).where(CatalogProduct.sku == sku))
        if product is None:
            raise NotFound(
                f"No catalog product with SKU {sku!r}. Import it with 'hub catalog import FILE'."
            )
        changes = {"quantity": quantity, "price": price, "title": title}
        changed = False
        for key, value in changes.items():
            if value is not None and _differs(getattr(product, key), value):
                setattr(product, key, value)
                changed = True
        if changed:
            product.change_seq = bump_counter(session)
        return product_to_json(product)


def product_to_json(product: CatalogProduct) -> dict[str, Any]:
    """A catalog product's JSON shape."""
    return {
        "sku": product.sku,
        "title": product.title,
        "quantity": product.quantity,
        "price": format_money(product.price),
        "upc": product.upc,
        "msrp": format_money(product.msrp),
        "cost": format_money(product.cost),
    }


def format_money(value: Decimal | None) -> str | None:
    """A price as text: two decimals unless more are significant (``1.5000`` -> ``1.50``)."""
    if value is None:
        return None
    value = Decimal(value)
    return str(value.quantize(Decimal("0.01")) if value == round(value, 2) else value.normalize())


def list_catalog(hub: Hub) -> list[dict[str, Any]]:
    """Every catalog product, by SKU."""
    with hub.db.session() as session:
        rows = session.scalars(select(CatalogProduct).order_by(CatalogProduct.sku))
        return [product_to_json(p) for p in rows]
