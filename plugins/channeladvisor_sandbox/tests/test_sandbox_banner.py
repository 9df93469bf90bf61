"""`hub channeladvisor sandbox` prints what trying the hub by hand needs (issue 15): a
`hub connections add` line to paste, some SKUs, the shipping methods of its orders, and the
product total; pasted as printed, those commands work against the running sandbox."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hub_channeladvisor_sandbox import DEMO_PROFILE_ID, DEMO_SHARED_SECRET, Sandbox
from hub_channeladvisor_sandbox.cli import banner, connect_command
from hub_core.cli import cli

STARTUP_SECONDS = 60
MAX_BANNER_LINES = 100


def _read_banner(process: subprocess.Popen[str]) -> list[str]:
    """The banner's lines, up to "Press Ctrl-C to stop." (bounded in lines and time)."""
    assert process.stdout is not None
    stream = process.stdout
    found: queue.Queue[str] = queue.Queue()
    # A reader thread: it ends at the pipe's end-of-file, when the fixture stops the process.
    threading.Thread(target=lambda: [found.put(line) for line in stream], daemon=True).start()
    lines: list[str] = []
    deadline = time.monotonic() + STARTUP_SECONDS
    while len(lines) < MAX_BANNER_LINES:
        try:
            line = found.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            return lines
    raise AssertionError(f"no complete banner: {lines}")


@pytest.fixture
def running_sandbox() -> Iterator[list[str]]:
    """`hub channeladvisor sandbox --port 0 --products 12 --orders 8` in its own process."""
    hub = Path(sys.executable).with_name("hub")
    process = subprocess.Popen(
        [str(hub), "channeladvisor", "sandbox", "--port", "0", "--products", "12", "--orders", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield _read_banner(process)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _hub(db: Path, *args: str) -> Result:
    obj: dict[str, Any] = {}
    result = CliRunner().invoke(
        cli, ["--database-url", f"sqlite:///{db}", *args], obj=obj, catch_exceptions=False
    )
    if "hub" in obj:
        obj["hub"].db.dispose()
    assert "Traceback" not in result.output, result.output
    return result


def _pasted(db: Path, line: str) -> Result:
    """Run a `hub ...` line as a shell would split it."""
    words = shlex.split(line.split("   #", 1)[0])
    assert words[0] == "hub"
    return _hub(db, *words[1:])


def test_the_banners_commands_work_when_pasted(running_sandbox: list[str], tmp_path: Path) -> None:
    lines = running_sandbox
    db = tmp_path / "hub.db"
    assert "  products         12 in profile 12345678, 10 in profile 87654321 (22 in all)" in lines
    connect = [ln.strip() for ln in lines if ln.strip().startswith("hub connections add")]
    assert len(connect) == 1 and "--set base_url=http://127.0.0.1:" in connect[0]
    assert _pasted(db, connect[0]).exit_code == 0
    tested = _hub(db, "connections", "test", "sandbox")
    assert tested.exit_code == 0, tested.output

    skus = next(ln for ln in lines if ln.startswith("Some of its SKUs")).split(": ", 1)[1]
    shown = skus.split(", ")
    assert len(shown) == 5
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(
        "sku,title,quantity,price\n" + "".join(f"{sku},Item,3,9.99\n" for sku in shown)
    )
    assert _hub(db, "catalog", "import", str(catalog)).exit_code == 0
    linked = json.loads(_hub(db, "listings", "link", "sandbox", "--json").stdout)
    assert linked["counts"]["linked"] == 5

    mappings = [ln.strip() for ln in lines if ln.strip().startswith("hub shipping-mappings add")]
    assert mappings
    for line in mappings:
        assert _pasted(db, line).exit_code == 0
    got = _hub(db, "orders", "get", "sandbox", "--json")
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["counts"].get("held", 0) == 0  # every method was mapped


def test_the_banner_is_the_only_place_the_sandbox_credentials_are_printed() -> None:
    # The paste line carries the sandbox's public constants; the hub then shows none of them.
    with Sandbox(seed=1) as sandbox:
        sandbox.seed_products(count=3)
        lines = banner(sandbox, sandbox.url)
    assert sum(DEMO_SHARED_SECRET in line for line in lines) == 1
    assert connect_command("http://x").startswith("hub connections add sandbox --channel ")
    assert f"--set profile_id={DEMO_PROFILE_ID}" in connect_command("http://x")


def test_the_hub_masks_the_pasted_credentials(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    assert _pasted(db, connect_command("http://127.0.0.1:9")).exit_code == 0
    shown = _hub(db, "connections", "show", "sandbox").stdout
    assert DEMO_SHARED_SECRET not in shown and "shared_secret = ***" in shown
