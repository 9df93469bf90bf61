"""The merchant's catalog: import from CSV/JSON, set values, list.

Every change bumps the ``catalog`` counter once per transaction and stamps the changed
products with it (``change_seq``), so sync listings finds changes through an index, growing
with the number of changes rather than with the catalog.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub_core.channel import Outcome
from hub_core.errors import InvalidInput, NotFound
from hub_core.models import CatalogProduct, Counter
from hub_core.services.context import Hub, OperationResult
from hub_core.services.runs import RunRecorder

CATALOG_COUNTER = "catalog"
REQUIRED_COLUMNS = ("sku", "title", "quantity", "price")
OPTIONAL_COLUMNS = ("upc", "msrp", "cost")
CHUNK = 2000


class _OptionalDecimal(fields.Decimal):
    """A decimal that reads an empty CSV cell as absent."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if value in ("", None):
            return None
        return super()._deserialize(value, attr, data, **kwargs)


class _WholeNumber(fields.Integer):
    """An integer that refuses a fraction (JSON ``1.5``) instead of truncating it."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class CatalogRowSchema(Schema):
    """One catalog row; reports every problem of the row at once."""

    sku = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=200), validate.Regexp(r"^\S(.*\S)?$")],
        error_messages={"required": "sku is required"},
    )
    title = fields.String(required=True, validate=validate.Length(max=10000))
    quantity = _WholeNumber(required=True, strict=False, validate=validate.Range(min=0))
    price = fields.Decimal(required=True, places=4, validate=validate.Range(min=0))
    upc = fields.String(allow_none=True, load_default=None)
    msrp = _OptionalDecimal(allow_none=True, load_default=None, validate=validate.Range(min=0))
    cost = _OptionalDecimal(allow_none=True, load_default=None, validate=validate.Range(min=0))


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


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, row)`` from a .csv or .json file."""
    try:
        yield from _read_text_rows(path)
    except UnicodeDecodeError:
        raise not_utf8(path) from None


def _read_text_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise InvalidInput(
                    f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(missing)}. The first line must name the columns "
                    f"{','.join(REQUIRED_COLUMNS)}[,{','.join(OPTIONAL_COLUMNS)}]."
                )
            unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
            if unknown:
                raise InvalidInput(
                    f"{path}: unknown column{'s' if len(unknown) > 1 else ''} "
                    f"{', '.join(unknown)}. Valid columns: "
                    f"{', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}."
                )
            for row in reader:
                cleaned = {
                    (k or "").strip(): (v.strip() if isinstance(v, str) else v)
                    for k, v in row.items()
                }
                if None in row or ("" in cleaned and cleaned.get("") is not None):
                    cleaned = {"_extra": "too many values on this line"}
                yield reader.line_num, cleaned
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
            ) from None
        if isinstance(data, dict) and isinstance(data.get("products"), list):
            data = data["products"]
        if not isinstance(data, list):
            raise InvalidInput(
                f'{path}: expected a JSON list of products (or {{"products": [...]}}).'
            )
        for index, row in enumerate(data, start=1):
            yield index, row if isinstance(row, dict) else {"_extra": "not a JSON object"}
    else:
        raise InvalidInput(
            f"{path}: unsupported file type {suffix or '(none)'!r}; use a .csv or .json file."
        )


def _row_errors(exc: ValidationError) -> str:
    messages = exc.messages if isinstance(exc.messages, dict) else {"row": exc.messages}
    parts = []
    for key, errs in messages.items():
        text = "; ".join(str(e) for e in (errs if isinstance(errs, list) else [errs]))
        parts.append(f"{key}: {text}")
    return ", ".join(parts)


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
            if "_extra" in row:
                run.record(f"line {line}", Outcome.FAILED, f"line {line}: {row['_extra']}")
                continue
            try:
                values = schema.load({k: v for k, v in row.items() if k})
            except ValidationError as exc:
                ref = f"line {line}" + (f" ({row.get('sku')})" if row.get("sku") else "")
                run.record(ref, Outcome.FAILED, f"line {line}: {_row_errors(exc)}")
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
    quantity: int | None = None,
    price: Decimal | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Change one product's quantity, price or title."""
    if quantity is None and price is None and title is None:
        raise InvalidInput("Nothing to change: give --quantity, --price or --title.")
    if quantity is not None and quantity < 0:
        raise InvalidInput(f"--quantity must be 0 or more, got {quantity}.")
    if price is not None and price < 0:
        raise InvalidInput(f"--price must be 0 or more, got {price}.")
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
