"""Secrets at rest: what encryption costs.

N fake-channel connections (1,000 by default), each with a secret. Measures adding them (each
secret encrypted), opening each for an operation (each secret decrypted: what every run pays
once), and ``hub secrets rotate-key`` over all of them (one transaction), with no network; and,
apart from the database, one Fernet encryption and decryption of a token-sized value.

    .venv/bin/python bench/secrets_at_rest.py [--connections 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from hub_core.crypto import KeyRing
from hub_core.db import Database
from hub_core.plugins import PluginLoadWarning, Registry
from hub_core.services import Hub
from hub_core.services.connections import add_connection, open_run
from hub_core.services.secrets import rotate_key


def measure(connections: int) -> dict[str, Any]:
    """Run the three phases in a temporary home and database; return their timings."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HUB_HOME"] = str(Path(tmp) / "home")
        os.environ.pop("HUB_SECRET_KEY", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PluginLoadWarning)
            registry = Registry.load()
        hub = Hub(db=Database(f"sqlite:///{tmp}/bench.db"), registry=registry)
        try:
            started = time.perf_counter()
            for n in range(connections):
                add_connection(
                    hub, f"shop-{n}", "fake", {"store": f"{tmp}/s{n}.json", "api_key": f"k-{n}"}
                )
            added = time.perf_counter() - started
            started = time.perf_counter()
            for n in range(connections):
                open_run(hub, f"shop-{n}")
            opened = time.perf_counter() - started
            started = time.perf_counter()
            rotated = rotate_key(hub)
            rotation = time.perf_counter() - started
        finally:
            hub.db.dispose()
    assert rotated["connections_reencrypted"] == connections
    ring = KeyRing((Fernet.generate_key(),), "file", "bench")
    value, rounds = "x" * 64, 10_000
    started = time.perf_counter()
    sealed = [ring.encrypt(value) for _ in range(rounds)]
    encrypt = time.perf_counter() - started
    started = time.perf_counter()
    for stored in sealed:
        ring.decrypt(stored, "bench")
    decrypt = time.perf_counter() - started
    return {
        "connections": connections,
        "add_seconds": round(added, 3),
        "add_ms_each": round(added * 1000 / connections, 3),
        "open_seconds": round(opened, 3),
        "open_ms_each": round(opened * 1000 / connections, 3),
        "rotate_key_seconds": round(rotation, 3),
        "fernet_encrypt_us": round(encrypt * 1e6 / rounds, 1),
        "fernet_decrypt_us": round(decrypt * 1e6 / rounds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "python": sys.version.split()[0],
    }


def main() -> None:
    """Parse the arguments, measure, print a table or one JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.connections)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:20} {value}")


if __name__ == "__main__":
    main()
