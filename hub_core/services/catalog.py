"""The merchant's catalog: import from CSV/JSON, set values, list.

Every change bumps the ``catalog`` counter once per transaction and stamps the changed
products with it (``change_seq``), so sync listings finds changes through an index, growing
with the number of changes rather than with the catalog.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select, update
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


class _Quantity(fields.Field):
    """A quantity by :func:`~hub_core.values.parse_quantity` (0 to 2,147,483,647)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        try:
            return parse_quantity(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class _Money(fields.Field):
    """Money by :func:`~hub_core.values.parse_money`; optional ones read an empty cell as absent."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Decimal | None:
        if not self.required and is_blank(value):
            return None
        try:
            return parse_money(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class _Text(fields.String):
    """Text without NUL characters (PostgreSQL cannot store them; they mean a binary file)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if isinstance(text, str) and "\x00" in text:
            raise ValidationError("contains a NUL character; is the file text?")
        return text


def _check_sku(value: str) -> None:
    if not value.strip():
        raise ValidationError(EMPTY_SKU)
    if value != value.strip():
        raise ValidationError("SKU has spaces at its start or end; remove them")
    if len(value) > MAX_SKU:
        raise ValidationError(f"SKU is longer than {MAX_SKU} characters")


class CatalogRowSchema(Schema):
    """One catalog row; reports every problem of the row at once."""

    sku = _Text(
        required=True,
        validate=_check_sku,
        error_messages={"required": EMPTY_SKU, "null": EMPTY_SKU},
    )
    title = _Text(
        required=True,
        validate=validate.Length(max=MAX_TITLE, error=f"is longer than {MAX_TITLE:,} characters"),
    )
    quantity = _Quantity(required=True)
    price = _Money(required=True)
    upc = _Text(
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=MAX_UPC, error=f"is longer than {MAX_UPC} characters"),
    )
    msrp = _Money(allow_none=True, load_default=None)
    cost = _Money(allow_none=True, load_default=None)


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


def _row_errors(exc: ValidationError, line: int) -> str:
    messages = exc.messages if isinstance(exc.messages, dict) else {"row": exc.messages}
    parts = []
    sku_part = ""
    for key, errs in messages.items():
        text = "; ".join(str(e) for e in (errs if isinstance(errs, list) else [errs]))
        if key == "sku":
            sku_part = f"{text} (line {line})"
        else:
            parts.append(f"{key}: {text}")
    if sku_part:
        return "; ".join([sku_part, *parts])
    return f"line {line}: " + ", ".join(parts)


def import_catalog(hub: Hub, file: str | Path) -> OperationResult:
    """Import products from a file: good rows are applied, each bad row is reported.

    A row is bad when a value is missing or invalid, or its SKU appeared earlier in the file.
    The good rows are written in one transaction, so an interrupted import changes nothing.
    """
    path = Path(file)
    if not path.is_file():
        raise InvalidInput(f"No such file: {path}. Give the path of a .csv or .json catalog.")
    schema = CatalogRowSchema()
    good: dict[str, dict[str, Any]] = {}
    line_of: dict[str, int] = {}
    with RunRecorder(hub, "catalog_import") as run:
        for line, row in _read_rows(path):
            if isinstance(row, str):
                run.record(f"line {line}", Outcome.FAILED, f"line {line}: {row}")
                continue
            try:
                values = schema.load({k: v for k, v in row.items() if k})
            except ValidationError as exc:
                sku = row.get("sku")
                ref = f"line {line}" + (f" ({sku})" if isinstance(sku, str) and sku else "")
                run.record(ref, Outcome.FAILED, _row_errors(exc, line))
                continue
            sku = values["sku"]
            if sku in good:
                run.record(
                    f"line {line} ({sku})",
                    Outcome.FAILED,
                    f"line {line}: sku {sku} appears already on line {line_of[sku]}",
                )
                continue
            good[sku] = values
            line_of[sku] = line
        created, updated, unchanged = _apply(hub, good)
        run.count("created", created)
        run.count("updated", updated)
        run.count("unchanged", unchanged)
    return run.result()


_COMPARED = ("title", "quantity", "price", "upc", "msrp", "cost")


def _apply(hub: Hub, rows: dict[str, dict[str, Any]]) -> tuple[int, int, int]:
    created = updated = unchanged = 0
    with hub.db.session() as session:
        seq = bump_counter(session)
        skus = list(rows)
        for start in range(0, len(skus), CHUNK):
            chunk = skus[start : start + CHUNK]
            existing = {
                p.sku: p
                for p in session.scalars(
                    select(CatalogProduct).where(CatalogProduct.sku.in_(chunk))
                )
            }
            new_rows = []
            for sku in chunk:
                values = rows[sku]
                product = existing.get(sku)
                if product is None:
                    new_rows.append({**values, "change_seq": seq})
                    created += 1
                elif any(_differs(getattr(product, k), values.get(k)) for k in _COMPARED):
                    for key in _COMPARED:
                        setattr(product, key, values.get(key))
                    product.change_seq = seq
                    updated += 1
                else:
                    unchanged += 1
            if new_rows:
                session.bulk_insert_mappings(CatalogProduct, new_rows)  # type: ignore[arg-type]
            session.flush()
    return created, updated, unchanged


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
