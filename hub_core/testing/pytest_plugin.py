"""pytest plugin ``hub_contract`` (entry point of hub-core): helpers for the channel contract.

Loaded by every pytest run where hub-core is installed, so it imports nothing heavy and does
nothing unless contract tests are collected. It adds:

* the marker ``hub_contract``, set on every :class:`~hub_core.testing.ChannelContract` test
  (``pytest -m hub_contract`` runs the contract of every installed channel's tests);
* ``--hub-channel NAME`` (repeatable) to run the contract for those channels only;
* readable ids for harness classes used in your own ``parametrize`` (their channel name);
* the fixture ``hub_harness_world``: a started harness and the CLI on a fresh database, for a
  plugin's own tests written in the contract's style.

Disable it with ``-p no:hub_contract``; the contract suite itself does not need it.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

MARKER = "hub_contract"
_CONTRACT_MODULE = "hub_core.testing.contract"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--hub-channel NAME``."""
    group = parser.getgroup("hub_contract", "hub channel contract suite")
    group.addoption(
        "--hub-channel",
        action="append",
        default=[],
        metavar="NAME",
        help="run the channel contract suite only for this channel (repeatable).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker."""
    config.addinivalue_line(
        "markers", f"{MARKER}: a test of the hub channel contract suite (hub_core.testing)"
    )


def _contract_channel(item: pytest.Item) -> str | None:
    """The channel of a contract test, or None for any other test."""
    module = sys.modules.get(_CONTRACT_MODULE)
    cls = getattr(item, "cls", None)
    if module is None or cls is None or not issubclass(cls, module.ChannelContract):
        return None
    harness_class = getattr(cls, "harness_class", None)
    return getattr(harness_class, "channel", None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark contract tests; deselect the channels ``--hub-channel`` leaves out."""
    if sys.modules.get(_CONTRACT_MODULE) is None:
        return  # no contract test was collected
    wanted = set(config.getoption("hub_channel") or [])
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        channel = _contract_channel(item)
        if channel is not None:
            item.add_marker(MARKER)
            if wanted and channel not in wanted:
                dropped.append(item)
                continue
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """A harness class parametrized into a test is shown by its channel name."""
    module = sys.modules.get("hub_core.testing.harness")
    if module is not None and isinstance(val, type) and issubclass(val, module.ChannelHarness):
        return getattr(val, "channel", None)
    return None


@pytest.fixture
def hub_harness_world(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Make a contract :class:`~hub_core.testing.World` for a harness class.

    ``world = hub_harness_world(MyHarness)`` starts the harness (stopped after the test) and
    returns the world: ``world.connect()``, ``world.link()``, ``world.harness``, ``world.calls``.
    """
    from hub_core.testing.contract import open_world

    numbers = itertools.count(1)
    with contextlib.ExitStack() as stack:

        def make(harness_class: type) -> Any:
            workdir = tmp_path / f"world-{next(numbers)}"
            return stack.enter_context(open_world(harness_class, workdir))

        yield make
