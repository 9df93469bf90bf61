"""Drive the real ``hub`` CLI in-process against one database and one registry, for tests.

:class:`HubCli` runs ``hub --database-url URL ...`` through click's
:class:`~click.testing.CliRunner` with a registry handed in (``obj={"registry": ...}``), so a
test decides exactly which plugins answer. :class:`HookCalls` is a wrapper plugin that counts
every operation hook call, whatever channel answers it: the proof that the core called, or did
not call, a plugin.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import traceback
from collections import Counter
from collections.abc import Generator, Iterable, Mapping
from typing import Any

import click
from click.testing import CliRunner

from hub_core.hookspecs import hookimpl
from hub_core.plugins import Registry, get_plugin_manager

#: The name :class:`HookCalls` is registered under.
HOOK_CALLS_PLUGIN = "hub-contract-hook-calls"


class HookCalls:
    """A plugin that wraps every operation hook and counts its calls (thread-safe).

    It declares no channel, so the core lets it wrap the operations of every channel (design
    §3). ``counts["sync_listings"]`` is how many times the channel's ``hub_sync_listings`` was
    called. ``get_orders_barrier``, when set, makes each ``hub_get_orders`` call wait there
    before the channel is asked (a wrapper sees the whole get orders, storing included), so
    concurrent runs are inside get orders together for sure.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.get_orders_barrier: threading.Barrier | None = None
        self._lock = threading.Lock()

    def _count(self, operation: str) -> None:
        with self._lock:
            self.counts[operation] += 1

    def __getitem__(self, operation: str) -> int:
        with self._lock:
            return self.counts[operation]

    def snapshot(self) -> dict[str, int]:
        """A copy of the counts."""
        with self._lock:
            return dict(self.counts)

    @hookimpl(wrapper=True)
    def hub_test_connection(self) -> Generator[None, Any, Any]:
        """Count ``test_connection``."""
        self._count("test_connection")
        return (yield)

    @hookimpl(wrapper=True)
    def hub_link_listings(self) -> Generator[None, Any, Any]:
        """Count ``link_listings``."""
        self._count("link_listings")
        return (yield)

    @hookimpl(wrapper=True)
    def hub_sync_listings(self) -> Generator[None, Any, Any]:
        """Count ``sync_listings``."""
        self._count("sync_listings")
        return (yield)

    @hookimpl(wrapper=True)
    def hub_publish_listings(self) -> Generator[None, Any, Any]:
        """Count ``publish_listings``."""
        self._count("publish_listings")
        return (yield)

    @hookimpl(wrapper=True)
    def hub_get_orders(self) -> Generator[None, Any, Any]:
        """Count ``get_orders``; wait at :attr:`get_orders_barrier` if one is set."""
        self._count("get_orders")
        barrier = self.get_orders_barrier
        if barrier is not None:
            # A broken barrier means the other run failed early; its own assertion says why.
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=30)
        return (yield)

    @hookimpl(wrapper=True)
    def hub_acknowledge_orders(self) -> Generator[None, Any, Any]:
        """Count ``acknowledge_orders``."""
        self._count("acknowledge_orders")
        return (yield)

    @hookimpl(wrapper=True)
    def hub_sync_orders(self) -> Generator[None, Any, Any]:
        """Count ``sync_orders``."""
        self._count("sync_orders")
        return (yield)

    @hookimpl(wrapper=True)
    def hub_explain_order(self) -> Generator[None, Any, Any]:
        """Count ``explain_order``."""
        self._count("explain_order")
        return (yield)


def make_registry(
    plugins: Iterable[tuple[object, str]], hook_calls: HookCalls | None = None
) -> Registry:
    """A registry of exactly ``plugins`` (``(plugin, name)`` pairs), no entry points loaded,
    plus ``hook_calls`` wrapping every operation when given."""
    pairs = list(plugins)
    if hook_calls is not None:
        pairs.append((hook_calls, HOOK_CALLS_PLUGIN))
    return Registry(get_plugin_manager(load_entrypoints=False, plugins=pairs))


@dataclasses.dataclass
class CliResult:
    """What one ``hub`` invocation did."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    crash: str | None = None

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr

    def json(self) -> Any:
        """stdout parsed: exactly one JSON document."""
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"stdout is not one JSON document ({exc}):\n{self}") from None

    def __str__(self) -> str:
        text = (
            f"hub {' '.join(self.args)} -> exit {self.exit_code}\n"
            f"--- stdout\n{self.stdout[-3000:]}--- stderr\n{self.stderr[-3000:]}"
        )
        return text + (f"--- crash\n{self.crash}" if self.crash else "")


class HubCli:
    """``hub --database-url URL ...`` run in-process with a given registry.

    Calling it runs one command and asserts its exit code (``expect``; None accepts any) and
    that it did not crash. Every result is kept in :attr:`history`.
    """

    def __init__(self, registry: Registry, database_url: str) -> None:
        self.registry = registry
        self.database_url = database_url
        self.history: list[CliResult] = []

    def _argv(self, args: Iterable[str]) -> list[str]:
        return ["--database-url", self.database_url, *args]

    @staticmethod
    def _close(obj: Mapping[str, Any]) -> None:
        hub = obj.get("hub")
        if hub is not None:
            hub.db.dispose()

    def __call__(self, *args: str, expect: int | None = 0) -> CliResult:
        """Run ``hub ARGS``; assert the exit code unless ``expect`` is None."""
        obj: dict[str, Any] = {"registry": self.registry}
        raw = CliRunner().invoke(
            _root(), self._argv(args), obj=obj, catch_exceptions=True, prog_name="hub"
        )
        self._close(obj)
        crash = None
        if raw.exception is not None and not isinstance(raw.exception, SystemExit):
            crash = "".join(traceback.format_exception(raw.exception))
        result = CliResult(tuple(args), raw.exit_code, raw.stdout, raw.stderr, crash)
        self.history.append(result)
        assert crash is None, f"the hub crashed:\n{result}"
        assert "Internal error" not in result.output, f"an internal error:\n{result}"
        if expect is not None:
            assert result.exit_code == expect, f"expected exit {expect}:\n{result}"
        return result

    def json(self, *args: str, expect: int | None = 0) -> Any:
        """Run ``hub ARGS --json`` and return the JSON document it printed."""
        return self(*args, "--json", expect=expect).json()

    def in_thread(self, *args: str) -> int:
        """Run ``hub ARGS`` without CliRunner (safe beside other threads) and return its exit
        code. Output goes to the real stdout/stderr (captured by pytest)."""
        obj: dict[str, Any] = {"registry": self.registry}
        try:
            value = _root().main(
                args=self._argv(args), prog_name="hub", standalone_mode=False, obj=obj
            )
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            return exc.exit_code
        finally:
            self._close(obj)
        return value if isinstance(value, int) else 0


def _root() -> click.Group:
    from hub_core.cli import cli

    return cli
