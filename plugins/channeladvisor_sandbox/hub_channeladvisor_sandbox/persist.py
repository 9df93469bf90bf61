"""Optional persistence of the sandbox state to a SQLite file (`state_file`).

Rows are stored as JSON documents (one table per entity set, plus a key/value table for
carriers, id counters and credentials). Changes are written through after every request
or admin call that changed something, so a killed sandbox loses nothing. Access tokens and
the request log are not persisted: a restarted sandbox forces clients to refresh.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from typing import Any

from .auth import Credentials
from .model import format_datetime, parse_datetime
from .state import Store


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$dt": format_datetime(value)}
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot store {type(value).__name__}")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$dt" in obj:
        return parse_datetime(obj["$dt"])
    return obj


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_encode, separators=(",", ":"))


def _loads(text: str) -> Any:
    return json.loads(text, object_hook=_decode)


def _order_doc(order: dict[str, Any]) -> dict[str, Any]:
    doc = dict(order)
    # Item -> fulfillment-item links are rebuilt on load.
    doc["Items"] = [
        {k: v for k, v in item.items() if k != "_fulfillment_items"} for item in order["Items"]
    ]
    return doc


class StateFile:
    """A SQLite file holding the sandbox state."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS products (id INTEGER PRIMARY KEY, doc TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, doc TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, doc TEXT NOT NULL);
            """
        )
        self._conn.commit()

    def load(self, store: Store, credentials: Credentials) -> bool:
        """Load a saved state into an empty store; False when the file holds none."""
        with self._lock:
            meta = dict(self._conn.execute("SELECT key, doc FROM meta").fetchall())
            if not meta:
                return False
            store.load_meta(_loads(meta.get("store", "{}")))
            credentials.load_doc(_loads(meta.get("credentials", "{}")))
            for (doc,) in self._conn.execute("SELECT doc FROM products ORDER BY id"):
                store.load_product(_loads(doc))
            for (doc,) in self._conn.execute("SELECT doc FROM orders ORDER BY id"):
                store.load_order(_loads(doc))
            return True

    def flush(self, store: Store, credentials: Credentials) -> None:
        """Write every changed row (and the small metadata) and commit."""
        with store.lock:
            product_ids, store.dirty_products = store.dirty_products, set()
            order_ids, store.dirty_orders = store.dirty_orders, set()
            store.meta_dirty = False
            upsert_products = [
                (pid, _dumps(store.products.rows[pid]))
                for pid in product_ids
                if pid in store.products.rows
            ]
            delete_products = [(pid,) for pid in product_ids if pid not in store.products.rows]
            upsert_orders = [
                (oid, _dumps(_order_doc(store.orders.rows[oid])))
                for oid in order_ids
                if oid in store.orders.rows
            ]
            delete_orders = [(oid,) for oid in order_ids if oid not in store.orders.rows]
            meta = [
                ("store", _dumps(store.meta_doc())),
                ("credentials", _dumps(credentials.to_doc())),
            ]
        with self._lock:
            cur = self._conn.cursor()
            cur.executemany("INSERT OR REPLACE INTO products VALUES (?, ?)", upsert_products)
            cur.executemany("DELETE FROM products WHERE id = ?", delete_products)
            cur.executemany("INSERT OR REPLACE INTO orders VALUES (?, ?)", upsert_orders)
            cur.executemany("DELETE FROM orders WHERE id = ?", delete_orders)
            cur.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta)
            self._conn.commit()

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()
